"""The in-process server: every public method, its rules and its errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatdesign.chat import (
    ArchiveAfterDays,
    ChatError,
    ChatServer,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    ManualClock,
    Message,
    NotFound,
    SyncResult,
    unpack_snowflake,
)

Dump = Callable[[ChatServer], list[str]]
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels"


# --- users --------------------------------------------------------------------------------------


def test_register_twice_is_refused(server: ChatServer, dump: Dump) -> None:
    before = dump(server)
    with pytest.raises(InvalidRequest, match="'alice' is already registered"):
        server.register_user("alice", "Alice again")
    assert dump(server) == before


def test_register_validates(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest, match="user_id"):
        server.register_user("no spaces")
    with pytest.raises(InvalidRequest, match="display_name"):
        server.register_user("erin", "")


def test_unknown_users_get_not_found(server: ChatServer) -> None:
    with pytest.raises(NotFound, match="no user 'zed'"):
        server.send_message("zed", "bob", "hi", "k1")
    with pytest.raises(NotFound, match="no user 'zed'"):
        server.send_message("alice", "zed", "hi", "k1")
    with pytest.raises(NotFound, match="zed"):
        server.fetch_conversations("zed", 0, 10)


def test_constructor_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_group_size"):
        ChatServer(max_group_size=1)
    with pytest.raises(ValueError, match="clock"):
        ChatServer(clock=5.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="synchronous"):
        ChatServer(synchronous="SOMETIMES")  # type: ignore[arg-type]


def test_a_broken_clock_is_reported(tmp_path: Path) -> None:
    with ChatServer(clock=lambda: math.nan, data_dir=tmp_path) as chat, \
            pytest.raises(ValueError, match="clock"):
        chat.register_user("alice")


# --- sending ------------------------------------------------------------------------------------


def test_direct_messages_share_one_conversation(server: ChatServer, clock: ManualClock) -> None:
    first = server.send_message("alice", "bob", "hi bob", "k1")
    clock.advance(1)
    reply = server.send_message("bob", "alice", "hi alice", "k1")  # keys are per sender
    assert first.conversation_id == reply.conversation_id
    assert first.conversation_id.startswith("d:")
    assert (first.seq, reply.seq) == (1, 2)
    assert reply.created_at == first.created_at + 1
    assert server.members(first.conversation_id) == ("alice", "bob")


def test_seq_increases_by_one_and_ids_sort_by_time(server: ChatServer, clock: ManualClock) -> None:
    sent = []
    for i in range(20):
        clock.advance(0.0005 * (i % 3))  # several messages in one millisecond
        sent.append(server.send_message("alice", "bob", f"m{i}", f"k{i}"))
    assert [m.seq for m in sent] == list(range(1, 21))
    ids = [m.message_id for m in sent]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert unpack_snowflake(ids[0]).unix_ms == math.floor(sent[0].created_at * 1000)


def test_seq_is_per_conversation(server: ChatServer) -> None:
    server.send_message("alice", "bob", "one", "k1")
    other = server.send_message("alice", "carol", "one", "k2")
    assert other.seq == 1


def test_retry_returns_the_original_and_stores_nothing(server: ChatServer, dump: Dump, clock: ManualClock) -> None:
    original = server.send_message("alice", "bob", "hi", "k1")
    before = dump(server)
    clock.advance(30)
    retry = server.send_message("alice", "bob", "hi", "k1")
    assert retry == original
    assert dump(server) == before


@pytest.mark.parametrize(
    ("recipient", "content"), [("bob", "something else"), ("carol", "hi")]
)
def test_same_key_other_message_is_a_conflict(
    server: ChatServer, dump: Dump, recipient: str, content: str
) -> None:
    server.send_message("alice", "bob", "hi", "k1")
    before = dump(server)
    with pytest.raises(IdempotencyConflict, match="'k1' was already used by alice") as caught:
        server.send_message("alice", recipient, content, "k1")
    assert caught.value.code == "idempotency_conflict"
    assert dump(server) == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["alice", "bob"]), st.integers(0, 5)), max_size=40))
def test_random_retries_never_create_a_second_message(
    tmp_path: Path, sends: list[tuple[str, int]]
) -> None:
    with ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path / "h") as chat:
        for user in ("alice", "bob", "carol"):
            chat.register_user(user)
        first: dict[tuple[str, int], Message] = {}
        for sender, key in sends:
            message = chat.send_message(sender, "carol", f"text {key}", f"key-{key}")
            assert first.setdefault((sender, key), message) == message
        for conversation_sender in ("alice", "bob"):
            mine = {k: m for k, m in first.items() if k[0] == conversation_sender}
            if not mine:
                continue
            conversation_id = next(iter(mine.values())).conversation_id
            stored = chat.fetch_messages("carol", conversation_id, limit=100)
            assert len(stored) == len(mine)
            assert sorted(m.seq for m in stored) == list(range(1, len(mine) + 1))


def test_sending_to_oneself_is_refused(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest, match="themselves"):
        server.send_message("alice", "alice", "note to self", "k1")


@pytest.mark.parametrize(
    ("content", "match"),
    [("", "must not be empty"), ("x" * 100_001, "limit is 100,000"), ("\ud800", "surrogate"),
     ("nul\x00", "control character"), (None, "must be text")],
)
def test_bad_content_is_refused_and_changes_nothing(
    server: ChatServer, dump: Dump, content: object, match: str
) -> None:
    before = dump(server)
    with pytest.raises(InvalidRequest, match=match):
        server.send_message("alice", "bob", content, "k1")  # type: ignore[arg-type]
    assert dump(server) == before
    assert server.send_message("alice", "bob", "now valid", "k1").seq == 1  # key still free


def test_bad_recipient_is_refused(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest, match="recipient_id"):
        server.send_message("alice", 42, "hi", "k1")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no conversation 'g:999'"):
        server.send_message("alice", "g:999", "hi", "k1")


def test_a_refused_first_send_leaves_no_conversation_behind(
    server: ChatServer, dump: Dump
) -> None:
    """The 1:1 created inside a refused send is rolled back, and not remembered either: the
    next send creates (and then reuses) a real one."""
    before = dump(server)
    with pytest.raises(NotFound, match="no attachment"):
        server.send_message("alice", "bob", "look", "k1", ["ab" * 32])
    assert dump(server) == before
    first = server.send_message("alice", "bob", "hi", "k1")
    second = server.send_message("bob", "alice", "hello", "k2")
    third = server.send_message("alice", "bob", "again", "k3")
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert server.store.get_conversation(first.conversation_id) is not None
    assert server.store.find_direct(("alice", "bob")) == first.conversation_id


def test_sender_is_validated_once_and_still_checked(server: ChatServer, dump: Dump) -> None:
    before = dump(server)
    with pytest.raises(NotFound, match="no user 'zed'"):
        server.send_message("zed", "bob", "hi", "k1")
    with pytest.raises(InvalidRequest, match="sender_id"):
        server.send_message("bad id", "bob", "hi", "k1")
    assert dump(server) == before


def test_fanout_hears_only_committed_messages(tmp_path: Path) -> None:
    heard: list[tuple[tuple[str, ...], int]] = []

    class Recorder:
        def publish(self, user_ids: object, message: Message) -> None:
            heard.append((tuple(user_ids), message.seq))  # type: ignore[arg-type]

    with ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path, fanout=Recorder()) as chat:
        chat.register_user("alice")
        chat.register_user("bob")
        chat.send_message("alice", "bob", "hi", "k1")
        chat.send_message("alice", "bob", "hi", "k1")  # a retry is not delivered again
        with pytest.raises(InvalidRequest):
            chat.send_message("alice", "bob", "", "k2")
    assert heard == [(("alice", "bob"), 1)]


# --- groups -------------------------------------------------------------------------------------


def test_group_send_and_read(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "carol"], "team")
    assert group.startswith("g:")
    assert server.members(group) == ("alice", "bob", "carol")
    message = server.send_message("carol", group, "hello team", "k1")
    assert message.conversation_id == group and message.seq == 1
    assert server.fetch_messages("bob", group) == [message]


def test_group_size_limit(tmp_path: Path) -> None:
    with ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path, max_group_size=3) as chat:
        for user in ("alice", "bob", "carol", "dave"):
            chat.register_user(user)
        with pytest.raises(InvalidRequest, match="at most 3 members"):
            chat.create_group("alice", ["bob", "carol", "dave"], "too big")
        group = chat.create_group("alice", ["bob", "carol"], "full")
        with pytest.raises(InvalidRequest, match="is full"):
            chat.add_member("alice", group, "dave")


def test_default_group_limit_is_100(server: ChatServer) -> None:
    assert server.max_group_size == 100
    with pytest.raises(InvalidRequest, match="at most 100 members"):
        server.create_group("alice", [f"u{i}" for i in range(100)], "crowd")


def test_create_group_errors(server: ChatServer, dump: Dump) -> None:
    before = dump(server)
    with pytest.raises(NotFound, match="no such users: zed"):
        server.create_group("alice", ["bob", "zed"], "team")
    with pytest.raises(InvalidRequest, match="title"):
        server.create_group("alice", ["bob"], "")
    assert dump(server) == before


def test_membership_changes(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob"], "team")
    server.add_member("bob", group, "carol")  # any member may add
    assert server.members(group) == ("alice", "bob", "carol")
    with pytest.raises(Forbidden, match="only members"):
        server.add_member("dave", group, "dave")
    with pytest.raises(InvalidRequest, match="already a member"):
        server.add_member("alice", group, "bob")
    with pytest.raises(Forbidden, match="only the creator"):
        server.remove_member("bob", group, "carol")
    server.remove_member("carol", group, "carol")  # leaving
    server.remove_member("alice", group, "bob")  # the creator removes
    assert server.members(group) == ("alice",)
    with pytest.raises(InvalidRequest, match="not a member"):
        server.remove_member("alice", group, "bob")


def test_direct_conversations_have_fixed_members(server: ChatServer) -> None:
    direct = server.send_message("alice", "bob", "hi", "k1").conversation_id
    with pytest.raises(InvalidRequest, match="groups only"):
        server.add_member("alice", direct, "carol")
    with pytest.raises(InvalidRequest, match="groups only"):
        server.remove_member("alice", direct, "bob")


def test_removed_member_can_neither_read_nor_post(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "carol"], "team")
    server.send_message("alice", group, "before", "k1")
    server.remove_member("alice", group, "bob")
    server.send_message("alice", group, "after", "k2")
    with pytest.raises(Forbidden, match="bob is not a member"):
        server.fetch_messages("bob", group)
    with pytest.raises(Forbidden, match="bob is not a member"):
        server.send_message("bob", group, "let me in", "k1")
    with pytest.raises(Forbidden):
        server.mark_seen("bob", group, 1)
    assert group not in {i.conversation_id for i in server.fetch_conversations("bob", 0, 10).items}
    assert server.sync("bob", "phone", {group: 0}).message_count == 0


# --- conversation list --------------------------------------------------------------------------


def _make_conversations(server: ChatServer, clock: ManualClock, count: int) -> list[str]:
    """``count`` groups of alice's, each with one message, the last one most recent."""
    ids = []
    for i in range(count):
        group = server.create_group("alice", ["bob"], f"topic {i}")
        clock.advance(1)
        server.send_message("bob", group, f"message in {i}", f"setup-{i}")
        ids.append(group)
    return ids


