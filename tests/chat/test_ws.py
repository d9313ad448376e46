"""The WebSocket server on loopback: every frame type, refusals that change nothing, limits,
reconnect and resync, a slow consumer cut off while the others carry on, HTTP attachments;
who is pushed what (not the sending connection) and coalesced delivery acks."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatdesign.chat import ChatServer, Forbidden, NotFound
from chatdesign.chat.client import ChatClient, ReceivedMessage
from chatdesign.chat.demo import demo_png
from chatdesign.chat.protocol import AuthenticationFailed, RateLimited
from chatdesign.chat.ws import ChatNetworkServer, ServerSettings
from chatdesign.presence import PresencePolicy, Tier

FAST_PRESENCE = PresencePolicy(heartbeat_interval_s=0.2, offline_after_s=1.0, away_after_s=60.0,
                               tiers=(Tier("very important", 5.0, 0.1), Tier("others", -math.inf, 0.3)))
SETTINGS = ServerSettings(synchronous="OFF", presence_flush_s=0.05, presence_policy=FAST_PRESENCE,
                          max_frame_bytes=4096, hard_max_frame_bytes=64 * 1024, sends_per_s=1000,
                          send_burst=1000, max_attachment_bytes=64 * 1024)

Scenario = Callable[[ChatNetworkServer], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, settings: ServerSettings = SETTINGS) -> None:
    async def main() -> None:
        async with ChatNetworkServer(tmp_path / "data", settings=settings) as server:
            for user in ("alice", "bob", "carol"):
                await server.issue_token(user, "setup")
            await asyncio.wait_for(scenario(server), 30)
    asyncio.run(main())


async def raw(server: ChatNetworkServer, token: str | None = None) -> ClientConnection:
    """A bare WebSocket, authenticated when given a token."""
    ws = await connect(server.ws_url, proxy=None, compression=None)
    if token is not None:
        await ws.send(json.dumps({"type": "auth", "id": "a", "token": token}))
        assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["type"] == kind:
            return frame


async def stored(server: ChatNetworkServer) -> list[str]:
    """Every stored row, to show a refused frame changed nothing."""
    def dump(chat: ChatServer) -> list[str]:
        connection = chat.store._connection  # type: ignore[attr-defined]
        tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [f"{t}:{r}" for t in sorted(tables) for r in connection.execute(f"SELECT * FROM {t} ORDER BY 1")]
    return await server.call(dump)


async def until_acknowledged(server: ChatNetworkServer, user: str, device: str) -> None:
    """Delivery acks are fire-and-forget: wait until the device's ack has been committed."""
    for _ in range(250):
        if await server.call(lambda c: c.delivered_positions(user, device)):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user}/{device} never acknowledged")


