"""Regression tests for the defects issue 15 found by trying the API adversarially, and for
the siblings of each (the same mistake elsewhere). Each test failed before its fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chatdesign.chat import (
    ChatError,
    ChatServer,
    InvalidRequest,
    ManualClock,
    NotFound,
)
from chatdesign.chat.core import MAX_API_INT, validate_device_id, validate_user_id

Dump = Callable[[ChatServer], list[str]]
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels"


# --- ids are never reused after a restart -------------------------------------------------------


def test_reopened_server_does_not_reuse_a_group_id(tmp_path: Path) -> None:
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        chat.register_user("alice")
        chat.register_user("bob")
        first = chat.create_group("alice", ["bob"], "one")
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        second = chat.create_group("alice", ["bob"], "two")  # was sqlite3.IntegrityError
        direct = chat.send_message("alice", "bob", "hi", "k1")
    assert len({first, second, direct.conversation_id}) == 3


def test_reopened_server_does_not_reuse_a_direct_id(tmp_path: Path) -> None:
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        for user in ("alice", "bob", "carol"):
            chat.register_user(user)
        first = chat.send_message("alice", "bob", "hi", "k1").conversation_id
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        second = chat.send_message("alice", "carol", "hi", "k2").conversation_id
    assert first != second


def test_ids_after_a_clock_step_back_across_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(1_750_000_000.0)
    ids: set[str] = set()
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        chat.register_user("alice")
        chat.register_user("bob")
        for i in range(3):
            ids.add(chat.create_group("alice", ["bob"], f"g{i}"))
            clock.advance(0.0004)
    clock.step_back(60)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        for i in range(3):
            ids.add(chat.create_group("alice", ["bob"], f"again {i}"))
        message = chat.send_message("alice", "bob", "hi", "k1")
        ids.add(message.conversation_id)
    assert len(ids) == 7


def test_clock_step_back_across_a_restart_keeps_membership_times_ordered(tmp_path: Path) -> None:
    """Sibling: a member added at the latest time, then a restart with the clock stepped back,
    used to make the group vanish from that member's (unpinned) conversation list."""
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        for user in ("alice", "bob", "carol"):
            chat.register_user(user)
        group = chat.create_group("alice", ["bob"], "team")
        clock.advance(30)
        chat.add_member("alice", group, "carol")
    clock.step_back(20)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        page = chat.fetch_conversations("carol", 0, 10)
    assert [i.conversation_id for i in page.items] == [group]


# --- pinned paging -------------------------------------------------------------------------------


def _groups(chat: ChatServer, clock: ManualClock, count: int) -> list[str]:
    ids = []
    for i in range(count):
        group = chat.create_group("alice", ["bob"], f"topic {i}")
        clock.advance(1)
        chat.send_message("bob", group, f"message {i}", f"setup-{i}")
        ids.append(group)
    return ids


def test_pinned_paging_with_a_message_at_exactly_the_pin(
    server: ChatServer, clock: ManualClock
) -> None:
    groups = _groups(server, clock, 6)
    clock.step_back(5)  # now() is clamped: every new write would be at exactly the pin
    first = server.fetch_conversations("alice", 0, 2)
    seen = [i.conversation_id for i in first.items]
    server.send_message("bob", groups[0], "bump the oldest", "late-1")
    server.create_group("carol", ["alice"], "created at the pin")
    for page_number in (1, 2):
        page = server.fetch_conversations("alice", page_number, 2, first.last_updated_timestamp)
        seen += [i.conversation_id for i in page.items]
    assert seen == groups[::-1]


def test_pinned_paging_with_a_member_added_at_exactly_the_pin(
    server: ChatServer, clock: ManualClock
) -> None:
    groups = _groups(server, clock, 4)
    other = server.create_group("carol", ["dave"], "not alice's yet")
    first = server.fetch_conversations("alice", 0, 2)
    server.add_member("carol", other, "alice")  # same clock reading as the pin
    page = server.fetch_conversations("alice", 1, 2, first.last_updated_timestamp)
    seen = [i.conversation_id for i in first.items + page.items]
    assert seen == groups[::-1]