def test_conversations_most_recent_first(server: ChatServer, clock: ManualClock) -> None:
    groups = _make_conversations(server, clock, 3)
    page = server.fetch_conversations("alice", 0, 10)
    assert [i.conversation_id for i in page.items] == groups[::-1]
    assert not page.has_more
    assert page.last_updated_timestamp == clock.now_s
    top = page.items[0]
    assert (top.last_message_preview, top.last_sender_id, top.unread_count) == (
        "message in 2", "bob", 1)
    assert top.updated_at == clock.now_s


def test_paging_with_timestamp_has_no_duplicates_or_gaps(
    server: ChatServer, clock: ManualClock
) -> None:
    groups = _make_conversations(server, clock, 7)
    first = server.fetch_conversations("alice", 0, 3)
    pinned = first.last_updated_timestamp
    seen = [i.conversation_id for i in first.items]
    clock.advance(1)
    server.send_message("bob", groups[0], "the oldest moves to the top", "late-1")
    server.create_group("carol", ["alice"], "brand new")  # created after the pin
    page_number = 1
    while True:
        page = server.fetch_conversations("alice", page_number, 3, pinned)
        seen += [i.conversation_id for i in page.items]
        if not page.has_more:
            break
        page_number += 1
    assert seen == groups[::-1]
    assert page.last_updated_timestamp == pinned
    last = page.items[-1]
    assert last.conversation_id == groups[0]
    assert last.last_message_preview == "message in 0"  # as it stood at the pin


