"""The sans-I/O protocol: frames in, typed requests and effects out, no sockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from chatdesign.chat import ChatServer, Forbidden, ManualClock, NotFound
from chatdesign.chat.auth import TokenAuthority
from chatdesign.chat.protocol import (
    FRAME_TYPES,
    ActsAsSomeoneElse,
    Authenticate,
    AuthenticationFailed,
    ConnectionState,
    DeliveryAck,
    Effects,
    FetchConversations,
    FetchMessages,
    FrameTooLarge,
    Heartbeat,
    Identity,
    MalformedFrame,
    NotAuthenticated,
    PresenceQuery,
    RateLimited,
    Seen,
    Send,
    ServerProtocol,
    Sync,
    TokenBucket,
    UnknownFrameType,
    ack_frame,
    encode,
    error_frame,
    execute,
    friends_graph,
    parse_request,
    send_request,
)

Dump = Callable[[ChatServer], list[str]]
SECRET = b"s" * 32


def frame(**fields: object) -> str:
    return json.dumps(fields)


@pytest.fixture
def authority(clock: ManualClock) -> TokenAuthority:
    return TokenAuthority(SECRET, clock)


def test_the_core_imports_no_transport() -> None:
    import chatdesign.chat.protocol as protocol

    source = Path(protocol.__file__).read_text(encoding="utf-8")
    for name in ("asyncio", "websockets", "socket", "sqlite3", "time"):
        assert f"import {name}" not in source


def test_every_frame_type_parses() -> None:
    parsed = [
        parse_request(frame(type="auth", id=1, token="t")),
        parse_request(frame(type="send", id="a", to="bob", content="hi", client_message_id="k1",
                            attachments=["x"])),
        parse_request(frame(type="delivered", conversation_id="d:1", seq=3)),
        parse_request(frame(type="conversations", id=2, page_number=1, page_size=5,
                            last_updated_timestamp=12)),
        parse_request(frame(type="messages", id=3, conversation_id="d:1", before_seq=9, limit=10)),
        parse_request(frame(type="seen", id=4, conversation_id="d:1", seq=2)),
        parse_request(frame(type="heartbeat", active=False)),
        parse_request(frame(type="presence", id=5, user_ids=["bob"])),
        parse_request(frame(type="sync", id=6, positions={"d:1": 4})),
    ]
    assert parsed == [
        Authenticate(1, "t"), Send("a", "bob", "hi", "k1", ("x",)), DeliveryAck(None, "d:1", 3),
        FetchConversations(2, 1, 5, 12.0), FetchMessages(3, "d:1", 9, None, 10), Seen(4, "d:1", 2),
        Heartbeat(None, False), PresenceQuery(5, ("bob",)), Sync(6, {"d:1": 4}),
    ]
    assert [type(p).__name__ for p in parsed] and len(parsed) == len(FRAME_TYPES)


@pytest.mark.parametrize(("data", "error", "message"), [
    ("{not json", MalformedFrame, "not valid JSON"),
    ("[1, 2]", MalformedFrame, "JSON object"),
    (b'{"type": "auth"}', MalformedFrame, "not binary"),
    (frame(id=1), MalformedFrame, "string 'type'"),
    (frame(type="dance", id=7), UnknownFrameType, "unknown frame type 'dance'"),
    (frame(type="send", id=8, to="bob", content="x"), MalformedFrame, "client_message_id"),
    (frame(type="send", id=8, to=5, content="x", client_message_id="k"), MalformedFrame, "'to' must be str"),
    (frame(type="delivered", conversation_id="d:1", seq=True), MalformedFrame, "'seq' must be int"),
    (frame(type="sync", positions={"d:1": "4"}), MalformedFrame, "integer seq"),
    (frame(type="send", id=True, to="b", content="x", client_message_id="k"), MalformedFrame, "'id'"),
    (frame(type="presence", user_ids=[1]), MalformedFrame, "list of user ids"),
    (frame(type="send", to="b", content="x", client_message_id="k", sender_id="carol"),
     ActsAsSomeoneElse, "may not name sender_id"),
    (frame(type="delivered", conversation_id="d:1", seq=1, device_id="phone"), ActsAsSomeoneElse, "device_id"),
])
def test_malformed_unknown_and_spoofed_frames(data: str | bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_request(data)


def test_errors_carry_the_request_id_and_code() -> None:
    with pytest.raises(UnknownFrameType) as caught:
        parse_request(frame(type="dance", id="r9"))
    assert error_frame(caught.value) == {"type": "error", "id": "r9", "code": "unknown_type",
                                         "message": caught.value.message}
    spoof = ActsAsSomeoneElse("x", "r1")
    assert error_frame(spoof)["code"] == "forbidden"
    assert error_frame(NotFound("gone"), "r2") == {"type": "error", "id": "r2", "code": "not_found",
                                                    "message": "gone"}
    assert error_frame(RuntimeError("secret detail"), 3) == {
        "type": "error", "id": 3, "code": "internal_error", "message": "internal error"}


def test_oversize_frames_are_refused_before_parsing() -> None:
    big = frame(type="send", to="bob", content="x" * 100, client_message_id="k")
    with pytest.raises(FrameTooLarge, match="over the limit of 64 bytes"):
        parse_request(big, max_frame_bytes=64)
    assert isinstance(parse_request(big, max_frame_bytes=len(big)), Send)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.25) is False  # half a token
    assert bucket.take(0.5) is True
    assert bucket.take(10.0) and bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)
    with pytest.raises(ValueError, match="rate_per_s > 0"):
        TokenBucket(0, 1, 0.0)


def test_connection_state_machine(authority: TokenAuthority, clock: ManualClock) -> None:
    protocol = ServerProtocol(authority.verify, clock(), sends_per_s=1, send_burst=2)
    token = authority.issue("alice", "phone", ttl_s=60)
    assert isinstance(protocol.receive(frame(type="auth", id=1, token=token), clock()), Authenticate)
    assert protocol.state is ConnectionState.OPEN
    assert protocol.welcome_frame(Authenticate(1, token)) == {
        "type": "welcome", "id": 1, "user_id": "alice", "device_id": "phone"}
    with pytest.raises(NotAuthenticated, match="already"):
        protocol.receive(frame(type="auth", token=token), clock())
    send = frame(type="send", to="bob", content="x", client_message_id="k")
    protocol.receive(send, clock())
    protocol.receive(send, clock())
    with pytest.raises(RateLimited, match="more than 1 sends/s"):
        protocol.receive(send, clock())
    assert isinstance(protocol.receive(frame(type="heartbeat"), clock()), Heartbeat)  # not limited
    clock.advance(61)
    with pytest.raises(AuthenticationFailed, match="expired"):
        protocol.receive(frame(type="heartbeat"), clock())
    assert protocol.close_expected


@pytest.mark.parametrize("first", [frame(type="sync"), "{oops", frame(type="auth", token="forged.token")])
def test_anything_but_a_valid_auth_first_closes(authority: TokenAuthority, clock: ManualClock,
                                                first: str) -> None:
    protocol = ServerProtocol(authority.verify, clock())
    with pytest.raises((NotAuthenticated, MalformedFrame, AuthenticationFailed)):
        protocol.receive(first, clock())
    assert protocol.close_expected and protocol.identity is None


def test_execute_runs_requests_on_the_server(server: ChatServer) -> None:
    alice, bob = Identity("alice", "web", 1e12), Identity("bob", "phone", 1e12)
    (message,) = server.send_batch([send_request(alice, Send(1, "bob", "hi", "k1"))])
    assert not isinstance(message, Exception)
    cid = message.conversation_id
    synced = execute(server, bob, Sync("s", {}))
    assert [m["seq"] for m in synced.replies[0]["conversations"][cid]] == [1]
    assert execute(server, bob, DeliveryAck(None, cid, 1)) == Effects()
    assert server.delivered_positions("bob", "phone") == {cid: 1}
    seen = execute(server, bob, Seen(2, cid, 1))
    assert seen.replies == ({"type": "seen", "id": 2, "conversation_id": cid, "seq": 1},)
    assert seen.broadcasts == ((("alice", "bob"),
                                {"type": "receipt", "conversation_id": cid, "user_id": "bob", "seq": 1}),)
    page = execute(server, bob, FetchConversations(3)).replies[0]
    assert page["items"][0]["members"] == ["alice", "bob"] and page["items"][0]["seen"] == {"alice": 1, "bob": 1}
    history = execute(server, bob, FetchMessages(4, cid)).replies[0]
    assert [m["content"] for m in history["messages"]] == ["hi"]
    assert ack_frame(Send(1, "bob", "hi", "k1"), message)["seq"] == 1
    assert json.loads(encode(ack_frame(Send(1, "bob", "hi", "k1"), message)))["message_id"] == str(
        message.message_id)
    with pytest.raises(TypeError, match="Heartbeat"):
        execute(server, bob, Heartbeat(None))


def test_refused_requests_change_nothing(server: ChatServer, dump: Dump) -> None:
    carol = Identity("carol", "web", 1e12)
    (message,) = server.send_batch([("alice", "bob", "private", "k1", ())])
    assert not isinstance(message, Exception)
    before = dump(server)
    for request in (Seen(1, message.conversation_id, 1), DeliveryAck(2, message.conversation_id, 1),
                    FetchMessages(3, message.conversation_id)):
        with pytest.raises(Forbidden):
            execute(server, carol, request)
    assert dump(server) == before


def test_send_batch_commits_together_and_isolates_refusals(server: ChatServer) -> None:
    session = server.connect("bob", "phone")
    results = server.send_batch([
        ("alice", "bob", "one", "k1", ()),
        ("alice", "bob", "two", "k1", ()),        # same key, other content: refused alone
        ("alice", "dave", "", "k2", ("0" * 64,)),  # creates a 1:1, then no such attachment
        ("carol", "bob", "three", "k1", ()),
        ("alice", "bob", "one", "k1", ()),        # a retry: the original, not published again
    ])
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Message", "IdempotencyConflict", "NotFound", "Message", "Message"]
    assert results[4] == results[0]
    assert [m.content for m in session.drain()] == ["one", "three"]
    assert server.fetch_conversations("dave", 0, 10).items == ()  # the savepoint undid the 1:1
    assert server.sync("bob", "phone").message_count == 2


def test_friends_graph_from_conversations() -> None:
    graph = friends_graph([("direct", ("alice", "bob")), ("group", ("alice", "bob", "carol"))], users=["dave"])
    assert graph == {"dave": {}, "alice": {"bob": 10.0, "carol": 1.0}, "bob": {"alice": 10.0, "carol": 1.0},
                     "carol": {"alice": 1.0, "bob": 1.0}}


def test_tokens_forged_altered_and_expired(authority: TokenAuthority, clock: ManualClock) -> None:
    token = authority.issue("alice", "phone", ttl_s=10)
    assert authority.verify(token) == Identity("alice", "phone", round(clock() + 10, 3))
    other = TokenAuthority(b"t" * 32, clock)
    with pytest.raises(AuthenticationFailed, match="signature"):
        authority.verify(other.issue("alice", "phone"))
    signature = token.split(".")[1]
    forged_payload = other.issue("mallory", "phone").split(".")[0]
    with pytest.raises(AuthenticationFailed, match="signature"):
        authority.verify(f"{forged_payload}.{signature}")
    for junk in ("", "abc", "a.b.c", "!!!.???", 42):
        with pytest.raises(AuthenticationFailed, match=r"malformed|signature"):
            authority.verify(junk)  # type: ignore[arg-type]
    clock.advance(10)
    with pytest.raises(AuthenticationFailed, match="expired"):
        authority.verify(token)
    with pytest.raises(ValueError, match="ttl_s"):
        authority.issue("alice", "phone", ttl_s=0)
    assert "secret" not in repr(authority).replace("<secret hidden>", "")


def test_encode_escapes_what_utf8_cannot_carry() -> None:
    from chatdesign.chat.protocol import encode

    text = encode({"type": "error", "message": "bad id '\ud800'"})
    text.encode("utf-8")  # travels as a WebSocket text frame
    assert json.loads(text)["message"] == "bad id '\ud800'"
    assert encode({"type": "x", "content": "héllo ✓"}) == '{"type":"x","content":"héllo ✓"}'