async def drain(client: ChatClient, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
    return [await client.receive(timeout=timeout) for _ in range(count)]


def test_every_request_type_round_trips(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        url = server.ws_url
        async with ChatClient.connect(url, await server.issue_token("alice", "phone")) as alice, \
                ChatClient.connect(url, await server.issue_token("bob", "laptop")) as bob:
            ack = await alice.send("bob", "hello", client_message_id="k1")
            assert (ack.seq, ack.client_message_id) == (1, "k1")
            got = await bob.receive(timeout=5)
            assert (got.message_id, got.conversation_id, got.seq, got.sender_id, got.content) == (
                ack.message_id, ack.conversation_id, 1, "alice", "hello")
            assert (await alice.receive(timeout=5)).seq == 1  # the sender's device hears it too
            again = await alice.send("bob", "hello", client_message_id="k1")  # a retry
            assert again.message_id == ack.message_id
            await until_acknowledged(server, "bob", "laptop")
            assert await server.call(lambda c: c.delivered_positions("bob", "laptop")) == {ack.conversation_id: 1}
            page = await bob.fetch_conversations()
            assert [(i["conversation_id"], i["unread_count"]) for i in page["items"]] == [(ack.conversation_id, 1)]
            history = await bob.fetch_messages(ack.conversation_id)
            assert [m.content for m in history] == ["hello"]
            assert await bob.mark_seen(ack.conversation_id, 1) == 1
            receipt = await alice.next_event(timeout=5)
            while receipt["type"] != "receipt":
                receipt = await alice.next_event(timeout=5)
            assert receipt == {"type": "receipt", "conversation_id": ack.conversation_id, "user_id": "bob", "seq": 1}
            for _ in range(100):  # a new conversation makes new friends at the next presence tick
                statuses = {s["user_id"]: s["status"] for s in await alice.presence()}
                if statuses:
                    break
                await asyncio.sleep(0.05)
            assert statuses == {"bob": "online"}
            assert await bob.sync() == 0  # nothing new: already delivered once
            with pytest.raises(NotFound):
                await alice.send("nobody", "hi")
            private = await server.call(lambda c: c.create_group("alice", ["carol"], "no bob"))
            with pytest.raises(Forbidden):
                await bob.fetch_messages(private)
    run(tmp_path, scenario)


def test_presence_updates_reach_friends_in_batches(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        url = server.ws_url
        async with ChatClient.connect(url, await server.issue_token("alice", "phone")) as alice:
            async with ChatClient.connect(url, await server.issue_token("bob", "laptop")) as bob:
                await bob.send("alice", "hi")  # now they share a conversation: friends
                await drain(alice, 1)
                await bob.wait_connected()
                event = await alice.next_event(timeout=5)
                while event["type"] != "presence_update" or event["changes"][0]["status"] != "online":
                    event = await alice.next_event(timeout=5)
                assert [c["user_id"] for c in event["changes"]] == ["bob"]
            event = await alice.next_event(timeout=5)  # bob's heartbeats stop: offline after 1 s
            while event["type"] != "presence_update" or event["changes"][0]["status"] != "offline":
                event = await alice.next_event(timeout=5)
        assert server.stats.presence_batches >= 2
    run(tmp_path, scenario)


def test_authentication_failures(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        good = await server.issue_token("alice", "phone")
        expired = server.authority.issue("alice", "phone", ttl_s=0.001)
        await asyncio.sleep(0.01)
        forged = good.split(".")[0] + "." + "A" * 43
        cases = [({"type": "sync"}, "not_authenticated"), ({"type": "auth", "token": forged}, "auth_failed"),
                 ({"type": "auth", "token": expired}, "auth_failed"), ({"type": "auth", "token": "x"}, "auth_failed")]
        for first, code in cases:
            ws = await raw(server)
            await ws.send(json.dumps(first))
            assert json.loads(await ws.recv())["code"] == code
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4001
        with pytest.raises(AuthenticationFailed):
            async with ChatClient.connect(server.ws_url, forged):
                pass
        async with ChatClient.connect(server.ws_url, good) as alice:  # the server carries on
            assert (await alice.send("bob", "still here")).seq == 1
    run(tmp_path, scenario)


def test_a_connection_whose_token_expires_hears_nothing_more(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "phone")) as alice:
            bob = await raw(server, await server.issue_token("bob", "laptop", ttl_s=0.5))
            await alice.send("bob", "before")
            assert (await next_of(bob, "message"))["message"]["content"] == "before"
            await asyncio.sleep(0.6)  # bob's token expires while the connection stays open
            await alice.send("bob", "after")
            frames = []
            with pytest.raises(ConnectionClosed):
                while True:
                    frames.append(json.loads(await asyncio.wait_for(bob.recv(), 5)))
            assert "after" not in [f.get("message", {}).get("content") for f in frames]
            assert bob.close_code == 4001
            assert server.stats.expired_closed == 1
            # the message is stored: bob's device gets it when it authenticates again and syncs
            # ("before" too: the bare socket never acknowledged it, so it comes again)
            async with ChatClient.connect(server.ws_url, await server.issue_token("bob", "laptop")) as again:
                assert [(await again.receive(timeout=5)).content for _ in range(2)] == ["before", "after"]
    run(tmp_path, scenario)


def test_refused_frames_change_nothing_and_the_connection_carries_on(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("bob", "laptop")) as bob:
            ws = await raw(server, await server.issue_token("alice", "phone"))
            await ws.send(json.dumps({"type": "send", "id": 1, "to": "bob", "content": "first",
                                      "client_message_id": "k1"}))
            assert (await next_of(ws, "ack"))["seq"] == 1
            assert (await bob.receive(timeout=5)).content == "first"
            await until_acknowledged(server, "bob", "laptop")
            before = await stored(server)
            refused = [
                ({"type": "send", "id": 2, "to": "bob", "content": "as carol", "client_message_id": "k2",
                  "sender_id": "carol"}, "forbidden"),
                ({"type": "delivered", "id": 3, "conversation_id": "d:1", "seq": 1, "user_id": "bob"}, "forbidden"),
                ({"type": "send", "id": 4, "to": "bob", "content": "x" * 5000, "client_message_id": "k3"},
                 "frame_too_large"),
                ({"type": "launch", "id": 5}, "unknown_type"),
                ({"type": "send", "id": 6, "to": "bob"}, "malformed_frame"),
                ({"type": "send", "id": 7, "to": "bob", "content": "again", "client_message_id": "k1"},
                 "idempotency_conflict"),
                ({"type": "seen", "id": 8, "conversation_id": "d:1", "seq": 1}, "not_found"),
            ]
            for frame, code in refused:
                await ws.send(json.dumps(frame))
                error = await next_of(ws, "error")
                assert (error["id"], error["code"]) == (frame["id"], code), error
            await ws.send("{not json")
            assert (await next_of(ws, "error"))["code"] == "malformed_frame"
            assert await stored(server) == before
            await ws.send(json.dumps({"type": "send", "id": 9, "to": "bob", "content": "second",
                                      "client_message_id": "k9"}))
            assert (await next_of(ws, "ack"))["seq"] == 2  # same connection, still working
            assert [m.content for m in await drain(bob, 1)] == ["second"]  # and no spoofed one
            await ws.send("x" * (70 * 1024))  # over the hard limit: websockets closes with 1009
            with pytest.raises(ConnectionClosed):
                await next_of(ws, "never")
            assert ws.close_code == 1009
            assert (await bob.sync()) == 0  # bob's connection never noticed
        assert server.stats.refused_frames == len(refused) + 1
    run(tmp_path, scenario)


def test_send_rate_limit(tmp_path: Path) -> None:
    settings = ServerSettings(synchronous="OFF", sends_per_s=1, send_burst=3)
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "phone")) as alice:
            results = await asyncio.gather(*(alice.send("bob", f"m{i}") for i in range(5)), return_exceptions=True)
            assert sum(isinstance(r, RateLimited) for r in results) == 2
            assert sorted(r.seq for r in results if not isinstance(r, BaseException)) == [1, 2, 3]
    run(tmp_path, scenario, settings)


def test_reconnect_and_resync_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        url = server.ws_url
        async with ChatClient.connect(url, await server.issue_token("alice", "phone"), seed=1) as alice, \
                ChatClient.connect(url, await server.issue_token("bob", "laptop"), seed=2) as bob:
            for i in range(40):
                send = asyncio.ensure_future(alice.send("bob", f"m{i}"))
                if i % 7 == 3:
                    await drop_and_reconnect(bob)
                if i % 11 == 5:
                    await drop_and_reconnect(alice)  # an ack lost on the way: resent, stored once
                await send
            got = await drain(bob, 40)
            with pytest.raises(TimeoutError):
                await bob.receive(timeout=0.3)
            assert [m.seq for m in got] == list(range(1, 41))
            assert [m.content for m in got] == [f"m{i}" for i in range(40)]
            assert bob.reconnects >= 6 and alice.reconnects >= 4  # every drop was a real one
            history = await alice.fetch_messages(got[0].conversation_id, limit=100)
            assert len(history) == 40  # every resent send was stored once
        # a device that comes back later with its own positions gets only what it lacks
        positions = bob.positions
        await alice_sends_more(server)
        async with ChatClient.connect(url, await server.issue_token("bob", "laptop"), positions=positions) as again:
            assert [m.content for m in await drain(again, 2)] == ["late 1", "late 2"]
            with pytest.raises(TimeoutError):
                await again.receive(timeout=0.2)
    run(tmp_path, scenario)


async def drop_and_reconnect(client: ChatClient, timeout_s: float = 10.0) -> None:
    """Cut the client's connection and wait until it has reconnected, so that every drop in a
    test lands on a live connection (two drops in a row would otherwise count as one)."""
    before = client.reconnects
    await client.drop_connection()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while client.reconnects == before:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{client!r} did not reconnect within {timeout_s} s")
        await asyncio.sleep(0.01)


async def alice_sends_more(server: ChatNetworkServer) -> None:
    async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "tablet")) as alice:
        await alice.send("bob", "late 1")
        await alice.send("bob", "late 2")