def test_paging_without_timestamp_repeats_and_skips(server: ChatServer, clock: ManualClock) -> None:
    groups = _make_conversations(server, clock, 6)
    seen = [i.conversation_id for i in server.fetch_conversations("alice", 0, 3).items]
    clock.advance(1)
    server.send_message("bob", groups[0], "bump", "late-1")
    seen += [i.conversation_id for i in server.fetch_conversations("alice", 1, 3).items]
    assert len(seen) == 6 and len(set(seen)) == 5  # one repeated ...
    assert groups[0] not in seen  # ... and one never shown


def test_unread_count_follows_receipts(server: ChatServer, clock: ManualClock) -> None:
    for i in range(4):
        clock.advance(1)
        server.send_message("bob", "alice", f"m{i}", f"k{i}")
    item = server.fetch_conversations("alice", 0, 1).items[0]
    assert item.unread_count == 4
    server.mark_seen("alice", item.conversation_id, 3)
    assert server.fetch_conversations("alice", 0, 1).items[0].unread_count == 1
    server.send_message("alice", "bob", "read them all", "a1")  # sending implies having seen
    assert server.fetch_conversations("alice", 0, 1).items[0].unread_count == 0


def test_direct_receipts_both_ways_and_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with ChatServer(path, clock=ManualClock(1_750_000_000.0)) as chat:
        for user in ("alice", "bob"):
            chat.register_user(user)
        direct = chat.send_message("alice", "bob", "one", "a1").conversation_id
        chat.send_message("alice", "bob", "two", "a2")
        assert chat.seen_by(direct, 2) == ("alice",)
        assert chat.fetch_conversations("bob", 0, 1).items[0].unread_count == 2
        assert chat.mark_seen("bob", direct, 1) == 1
        assert chat.mark_seen("bob", direct, 1) == 1  # never backwards, nothing to write
        chat.send_message("bob", "alice", "three", "b1")  # bob has now seen 3
        assert chat.seen_by(direct, 3) == ("bob",)
        assert chat.seen_by(direct, 2) == ("alice", "bob")
    with ChatServer(path, clock=ManualClock(1_750_000_100.0)) as chat:
        assert chat.seen_by(direct, 2) == ("alice", "bob")
        assert chat.fetch_conversations("alice", 0, 1).items[0].unread_count == 1
        assert chat.fetch_conversations("bob", 0, 1).items[0].unread_count == 0
        assert chat.mark_seen("alice", direct, 3) == 3
        assert chat.seen_by(direct, 3) == ("alice", "bob")


