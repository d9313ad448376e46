"""The chat notebooks' self-checks reject wrong answers with a reason."""

from __future__ import annotations

from chatdesign.chat import ChatServer
from chatdesign.chat.exercises import check_cp_availability, check_history_walk, check_keep_last_n
from chatdesign.chat.replication import PartitionScenario


def test_history_walk(server: ChatServer) -> None:
    for i in range(7):
        server.send_message("alice", "bob", f"m{i}", f"k{i}")
    conversation = server.fetch_messages("bob", server.fetch_conversations(
        "bob", 0, 1).items[0].conversation_id)[0].conversation_id
    assert check_history_walk(server, "bob", conversation, [7, 6, 5, 4, 3, 2, 1]).passed
    repeated = check_history_walk(server, "bob", conversation, [7, 6, 5, 5, 4, 3, 3, 2, 1])
    assert not repeated.passed and "oldest" in repeated.explanation
    missing = check_history_walk(server, "bob", conversation, [7, 6, 5])
    assert not missing.passed and "4 of 7 messages are missing" in missing.explanation
    unordered = check_history_walk(server, "bob", conversation, [1, 2, 3, 4, 5, 6, 7])
    assert not unordered.passed and "newest first" in unordered.explanation


def test_cp_availability() -> None:
    scenario = PartitionScenario()
    assert check_cp_availability(0.8, scenario).passed
    low = check_cp_availability(0.6, scenario)
    assert not low.passed and "during" in low.explanation
    high = check_cp_availability(1.0, scenario)
    assert not high.passed and "majority" in high.explanation


def test_keep_last_n() -> None:
    counts = {"a": 50, "b": 5, "c": 20}
    assert check_keep_last_n(45, counts, 20).passed
    wrong = check_keep_last_n(60, counts, 20)
    assert not wrong.passed and "15 too many" in wrong.explanation
    assert "fewer than n" in wrong.explanation
    assert "up to n" in check_keep_last_n(10, counts, 20).explanation
    assert not check_keep_last_n("45", counts, 20).passed  # type: ignore[arg-type]