TOTAL = 300


def test_slow_consumer_is_cut_off_while_others_continue(tmp_path: Path) -> None:
    settings = ServerSettings(synchronous="OFF", outgoing_queue_frames=100, sends_per_s=10_000, send_burst=10_000)
    async def scenario(server: ChatNetworkServer) -> None:
        url = server.ws_url
        group = await server.call(lambda c: c.create_group("alice", ["bob", "carol"], "team"))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.connect(("127.0.0.1", server.port))
        slow = await connect(url, sock=sock, proxy=None, compression=None, max_size=None)
        await slow.send(json.dumps({"type": "auth", "token": await server.issue_token("bob", "slow")}))
        await next_of(slow, "welcome")
        (slow_side,) = server.clients_of("bob")  # small kernel buffers both ways: a slow link fills fast
        slow_side.connection.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        slow.transport.pause_reading()  # bob's app hangs
        text = "y" * 3000
        async with ChatClient.connect(url, await server.issue_token("alice", "phone")) as alice, \
                ChatClient.connect(url, await server.issue_token("carol", "web")) as carol:
            for batch in range(TOTAL // 30):
                await asyncio.gather(*(alice.send(group, text, client_message_id=f"{batch}-{i}") for i in range(30)))
            assert len(await drain(carol, TOTAL)) == TOTAL  # carol kept up the whole time
            assert alice.reconnects == carol.reconnects == 0
        assert server.stats.slow_consumers_closed == 1
        slow.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            while True:
                await slow.recv()
        assert slow.close_code == 4008 and "slow consumer" in (slow.close_reason or "")
        async with ChatClient.connect(url, await server.issue_token("bob", "slow")) as bob:  # catches up by sync
            assert len(await drain(bob, TOTAL)) == TOTAL
    run(tmp_path, scenario, settings)


def _http(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def test_http_page_and_attachments(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        alice_token = await server.issue_token("alice", "phone")
        carol_token = await server.issue_token("carol", "web")
        base = server.url
        status, page = await asyncio.to_thread(_http, "GET", base)
        assert status == 200 and b"<html" in page.lower()
        assert (await asyncio.to_thread(_http, "GET", base + "nothing"))[0] == 404
        upload = base + "attachments"
        picture = demo_png()
        headers = {"Authorization": f"Bearer {alice_token}", "Content-Type": "image/png", "X-Filename": "p.png"}
        status, body = await asyncio.to_thread(_http, "POST", upload, picture, headers)
        assert status == 201, body
        attachment_id = json.loads(body)["attachment_id"]
        assert (await asyncio.to_thread(_http, "POST", upload, picture, {"Content-Type": "image/png"}))[0] == 401
        status, body = await asyncio.to_thread(_http, "POST", upload, b"GIF89a", headers)
        assert status == 400 and b"file signature" in body
        assert (await asyncio.to_thread(_http, "POST", upload, b"x" * (65 * 1024), headers))[0] == 413
        async with ChatClient.connect(server.ws_url, alice_token) as alice:
            await alice.send("bob", "", attachments=(attachment_id,))
        download = f"{base}attachments/{attachment_id}?token="
        bob_token = await server.issue_token("bob", "laptop")
        assert await asyncio.to_thread(_http, "GET", download + bob_token) == (200, picture)
        assert (await asyncio.to_thread(_http, "GET", download + carol_token))[0] == 403
        assert (await asyncio.to_thread(_http, "GET", download + "forged"))[0] == 401
        assert (await asyncio.to_thread(_http, "GET", f"{base}attachments/{'0' * 64}?token={bob_token}"))[0] == 404
        assert (await asyncio.to_thread(_http, "GET", base + "api/demo?user=alice"))[0] == 403  # not --demo
    run(tmp_path, scenario)


# --- who is pushed what; delivery acks (coalesced, after commit, at-least-once) ------------------


async def frames_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives on ``ws`` within ``seconds``."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return got


def test_the_sending_connection_gets_the_ack_not_its_own_message_but_its_other_device_does(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        phone = await raw(server, await server.issue_token("alice", "phone"))
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "laptop")) as laptop, \
                ChatClient.connect(server.ws_url, await server.issue_token("bob", "laptop")) as bob:
            await phone.send(json.dumps({"type": "send", "id": 7, "to": "bob", "content": "hi",
                                         "client_message_id": "k1"}))
            seen = [f for f in await frames_for(phone, 0.5) if f["type"] in ("ack", "message")]
            assert [f["type"] for f in seen] == ["ack"] and seen[0]["seq"] == 1
            for device in (laptop, bob):
                got = await device.receive(timeout=5)
                assert (got.seq, got.sender_id, got.content) == (1, "alice", "hi")
        await phone.close()
    run(tmp_path, scenario)


def test_the_sender_sees_its_own_message_from_the_ack_and_acknowledges_it_later(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        token = await server.issue_token("alice", "phone")
        async with ChatClient.connect(server.ws_url, token, own_ack_delay_s=0.05) as alice:
            ack = await alice.send("bob", "hello")
            own = await alice.receive(timeout=5)
            assert (own.message_id, own.seq, own.sender_id, own.content) == (ack.message_id, 1, "alice", "hello")
            assert alice.positions == {ack.conversation_id: 1}
            await until_acknowledged(server, "alice", "phone")  # alone, after own_ack_delay_s
            assert await server.call(lambda c: c.delivered_positions("alice", "phone")) == {ack.conversation_id: 1}
    run(tmp_path, scenario)


def test_an_own_message_after_a_gap_waits_for_the_missing_one(tmp_path: Path) -> None:
    """Bob's message is held back on its way to alice (as a push from another node can be);
    alice's own next message must not move her position past it: the client waits, resyncs,
    and shows bob's then hers, each once."""
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "phone")) as alice, \
                ChatClient.connect(server.ws_url, await server.issue_token("bob", "laptop")) as bob:
            first = await alice.send("bob", "a1")
            assert (await bob.receive(timeout=5)).seq == 1
            assert (await alice.receive(timeout=5)).seq == 1
            held: list[ReceivedMessage] = []
            take_push = alice._take_push  # hold pushes back (a slow path), keep everything else
            alice._take_push = held.append  # type: ignore[method-assign]
            await bob.send("alice", "b2")
            for _ in range(250):
                if held:
                    break
                await asyncio.sleep(0.02)
            assert [m.seq for m in held] == [2]
            mine = await alice.send("bob", "a3")
            assert mine.seq == 3
            assert alice.positions[first.conversation_id] in (1, 3)  # never 3 without 2: see below
            got = [await alice.receive(timeout=5), await alice.receive(timeout=5)]
            assert [(m.seq, m.sender_id, m.content) for m in got] == [(2, "bob", "b2"), (3, "alice", "a3")]
            alice._take_push = take_push  # type: ignore[method-assign]
            take_push(held[0])  # the late push arrives after all: a repeat, dropped
            assert alice.duplicates_dropped >= 1 and alice.gaps_resynced == 1
            assert alice.positions == {first.conversation_id: 3}
            try:
                extra = await alice.receive(timeout=0.3)
            except TimeoutError:
                extra = None
            assert extra is None
    run(tmp_path, scenario)


def test_coalesced_delivery_acks_keep_the_highest_and_never_lose_a_valid_one(tmp_path: Path) -> None:
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "phone")) as alice:
            acks = [await alice.send("bob", f"m{i}") for i in range(3)]
        cid = acks[0].conversation_id
        bob = await raw(server, await server.issue_token("bob", "laptop"))
        before = server.stats.coalesced_acks
        # one burst: 1, 3, 2 (late and out of order) -> the position is 3, never back to 2
        await bob.send(json.dumps({"type": "delivered", "id": "d1", "conversation_id": cid, "seq": 1}))
        await bob.send(json.dumps({"type": "delivered", "id": "d3", "conversation_id": cid, "seq": 3}))
        await bob.send(json.dumps({"type": "delivered", "id": "d2", "conversation_id": cid, "seq": 2}))
        await until_acknowledged(server, "bob", "laptop")
        await asyncio.sleep(0.1)
        assert await server.call(lambda c: c.delivered_positions("bob", "laptop")) == {cid: 3}
        assert server.stats.coalesced_acks >= before  # how many merged depends on timing
        # a refused ack (beyond the last message) in the same burst as a valid lower one: the
        # refused one is answered with its error, the valid one still lands
        phone = await raw(server, await server.issue_token("bob", "phone"))
        await phone.send(json.dumps({"type": "delivered", "id": "ok", "conversation_id": cid, "seq": 2}))
        await phone.send(json.dumps({"type": "delivered", "id": "bad", "conversation_id": cid, "seq": 99}))
        errors = [f for f in await frames_for(phone, 0.5) if f["type"] == "error"]
        assert [(e["id"], e["code"]) for e in errors] == [("bad", "invalid_request")]
        await until_acknowledged(server, "bob", "phone")
        assert await server.call(lambda c: c.delivered_positions("bob", "phone")) == {cid: 2}
        await bob.close()
        await phone.close()
    run(tmp_path, scenario)


