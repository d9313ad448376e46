"""Retention policies: the cut each one decides, and what apply_retention does to a server."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from chatdesign.chat import (
    ArchiveAfterDays,
    ChatServer,
    ClientOnly,
    DeleteAfterDays,
    InvalidRequest,
    KeepAll,
    KeepLastN,
    ManualClock,
    NotFound,
    RetentionReport,
    StorageStats,
)

Dump = Callable[[ChatServer], list[str]]
DAY_S = 86_400


# --- the policies as values ---------------------------------------------------------------------


def test_policy_validation() -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            KeepLastN(bad)  # type: ignore[arg-type]
    for bad_days in (-1, math.nan, math.inf, "30"):
        with pytest.raises(ValueError, match="days"):
            ArchiveAfterDays(bad_days)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="days"):
            DeleteAfterDays(bad_days)  # type: ignore[arg-type]


def test_policy_cuts() -> None:
    assert KeepLastN(10).cut(25) == 15
    assert KeepLastN(10).cut(4) == 0
    assert ClientOnly().cut([5, 3, 9], every_member_has_a_device=True) == 3
    assert ClientOnly().cut([5, 3, 9], every_member_has_a_device=False) == 0
    assert ClientOnly().cut([], every_member_has_a_device=True) == 0
    assert ArchiveAfterDays(30).cutoff_time(100 * DAY_S) == 70 * DAY_S
    assert DeleteAfterDays(0.5).cutoff_time(DAY_S) == DAY_S / 2


def test_policy_labels_and_actions() -> None:
    policies = [KeepAll(), KeepLastN(5), ClientOnly(), ArchiveAfterDays(30), DeleteAfterDays(365)]
    assert [p.describe() for p in policies] == [
        "keep all", "keep last 5", "client only", "archive after 30 d", "delete after 365 d"]
    assert [p.action for p in policies] == ["keep", "delete", "delete", "archive", "delete"]


def test_report_and_stats_values() -> None:
    report = RetentionReport("keep last 5", 2, 10, 0)
    assert report.to_frame()["deleted_messages"].tolist() == [10]
    with pytest.raises(ValueError, match="deleted_messages"):
        RetentionReport("x", 0, -1, 0)
    stats = StorageStats(1, 2, 100, 50, 1, 10)
    assert stats.total_bytes == 160
    assert stats.to_frame()["total_bytes"].tolist() == [160]
    with pytest.raises(ValueError, match="cold_bytes"):
        StorageStats(1, 2, 100, -50, 1, 10)


# --- on a server --------------------------------------------------------------------------------


@pytest.fixture
def history(server: ChatServer, clock: ManualClock) -> dict[str, str]:
    """A 1:1 chat with a message per day for 40 days, and a group with 5 recent messages."""
    for day in range(40):
        server.send_message("alice", "bob", f"day {day}", f"d{day}")
        clock.advance(DAY_S)
    group = server.create_group("alice", ["bob", "carol"], "team")
    for i in range(5):
        server.send_message("carol", group, f"g{i}", f"g{i}")
    first = server.fetch_conversations("alice", 0, 2).items
    return {"group": group, "direct": next(i.conversation_id for i in first if i.kind == "direct")}


def test_keep_all_keeps_every_message(server: ChatServer, history: dict[str, str]) -> None:
    before = server.storage_stats()
    report = server.apply_retention(KeepAll())
    # Keys of messages older than the 7-day idempotency window are forgotten by every run.
    assert report == RetentionReport("keep all", 0, 0, 0, expired_idempotency_keys=33)
    assert server.storage_stats().hot_messages == before.hot_messages == 45


def test_keep_all_within_the_window_changes_nothing(server: ChatServer, dump: Dump) -> None:
    server.send_message("alice", "bob", "fresh", "k1")
    before = dump(server)
    assert server.apply_retention(KeepAll()) == RetentionReport("keep all", 0, 0, 0)
    assert dump(server) == before


def test_expired_key_makes_a_late_retry_a_new_message(
    server: ChatServer, clock: ManualClock
) -> None:
    first = server.send_message("alice", "bob", "hi", "k1")
    clock.advance(server.idempotency_window_s - 1)
    assert server.apply_retention(KeepAll()).expired_idempotency_keys == 0
    assert server.send_message("alice", "bob", "hi", "k1") == first
    clock.advance(2)
    assert server.apply_retention(KeepAll()).expired_idempotency_keys == 1
    assert server.send_message("alice", "bob", "hi", "k1").seq == 2


def test_idempotency_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idempotency_window_s"):
        ChatServer(idempotency_window_s=0)


def test_keep_last_n(server: ChatServer, history: dict[str, str]) -> None:
    report = server.apply_retention(KeepLastN(10))
    assert report == RetentionReport("keep last 10", 1, 30, 0, expired_idempotency_keys=33)
    kept = server.fetch_messages("bob", history["direct"], limit=100)
    assert [m.seq for m in kept] == list(range(40, 30, -1))
    assert server.apply_retention(KeepLastN(10)).deleted_messages == 0  # already applied
    assert len(server.fetch_messages("bob", history["group"])) == 5


def test_delete_after_days(server: ChatServer, history: dict[str, str]) -> None:
    report = server.apply_retention(DeleteAfterDays(30))
    kept = server.fetch_messages("bob", history["direct"], limit=100)
    assert report.deleted_messages == 40 - len(kept)
    assert min(m.seq for m in kept) == 11
    assert server.storage_stats().hot_messages == len(kept) + 5


def test_archive_after_days_keeps_history_readable(
    server: ChatServer, history: dict[str, str]
) -> None:
    hot_before = server.storage_stats()
    report = server.apply_retention(ArchiveAfterDays(30))
    assert report.archived_messages == 10 and report.deleted_messages == 0
    everything = server.fetch_messages("bob", history["direct"], limit=100)
    assert [m.seq for m in everything] == list(range(40, 0, -1))
    assert [m.cold for m in everything] == [False] * 30 + [True] * 10
    assert everything[-1].content == "day 0"
    page = server.fetch_messages("bob", history["direct"], before_seq=15, limit=10)
    assert [m.seq for m in page] == list(range(14, 4, -1))
    assert [m.cold for m in page] == [False] * 4 + [True] * 6
    catch_up = server.fetch_messages("bob", history["direct"], after_seq=8, limit=4)
    assert [(m.seq, m.cold) for m in catch_up] == [(9, True), (10, True), (11, False), (12, False)]
    stats = server.storage_stats()
    assert (stats.hot_messages, stats.cold_messages) == (hot_before.hot_messages - 10, 10)
    assert stats.cold_bytes > 0


def test_compact_gives_deleted_space_back(server: ChatServer, history: dict[str, str]) -> None:
    for i in range(300):
        server.send_message("bob", "alice", "padding " * 20, f"pad{i}")
    server.apply_retention(KeepLastN(5))
    before = server.storage_stats()
    server.compact()
    after = server.storage_stats()
    assert after.hot_messages == before.hot_messages
    assert after.hot_bytes < before.hot_bytes


def test_archive_then_delete_removes_cold_too(server: ChatServer, history: dict[str, str]) -> None:
    server.apply_retention(ArchiveAfterDays(30))
    report = server.apply_retention(DeleteAfterDays(35))
    assert report.deleted_messages == 5
    assert server.storage_stats().cold_messages == 5


def test_retry_after_archive_returns_the_cold_original(
    server: ChatServer, clock: ManualClock
) -> None:
    sent = server.send_message("alice", "bob", "archived soon", "k1")
    clock.advance(DAY_S)
    server.apply_retention(ArchiveAfterDays(0.5))
    retry = server.send_message("alice", "bob", "archived soon", "k1")
    assert retry.cold and (retry.seq, retry.message_id) == (1, sent.message_id)


def test_retry_after_delete_says_what_happened(
    server: ChatServer, clock: ManualClock, dump: Dump
) -> None:
    server.send_message("alice", "bob", "one", "k1")
    server.send_message("alice", "bob", "two", "k2")
    server.apply_retention(KeepLastN(1))
    before = dump(server)
    with pytest.raises(NotFound, match="retention policy has since removed"):
        server.send_message("alice", "bob", "one", "k1")
    assert dump(server) == before


def test_paging_as_of_the_past_survives_retention(
    server: ChatServer, clock: ManualClock, history: dict[str, str]
) -> None:
    pinned = server.fetch_conversations("alice", 0, 1)
    assert pinned.items[0].conversation_id == history["group"]
    clock.advance(1)
    server.send_message("bob", "alice", "bump the direct chat", "late")
    server.apply_retention(ArchiveAfterDays(20))
    second = server.fetch_conversations("alice", 1, 1, pinned.last_updated_timestamp)
    assert [i.conversation_id for i in second.items] == [history["direct"]]
    assert second.items[0].last_message_preview == "day 39"


def test_client_only_waits_for_every_device(server: ChatServer) -> None:
    conversation = server.send_message("alice", "bob", "one", "k1").conversation_id
    server.send_message("alice", "bob", "two", "k2")
    server.sync("alice", "phone", {})
    server.ack_delivery("alice", "phone", conversation, 2)
    assert server.apply_retention(ClientOnly()).deleted_messages == 0  # bob has no device yet
    server.sync("bob", "phone", {})
    assert server.apply_retention(ClientOnly()).deleted_messages == 0  # synced, not acknowledged
    server.ack_delivery("bob", "phone", conversation, 2)
    server.connect("bob", "laptop")  # a second device that has received nothing
    assert server.apply_retention(ClientOnly()).deleted_messages == 0
    server.sync("bob", "laptop", {})
    server.ack_delivery("bob", "laptop", conversation, 2)
    report = server.apply_retention(ClientOnly())
    assert report == RetentionReport("client only", 1, 2, 0)
    assert server.fetch_messages("alice", conversation) == []
    third = server.send_message("alice", "bob", "three", "k3")
    assert third.seq == 3  # the sequence continues after deleted messages


def test_unknown_policy_is_refused(server: ChatServer) -> None:
    with pytest.raises(InvalidRequest, match="policy must be one of"):
        server.apply_retention("keep everything")  # type: ignore[arg-type]