def test_pinned_paging_while_the_reader_leaves_a_group(
    server: ChatServer, clock: ManualClock
) -> None:
    """Sibling: leaving a group used to drop it from pages pinned before the leave, shifting
    every later page by one (a conversation skipped)."""
    groups = _groups(server, clock, 6)
    first = server.fetch_conversations("bob", 0, 2)
    clock.advance(1)
    server.remove_member("bob", groups[5], "bob")  # on page 0 already
    seen = [i.conversation_id for i in first.items]
    for page_number in (1, 2):
        page = server.fetch_conversations("bob", page_number, 2, first.last_updated_timestamp)
        seen += [i.conversation_id for i in page.items]
    assert seen == groups[::-1]
    assert groups[5] not in [i.conversation_id for i in server.fetch_conversations("bob", 0, 10).items]


def test_a_pin_survives_a_restart_with_the_clock_stepped_back(tmp_path: Path) -> None:
    """Sibling across a restart: the pin was handed out after the last write; the reopened
    server's clock is behind it. The pin must still be accepted (not "in the future"), and a
    message sent after the restart must not enter the pinned view."""
    clock = ManualClock(1_750_000_000.0)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        for user in ("alice", "bob"):
            chat.register_user(user)
        groups = _groups(chat, clock, 4)
        clock.advance(30)
        first = chat.fetch_conversations("alice", 0, 2)
    clock.step_back(60)
    with ChatServer(tmp_path / "chat.db", clock) as chat:
        chat.send_message("bob", groups[0], "after the restart", "late")
        page = chat.fetch_conversations("alice", 1, 2, first.last_updated_timestamp)
    assert [i.conversation_id for i in first.items + page.items] == groups[::-1]


# --- leaving and re-joining ----------------------------------------------------------------------


def test_rejoining_keeps_receipts_and_device_positions(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob"], "team")
    for i in range(3):
        server.send_message("alice", group, f"m{i}", f"k{i}")
    assert server.sync("bob", "phone").message_count == 3
    assert server.ack_delivery("bob", "phone", group, 3) == 3
    assert server.mark_seen("bob", group, 3) == 3
    server.remove_member("bob", group, "bob")
    server.send_message("alice", group, "while bob was away", "k3")
    server.add_member("alice", group, "bob")
    assert server.delivered_positions("bob", "phone") == {group: 3}
    again = server.sync("bob", "phone")
    assert [m.seq for m in again.messages_by_conversation[group]] == [4]  # not 1..4
    assert server.ack_delivery("bob", "phone", group, 1) == 3  # never backwards
    summary = server.fetch_conversations("bob", 0, 10).items[0]
    assert summary.unread_count == 1  # not 4
    assert server.mark_seen("bob", group, 2) == 3  # never backwards
    assert "bob" in server.seen_by(group, 3)


def test_a_removed_member_is_not_counted_as_having_seen(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "carol"], "team")
    server.send_message("alice", group, "m", "k1")
    server.mark_seen("bob", group, 1)
    server.remove_member("alice", group, "bob")
    assert server.seen_by(group, 1) == ("alice",)


# --- device positions ----------------------------------------------------------------------------


def test_sync_refuses_a_position_beyond_the_last_message(server: ChatServer, dump: Dump) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    before = dump(server)
    with pytest.raises(InvalidRequest, match="beyond"):
        server.sync("bob", "phone", {conversation: 50})
    assert dump(server) == before
    server.send_message("alice", "bob", "two", "k2")
    assert server.sync("bob", "phone", {conversation: 1}).message_count == 1


# --- extremes and invalid text -------------------------------------------------------------------


@pytest.mark.parametrize("huge", [2**63, 2**64 + 5, 10**30, MAX_API_INT + 1])
def test_huge_integers_are_invalid_requests(server: ChatServer, huge: int) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    calls: list[Callable[[], object]] = [
        lambda: server.fetch_conversations("alice", huge, 10),
        lambda: server.fetch_messages("alice", conversation, before_seq=huge),
        lambda: server.fetch_messages("alice", conversation, after_seq=huge),
        lambda: server.sync("alice", "phone", {conversation: huge}),
        lambda: server.mark_seen("alice", conversation, huge),
        lambda: server.seen_by(conversation, huge),
        lambda: server.fetch_conversations("alice", 0, 10, float(huge)),
    ]
    for call in calls:
        with pytest.raises(InvalidRequest):
            call()