def test_unacknowledged_messages_are_sent_again_after_a_reconnect(tmp_path: Path) -> None:
    """At-least-once: the server's record moves only with committed acks, so a device that
    comes back without its own positions is sent everything after its last committed ack."""
    async def scenario(server: ChatNetworkServer) -> None:
        async with ChatClient.connect(server.ws_url, await server.issue_token("alice", "phone")) as alice:
            acks = [await alice.send("bob", f"m{i}") for i in range(3)]
        cid = acks[0].conversation_id
        bob = await raw(server, await server.issue_token("bob", "laptop"))
        await bob.send(json.dumps({"type": "delivered", "conversation_id": cid, "seq": 1}))
        await until_acknowledged(server, "bob", "laptop")
        await bob.close()  # holds 2 and 3 too, but never acknowledged them (a lost ack, a crash)
        async with ChatClient.connect(server.ws_url, await server.issue_token("bob", "laptop")) as again:
            got = [await again.receive(timeout=5), await again.receive(timeout=5)]
            assert [m.seq for m in got] == [2, 3]
            for _ in range(250):  # its acks for them commit: the record reaches 3
                if await server.call(lambda c: c.delivered_positions("bob", "laptop")) == {cid: 3}:
                    break
                await asyncio.sleep(0.02)
            assert await server.call(lambda c: c.delivered_positions("bob", "laptop")) == {cid: 3}
    run(tmp_path, scenario)
