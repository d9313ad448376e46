"""The generated workload drives a real server deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatdesign.chat import ChatServer, ClientOnly, ManualClock
from chatdesign.chat.workload import ChatWorkload, WorkloadSummary, populate

SMALL = ChatWorkload(users=8, direct_conversations=6, groups=1, group_size=4, days=5,
                     messages_per_conversation_per_day=2.0, second_device_fraction=0.5,
                     second_device_sync_days=2, seed=4)


def _run(tmp_path: Path) -> tuple[ChatServer, ManualClock, WorkloadSummary]:
    clock = ManualClock(1_750_000_000.0)
    server = ChatServer(clock=clock, data_dir=tmp_path)
    return server, clock, populate(server, clock, SMALL)


def test_populate_stores_what_it_reports(tmp_path: Path) -> None:
    server, clock, summary = _run(tmp_path / "a")
    assert summary.messages == server.storage_stats().hot_messages > 0
    assert summary.conversations == 7
    assert clock() == pytest.approx(1_750_000_000.0 + 5 * 86_400)
    frame = summary.to_frame()
    assert frame.loc[0, "messages_per_day"] == summary.messages / 5
    assert 1 < frame.loc[0, "mean_content_bytes"] < 200
    for conversation_id, count in summary.messages_per_conversation.items():
        member = server.members(conversation_id)[0]
        assert len(server.fetch_messages(member, conversation_id, limit=100)) == count
    server.close()


def test_populate_is_deterministic(tmp_path: Path) -> None:
    first = _run(tmp_path / "a")
    second = _run(tmp_path / "b")
    assert first[2] == second[2]
    first[0].close()
    second[0].close()


def test_phones_sync_daily_so_client_only_keeps_little(tmp_path: Path) -> None:
    server, _, summary = _run(tmp_path / "a")
    report = server.apply_retention(ClientOnly())
    kept = server.storage_stats().hot_messages
    assert report.deleted_messages + kept == summary.messages
    assert 0 < report.deleted_messages
    server.close()


def test_table_bytes_names_the_big_tables(tmp_path: Path) -> None:
    server, _, _ = _run(tmp_path / "a")
    sizes = server.store.table_bytes()  # type: ignore[attr-defined]
    assert "messages" in sizes and "idempotency_keys" in sizes
    assert list(sizes.values()) == sorted(sizes.values(), reverse=True)
    server.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"users": 1}, "users"), ({"direct_conversations": 100, "users": 5}, "pairs"),
     ({"group_size": 1}, "group_size"), ({"days": 0}, "days"),
     ({"messages_per_conversation_per_day": 0}, "messages_per_conversation_per_day"),
     ({"second_device_fraction": 2}, "second_device_fraction"), ({"seed": -1}, "seed")],
)
def test_workload_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ChatWorkload(**kwargs)  # type: ignore[arg-type]
