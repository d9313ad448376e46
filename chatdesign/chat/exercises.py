"""Self-checks for the chat notebooks' exercises (02-04).

Each returns a :class:`~chatdesign.exercises.CheckResult` whose explanation says *why* a wrong
answer is wrong, so the reader learns from the rejection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from chatdesign.chat.replication import PartitionScenario, expected_cp_availability
from chatdesign.chat.server import ChatServer
from chatdesign.exercises import CheckResult, check_within


def check_history_walk(
    server: ChatServer, user_id: str, conversation_id: str, seqs: Sequence[int]
) -> CheckResult:
    """Notebook 02: did the reader's ``before_seq`` loop read the whole stored history of a
    conversation, newest first, each message exactly once?"""
    name = "history walk"
    stored: list[int] = []
    while True:
        before = stored[-1] if stored else None
        page = server.fetch_messages(user_id, conversation_id, before_seq=before, limit=100)
        stored += [m.seq for m in page]
        if len(page) < 100:
            break
    answer = [int(s) for s in seqs]
    counts = Counter(answer)
    repeats = [s for s in dict.fromkeys(answer) if counts[s] > 1]
    if repeats:
        shown = ", ".join(map(str, repeats[:5]))
        return CheckResult(
            name, False,
            f"seqs {shown} came back more than once ({len(answer) - len(set(answer))} repeats): "
            "before_seq is exclusive, so pass the *oldest* seq of the page you just read",
        )
    missing = sorted(set(stored) - set(answer))
    if missing:
        return CheckResult(
            name, False,
            f"{len(missing)} of {len(stored)} messages are missing (e.g. seq {missing[0]}): "
            "keep going until a page comes back shorter than the limit",
        )
    if answer != stored:
        return CheckResult(name, False, "every message is there but not newest first")
    return CheckResult(name, True, f"all {len(stored)} messages, newest first, each once")


def check_cp_availability(answer: float, scenario: PartitionScenario) -> CheckResult:
    """Notebook 03: the reader's prediction of CP's availability for a scenario, within 2
    percentage points of ``1 - minority/replicas x partition share``."""
    expected = expected_cp_availability(
        scenario.n_replicas, scenario.minority_size, scenario.partition_fraction
    )
    result = check_within("CP availability", answer, expected, rel_tol=0.02 / expected)
    if result.passed or not isinstance(answer, int | float):
        return result
    hint = (
        " Only writes that land on the minority side *during* the partition are refused."
        if answer < expected
        else " A write on a replica of the minority side cannot reach a majority."
    )
    return CheckResult(result.name, False, f"{result.explanation}.{hint}")


def check_keep_last_n(answer: float, messages_per_conversation: Mapping[str, int], n: int) -> CheckResult:
    """Notebook 04: how many messages does ``KeepLastN(n)`` leave on the server? The answer
    must be exact (it is a count)."""
    name = "messages kept"
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return CheckResult(name, False, f"the answer must be a number, got {answer!r}")
    expected = sum(min(count, n) for count in messages_per_conversation.values())
    if answer == expected:
        return CheckResult(name, True, f"{expected:,} messages: each conversation keeps min(its count, {n})")
    if answer > expected:
        hint = "conversations with fewer than n messages keep all of them, not n"
        return CheckResult(name, False, f"{answer:,.0f} is {answer - expected:,.0f} too many: {hint}")
    hint = "each conversation keeps up to n of its newest messages"
    return CheckResult(name, False, f"{answer:,.0f} is {expected - answer:,.0f} too few: {hint}")