def test_fetch_conversations_errors(server: ChatServer, clock: ManualClock) -> None:
    with pytest.raises(InvalidRequest, match=r"page_size must be 1\.\.100"):
        server.fetch_conversations("alice", 0, 101)
    with pytest.raises(InvalidRequest, match="page_number"):
        server.fetch_conversations("alice", -1, 10)
    with pytest.raises(InvalidRequest, match="future"):
        server.fetch_conversations("alice", 0, 10, clock.now_s + 5)


# --- history ------------------------------------------------------------------------------------


@pytest.fixture
def long_chat(server: ChatServer, clock: ManualClock) -> str:
    for i in range(1, 26):
        clock.advance(1)
        server.send_message("alice" if i % 2 else "bob", "bob" if i % 2 else "alice",
                            f"#{i}", f"k{i}")
    return server.fetch_conversations("alice", 0, 1).items[0].conversation_id


def test_history_newest_first_with_cursor(server: ChatServer, long_chat: str) -> None:
    page = server.fetch_messages("bob", long_chat, limit=10)
    assert [m.seq for m in page] == list(range(25, 15, -1))
    older = server.fetch_messages("bob", long_chat, before_seq=page[-1].seq, limit=10)
    assert [m.seq for m in older] == list(range(15, 5, -1))
    oldest = server.fetch_messages("bob", long_chat, before_seq=older[-1].seq, limit=10)
    assert [m.seq for m in oldest] == [5, 4, 3, 2, 1]