def test_largest_allowed_integers_still_work(server: ChatServer) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    assert server.fetch_conversations("alice", MAX_API_INT, 100).items == ()
    assert server.fetch_messages("alice", conversation, before_seq=MAX_API_INT)[0].seq == 1
    assert server.fetch_messages("alice", conversation, after_seq=MAX_API_INT) == []


@pytest.mark.parametrize("bad", ["\ud800", "bob\udfff", "g:1\ud800", "d:\ud83d"])
def test_lone_surrogates_in_ids_are_invalid_requests(server: ChatServer, bad: str) -> None:
    attachment = server.upload_attachment("alice", PNG, "image/png", "a.png")
    calls: list[Callable[[], object]] = [
        lambda: server.send_message("alice", bad, "hi", "k1"),
        lambda: server.send_message(bad, "bob", "hi", "k1"),
        lambda: server.fetch_attachment("alice", bad),
        lambda: server.fetch_attachment("alice", attachment[:-1] + "\ud800"),
        lambda: server.fetch_messages("alice", bad),
        lambda: server.members(bad),
        lambda: server.sync("alice", bad),
        lambda: server.upload_attachment("alice", PNG, "image/png", bad),
        lambda: server.upload_attachment("alice", PNG, bad, "a.png"),
    ]
    for call in calls:
        with pytest.raises(InvalidRequest):
            call()


def test_non_ascii_digits_are_not_conversation_ids(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest):
        server.fetch_messages("alice", "g:\u0663")  # ARABIC-INDIC DIGIT THREE


@pytest.mark.parametrize("bad", ["carol\n", "a" * 64 + "\n", "a" * 65, "ph\n"])
def test_the_id_rule_has_no_trailing_newline_loophole(server: ChatServer, bad: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_user_id(bad)
    with pytest.raises(InvalidRequest):
        validate_device_id(bad)
    with pytest.raises(InvalidRequest):
        server.register_user(bad)
    with pytest.raises(InvalidRequest):
        server.sync("alice", bad)
    with pytest.raises(InvalidRequest):
        server.create_group("alice", [bad], "t")


class CountingList(list[str]):
    """A member list that counts how many entries are read (a check on the work done, not a
    timing: the quadratic de-duplication read 50,000 ids and compared each with all the others)."""

    reads = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            CountingList.reads += 1
            yield item


def test_create_group_refuses_a_huge_member_list_unread(server: ChatServer) -> None:
    CountingList.reads = 0
    with pytest.raises(InvalidRequest, match="at most"):
        server.create_group("alice", CountingList(f"user{i}" for i in range(50_000)), "too big")
    with pytest.raises(InvalidRequest, match="at most"):
        server.create_group("alice", CountingList(["bob"] * 1_000_000), "repeats")
    assert CountingList.reads == 0  # refused by its length, before reading an entry


def test_create_group_reads_each_entry_once(server: ChatServer) -> None:
    CountingList.reads = 0
    members = CountingList(["bob", "carol"] * 500)  # at the 1,000-entry cap
    group = server.create_group("alice", members, "repeats")
    assert server.members(group) == ("alice", "bob", "carol")
    assert CountingList.reads == 1_000


def test_create_group_still_drops_repeats(server: ChatServer) -> None:
    group = server.create_group("alice", ["bob", "bob", "alice", "carol"], "t")
    assert server.members(group) == ("alice", "bob", "carol")


# --- constructor misconfiguration ----------------------------------------------------------------


def test_constructor_refuses_a_fanout_without_publish(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fanout"):
        ChatServer(tmp_path / "a.db", fanout=object())  # type: ignore[arg-type]
    assert not (tmp_path / "a.db").exists()  # checked before anything was created


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"worker_id": 5000}, "worker_id"),
        ({"worker_id": -1}, "worker_id"),
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"data_dir": 5}, "data_dir"),
        ({"idempotency_window_s": float("nan")}, "idempotency_window_s"),
    ],
)
def test_constructor_checks_everything_before_creating_files(
    tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ChatServer(tmp_path / "a.db", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_constructor_refuses_a_bad_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        ChatServer(5)  # type: ignore[arg-type]


def test_all_of_these_are_chat_errors() -> None:
    assert issubclass(InvalidRequest, ChatError) and issubclass(NotFound, ChatError)
