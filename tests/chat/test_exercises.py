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
    assert not missing.passed and "4 messages are missing" in missing.explanation
    assert "7" not in missing.explanation  # the total is not given away
    unordered = check_history_walk(server, "bob", conversation, [1, 2, 3, 4, 5, 6, 7])
    assert not unordered.passed and "newest first" in unordered.explanation
    unanswered = check_history_walk(server, "bob", conversation, None)
    assert not unanswered.passed and unanswered.explanation.startswith("not answered yet")
    assert "before_seq" in unanswered.explanation


def test_cp_availability() -> None:
    scenario = PartitionScenario()
    assert check_cp_availability(0.8, scenario).passed
    low = check_cp_availability(0.6, scenario)
    assert not low.passed and "during" in low.explanation and "too low" in low.explanation
    high = check_cp_availability(1.0, scenario)
    assert not high.passed and "majority" in high.explanation and "too high" in high.explanation
    for wrong in (low, high):
        assert "0.8" not in wrong.explanation and "80" not in wrong.explanation
    unanswered = check_cp_availability(None, scenario)
    assert not unanswered.passed and unanswered.explanation.startswith("not answered yet")
    assert "minority" in unanswered.explanation
    percent = check_cp_availability(80, scenario)
    assert not percent.passed and "fraction" in percent.explanation


def test_keep_last_n() -> None:
    counts = {"a": 50, "b": 5, "c": 20}
    assert check_keep_last_n(45, counts, 20).passed
    wrong = check_keep_last_n(60, counts, 20)
    assert not wrong.passed and "too many" in wrong.explanation and "fewer than n" in wrong.explanation
    everything = check_keep_last_n(75, counts, 20)
    assert not everything.passed and "lose their oldest" in everything.explanation
    other_high = check_keep_last_n(50, counts, 20)
    assert not other_high.passed and "too many" in other_high.explanation
    low = check_keep_last_n(10, counts, 20)
    assert not low.passed and "too few" in low.explanation and "up to n" in low.explanation
    for result in (wrong, everything, other_high, low):
        assert "45" not in result.explanation and "15" not in result.explanation  # no expected value, no gap
    unanswered = check_keep_last_n(None, counts, 20)
    assert not unanswered.passed and unanswered.explanation.startswith("not answered yet")
    assert not check_keep_last_n("45", counts, 20).passed  # type: ignore[arg-type]