def test_history_catch_up_oldest_first(server: ChatServer, long_chat: str) -> None:
    page = server.fetch_messages("bob", long_chat, after_seq=20)
    assert [m.seq for m in page] == [21, 22, 23, 24, 25]
    assert server.fetch_messages("bob", long_chat, after_seq=25) == []


def test_history_errors(server: ChatServer, long_chat: str) -> None:
    with pytest.raises(InvalidRequest, match="not both"):
        server.fetch_messages("bob", long_chat, before_seq=5, after_seq=2)
    with pytest.raises(InvalidRequest, match=r"limit must be 1\.\.100"):
        server.fetch_messages("bob", long_chat, limit=0)
    with pytest.raises(Forbidden, match="carol is not a member"):
        server.fetch_messages("carol", long_chat)
    with pytest.raises(NotFound, match="no conversation"):
        server.fetch_messages("bob", "d:1")
    with pytest.raises(InvalidRequest, match="not a conversation id"):
        server.fetch_messages("bob", "bob")


# --- receipts -----------------------------------------------------------------------------------


def test_seen_receipts_in_a_group(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "carol"], "team")
    for i in range(3):
        server.send_message("alice", group, f"m{i}", f"k{i}")
    assert server.seen_by(group, 3) == ("alice",)  # the sender has seen their own
    assert server.mark_seen("bob", group, 2) == 2
    assert server.mark_seen("carol", group, 3) == 3
    assert server.seen_by(group, 2) == ("alice", "bob", "carol")
    assert server.seen_by(group, 3) == ("alice", "carol")
    assert server.mark_seen("carol", group, 1) == 3  # never backwards
    assert server.seen_by(group, 3) == ("alice", "carol")


def test_receipt_errors(server: ChatServer, dump: Dump) -> None:
    group = server.create_group("alice", ["bob"], "team")
    with pytest.raises(InvalidRequest, match="no messages yet"):
        server.seen_by(group, 1)
    server.send_message("alice", group, "m", "k1")
    before = dump(server)
    with pytest.raises(InvalidRequest, match="beyond the conversation's last message"):
        server.mark_seen("bob", group, 2)
    with pytest.raises(InvalidRequest, match="up_to_seq"):
        server.mark_seen("bob", group, 0)
    with pytest.raises(InvalidRequest, match=r"seq must be 1\.\.1"):
        server.seen_by(group, 2)
    assert dump(server) == before


# --- devices ------------------------------------------------------------------------------------


