"""Self-checks for the chat notebooks' exercises (02-04).

Each follows the book's exercise convention (see :mod:`chatdesign.exercises`): the reader's
answer cell starts as ``None``, which gets "not answered yet" and a hint; a wrong answer is
diagnosed -- what kind of mistake it is -- without printing the expected value. Each returns a
:class:`~chatdesign.exercises.CheckResult`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from chatdesign.chat.replication import PartitionScenario, expected_cp_availability
from chatdesign.chat.server import ChatServer
from chatdesign.exercises import CheckResult, check_within, not_answered

HISTORY_WALK_HINT = (
    "start with before_seq=None, pass the seq of the oldest message of each page as the next "
    "before_seq, and stop when a page comes back shorter than the limit"
)
CP_AVAILABILITY_HINT = (
    "a write is refused only if it lands on a replica of the minority side while the partition lasts"
)
KEEP_LAST_N_HINT = "each conversation keeps its newest messages, but never more than it has"


def check_history_walk(
    server: ChatServer, user_id: str, conversation_id: str, seqs: Sequence[int] | None
) -> CheckResult:
    """Notebook 02: did the reader's ``before_seq`` loop read the whole stored history of a
    conversation, newest first, each message exactly once? ``None``: not answered yet."""
    name = "history walk"
    if seqs is None:
        return not_answered(name, HISTORY_WALK_HINT)
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
            f"{len(missing)} messages are missing (e.g. seq {missing[0]}): "
            "keep going until a page comes back shorter than the limit",
        )
    if answer != stored:
        return CheckResult(name, False, "every message is there but not newest first")
    return CheckResult(name, True, f"all {len(stored)} messages, newest first, each once")


def check_cp_availability(answer: float | None, scenario: PartitionScenario) -> CheckResult:
    """Notebook 03: the reader's prediction of CP's availability for a scenario (a fraction),
    within 2 percentage points of ``1 - minority/replicas x partition share``."""
    expected = expected_cp_availability(
        scenario.n_replicas, scenario.minority_size, scenario.partition_fraction
    )
    if answer is not None and not isinstance(answer, bool) and isinstance(answer, int | float) and answer > 1:
        return CheckResult(
            "CP availability", False,
            f"{answer:g} is more than 1: give the share of writes accepted as a fraction (0.5 = 50 %)",
        )
    if answer is None:
        return not_answered("CP availability", CP_AVAILABILITY_HINT)
    result = check_within("CP availability", answer, expected, rel_tol=0.02 / expected)
    if result.passed:
        return result
    diagnosis = (
        "Too many refused: only writes that land on the minority side *during* the partition are "
        "refused, not for the whole run."
        if answer < expected
        else "Too few refused: a write on a replica of the minority side cannot reach a majority, "
        "so CP refuses it."
    )
    return CheckResult(result.name, False, f"{result.explanation}. {diagnosis}")


def check_keep_last_n(
    answer: float | None, messages_per_conversation: Mapping[str, int], n: int
) -> CheckResult:
    """Notebook 04: how many messages does ``KeepLastN(n)`` leave on the server? The answer
    must be exact (it is a count); a wrong one is diagnosed without giving the count away."""
    name = "messages kept"
    if answer is None:
        return not_answered(name, KEEP_LAST_N_HINT)
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return CheckResult(name, False, f"the answer must be a number, got {answer!r}")
    counts = list(messages_per_conversation.values())
    expected = sum(min(count, n) for count in counts)
    if answer == expected:
        return CheckResult(name, True, f"{expected:,} messages: each conversation keeps min(its count, {n})")
    if answer == n * len(counts):
        why = "that is n for every conversation, but conversations with fewer than n messages keep all of them, not n"
    elif answer == sum(counts):
        why = "that is every stored message: conversations with more than n messages lose their oldest ones"
    elif answer > expected:
        why = "conversations with fewer than n messages keep all of them, not n"
    else:
        why = "each conversation keeps up to n of its newest messages; did you drop the quiet ones?"
    direction = "many" if answer > expected else "few"
    return CheckResult(name, False, f"{answer:,.0f} is too {direction}: {why}")