def test_second_device_catches_up_exactly_once(server: ChatServer, clock: ManualClock) -> None:
    group = server.create_group("alice", ["bob"], "team")
    for i in range(3):
        server.send_message("alice", group, f"m{i}", f"k{i}")
    direct = server.send_message("alice", "bob", "private", "p1").conversation_id
    phone = server.sync("bob", "phone", {})
    assert phone.message_count == 4
    assert [m.seq for m in phone.messages_by_conversation[group]] == [1, 2, 3]
    _ack_all(server, phone)
    assert server.sync("bob", "phone", {}).message_count == 0
    server.send_message("alice", group, "later", "k9")
    laptop = server.sync("bob", "laptop", {})  # logs in later: everything, once acknowledged
    assert laptop.message_count == 5
    _ack_all(server, laptop)
    assert server.sync("bob", "laptop", {}).message_count == 0
    again = server.sync("bob", "phone", {})
    assert [m.content for m in again.messages_by_conversation[group]] == ["later"]
    assert direct not in again.messages_by_conversation


def _ack_all(server: ChatServer, result: SyncResult) -> None:
    """What a device does after a sync: acknowledge the last seq it now holds, per conversation."""
    for conversation_id, messages in result.messages_by_conversation.items():
        server.ack_delivery(result.user_id, result.device_id, conversation_id, messages[-1].seq)


def test_device_reported_positions_win(server: ChatServer) -> None:
    conversation = server.send_message("alice", "bob", "a", "k1").conversation_id
    server.send_message("alice", "bob", "b", "k2")
    _ack_all(server, server.sync("bob", "phone", {}))
    reinstalled = server.sync("bob", "phone", {conversation: 1})  # lost its local copy of #2
    assert [m.seq for m in reinstalled.messages_by_conversation[conversation]] == [2]


def test_sync_pages_through_long_histories(server: ChatServer) -> None:
    for i in range(230):
        server.send_message("alice", "bob", f"m{i}", f"k{i}")
    result = server.sync("bob", "tablet", {})
    messages = next(iter(result.messages_by_conversation.values()))
    assert [m.seq for m in messages] == list(range(1, 231))


def test_sync_errors(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest, match="device_id"):
        server.sync("bob", "my phone", {})
    with pytest.raises(InvalidRequest, match="not a conversation id"):
        server.sync("bob", "phone", {"bob": 1})


def test_connected_sessions_receive_new_messages(server: ChatServer) -> None:
    phone = server.connect("bob", "phone")
    laptop = server.connect("bob", "laptop")
    alice = server.connect("alice", "web")
    message = server.send_message("alice", "bob", "live", "k1")
    assert phone.drain() == [message] and laptop.drain() == [message]
    assert alice.drain() == [message]  # the sender's other devices hear it too
    assert phone.drain() == []
    assert server.sync("bob", "phone", {}).message_count == 1  # drained, not acknowledged
    phone.ack(message.conversation_id, message.seq)
    assert server.sync("bob", "phone", {}).message_count == 0
    laptop.close()
    server.send_message("alice", "bob", "after close", "k2")
    assert laptop.drain() == [] and len(phone.drain()) == 1
    assert "closed" in repr(laptop)


def test_live_message_after_a_gap_does_not_hide_the_gap(server: ChatServer) -> None:
    server.send_message("alice", "bob", "sent while offline", "k1")
    phone = server.connect("bob", "phone")
    server.send_message("alice", "bob", "live", "k2")
    assert [m.seq for m in phone.drain()] == [2]
    missed = server.sync("bob", "phone", {})
    assert [m.seq for msgs in missed.messages_by_conversation.values() for m in msgs] == [1, 2]


# --- attachments --------------------------------------------------------------------------------


def test_attachment_round_trip_and_dedup(server: ChatServer) -> None:
    first = server.upload_attachment("alice", PNG, "image/png", "cat.png")
    second = server.upload_attachment("bob", PNG, "image/png", "same-cat.png")
    assert first == second and len(first) == 64
    assert server.storage_stats().attachment_count == 1
    group = server.create_group("alice", ["bob", "carol"], "pets")
    message = server.send_message("alice", group, "", "k1", attachments=[first])
    assert message.attachments == (first,)
    fetched = server.fetch_attachment("carol", first)
    assert fetched.data == PNG and fetched.info.filename == "cat.png"
    assert fetched.info.content_type == "image/png"


def test_attachment_access_rules(server: ChatServer) -> None:
    attachment = server.upload_attachment("alice", PNG, "image/png", "cat.png")
    with pytest.raises(Forbidden, match="not a member of any conversation"):
        server.fetch_attachment("alice", attachment)  # not shared anywhere yet
    server.send_message("alice", "bob", "look", "k1", attachments=[attachment])
    assert server.fetch_attachment("bob", attachment).data == PNG
    with pytest.raises(Forbidden, match="carol"):
        server.fetch_attachment("carol", attachment)
    with pytest.raises(Forbidden, match="neither uploaded nor received"):
        server.send_message("carol", "dave", "stolen", "k1", attachments=[attachment])
    forwarded = server.send_message("bob", "dave", "fwd", "k1", attachments=[attachment])
    assert forwarded.attachments == (attachment,)
    with pytest.raises(NotFound, match="no attachment"):
        server.fetch_attachment("bob", "0" * 64)
    with pytest.raises(NotFound, match="upload it first"):
        server.send_message("alice", "bob", "x", "k2", attachments=["0" * 64])


def test_attachment_limits(tmp_path: Path) -> None:
    with ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path, max_attachment_bytes=16) as chat:
        chat.register_user("alice")
        with pytest.raises(InvalidRequest, match="limit is 16 bytes"):
            chat.upload_attachment("alice", PNG + b"0123456789", "image/png", "big.png")
        with pytest.raises(InvalidRequest, match="not allowed"):
            chat.upload_attachment("alice", b"MZ", "application/x-msdownload", "a.exe")
        with pytest.raises(InvalidRequest, match="path separators"):
            chat.upload_attachment("alice", b"text", "text/plain", "../../etc/passwd")
        assert chat.storage_stats().attachment_count == 0


def test_attachment_files_are_named_by_hash(server: ChatServer) -> None:
    attachment = server.upload_attachment("alice", b"notes", "text/plain", "evil name.txt")
    names = [p.name for p in server.files.directory.rglob("*") if p.is_file()]
    assert names == [attachment]


def test_memory_server_owns_a_temporary_data_dir() -> None:
    chat = ChatServer()
    directory = chat.files.directory
    assert directory.is_dir()
    chat.close()
    assert not directory.exists()


# --- durability ---------------------------------------------------------------------------------


def test_reopening_the_file_finds_everything(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(path, clock=clock) as chat:
        assert chat.store.journal_mode == "wal"  # type: ignore[attr-defined]
        for user in ("alice", "bob", "carol"):
            chat.register_user(user)
        group = chat.create_group("alice", ["bob", "carol"], "team")
        first = chat.send_message("alice", group, "hello", "k1")
        chat.send_message("bob", "alice", "direct", "b1")
        chat.mark_seen("carol", group, 1)
        chat.ack_delivery("carol", "phone", group, chat.sync("carol", "phone", {}).message_count)
        attachment = chat.upload_attachment("alice", PNG, "image/png", "cat.png")
        chat.send_message("alice", group, "pic", "k2", attachments=[attachment])
        chat.remove_member("alice", group, "bob")
        last_id = chat.send_message("alice", group, "last", "k3").message_id
    clock.step_back(60)  # even with the clock behind, new ids sort after old ones
    with ChatServer(path, clock=clock) as chat:
        assert chat.members(group) == ("alice", "carol")
        assert chat.send_message("alice", group, "hello", "k1") == first  # the key survived
        with pytest.raises(InvalidRequest, match="already registered"):
            chat.register_user("bob")
        assert chat.seen_by(group, 1) == ("alice", "carol")
        assert chat.sync("carol", "phone", {}).message_count == 2
        assert chat.fetch_attachment("carol", attachment).data == PNG
        assert chat.fetch_conversations("alice", 0, 5).items[0].conversation_id == group
        assert chat.send_message("alice", group, "new", "k4").message_id > last_id
        assert chat.send_message("alice", group, "new2", "k5").seq == 5


def test_errors_are_chat_errors(server: ChatServer) -> None:
    for call in (lambda: server.send_message("zed", "bob", "x", "k"),
                 lambda: server.fetch_messages("alice", "g:1"),
                 lambda: server.send_message("alice", "alice", "x", "k")):
        with pytest.raises(ChatError) as caught:
            call()
        assert caught.value.code in {"not_found", "invalid_request"}


def test_cold_messages_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(path, clock=clock) as chat:
        chat.register_user("alice")
        chat.register_user("bob")
        old = chat.send_message("alice", "bob", "from last month", "k1")
        clock.advance(40 * 86_400)
        chat.send_message("alice", "bob", "today", "k2")
        assert chat.apply_retention(ArchiveAfterDays(30)).archived_messages == 1
    assert (tmp_path / "chat.db.cold").is_file()
    with ChatServer(path, clock=clock) as chat:
        history = chat.fetch_messages("bob", old.conversation_id)
        assert [(m.content, m.cold) for m in history] == [("today", False), ("from last month", True)]
        assert chat.storage_stats().cold_messages == 1


def test_reprs_and_clock_checks(server: ChatServer, clock: ManualClock) -> None:
    session = server.connect("alice", "web")
    assert repr(session) == "DeviceSession(alice/web, 0 queued)"
    assert repr(server.local_fanout) == "LocalFanout(1 sessions)"
    assert repr(server).startswith("ChatServer(SQLiteStore(memory")
    assert repr(clock) == "ManualClock(now_s=1750000000.0)"
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        clock.advance(math.nan)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance(-2e9)


def test_public_names_are_importable() -> None:
    import chatdesign.chat as chat

    assert all(hasattr(chat, name) for name in chat.__all__)
    assert {"ChatServer", "ChatError", "NotFound", "Forbidden", "InvalidRequest",
            "IdempotencyConflict", "Message"} <= set(chat.__all__)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s, g: s.add_member("alice", g, "zed"), NotFound, "zed"),
        (lambda s, g: s.add_member("alice", "g:404", "bob"), NotFound, "no conversation 'g:404'"),
        (lambda s, g: s.remove_member("alice", "g:404", "bob"), NotFound, "no conversation"),
        (lambda s, g: s.members("g:404"), NotFound, "no conversation"),
        (lambda s, g: s.members("team"), InvalidRequest, "not a conversation id"),
        (lambda s, g: s.seen_by("g:404", 1), NotFound, "no conversation"),
        (lambda s, g: s.mark_seen("alice", "g:404", 1), NotFound, "no conversation"),
        (lambda s, g: s.connect("zed", "phone"), NotFound, "no user 'zed'"),
        (lambda s, g: s.connect("alice", "../phone"), InvalidRequest, "device_id"),
        (lambda s, g: s.sync("zed", "phone", {}), NotFound, "no user 'zed'"),
        (lambda s, g: s.upload_attachment("zed", b"x", "text/plain", "x.txt"), NotFound, "no user"),
        (lambda s, g: s.fetch_attachment("zed", "0" * 64), NotFound, "no user"),
        (lambda s, g: s.fetch_attachment("alice", 42), NotFound, "no attachment 42"),
        (lambda s, g: s.create_group("zed", ["alice"], "t"), NotFound, "no such users: zed"),
        (lambda s, g: s.send_message("alice", "bob", "x", "k", attachments="abc"), InvalidRequest,
         "sequence of attachment ids"),
    ],
)
def test_remaining_error_paths_change_nothing(
    server: ChatServer, dump: Dump, call: Callable[[ChatServer, str], object],
    error: type[ChatError], match: str,
) -> None:
    group = server.create_group("alice", ["bob"], "team")
    before = dump(server)
    with pytest.raises(error, match=match):
        call(server, group)
    assert dump(server) == before


def test_has_user(server: ChatServer) -> None:
    assert server.has_user("alice")
    assert not server.has_user("nobody")
    with pytest.raises(InvalidRequest, match="user_id must be"):
        server.has_user("not valid!")
