"""Self-checks for the notebooks' exercises.

Each exercise gives the reader an answer cell (``answer = None  # your estimate``) and ends with a
call such as ``check_within("peak RPS", answer, expected, rel_tol=0.1, hint=...)``. The verdict
says "not answered yet" (with a hint) for ``None``; for a wrong answer it says *why* -- too high or
too low, roughly by how much, and the likely mistake -- without printing the expected value, so a
wrong estimate teaches something and the exercise is still an exercise. Exercise-specific
checks live next to their topic (e.g. :func:`check_messenger_estimate` here for notebook 01) and
return the same :class:`CheckResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from chatdesign.units import format_bytes, format_count


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: ``passed``, plus a sentence saying why."""

    name: str
    passed: bool
    explanation: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.name}: {self.explanation}"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:  # IPython display
        printer.text(str(self))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CheckReport:
    """Several :class:`CheckResult` together; passes when all of them pass."""

    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        total = sum(r.passed for r in self.results)
        lines.append(f"{total}/{len(self.results)} checks passed")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:  # IPython display
        printer.text(str(self))  # type: ignore[attr-defined]


def _show(value: float, unit: str) -> str:
    if unit == "bytes":
        return format_bytes(value)
    return f"{format_count(value)} {unit}".rstrip()


NOT_ANSWERED = "not answered yet"
"""The explanation's opening words when the reader's answer cell still holds ``None``."""


def not_answered(name: str, hint: str = "") -> CheckResult:
    """The verdict on an answer cell still left at ``None``: not passed, with a hint to start from."""
    return CheckResult(name, False, f"{NOT_ANSWERED}. {hint}".strip() if hint else NOT_ANSWERED)


def _how_far(ratio: float) -> str:
    """How far off a wrong answer is, in words coarse enough not to give the answer away."""
    factor = ratio if ratio >= 1 else 1 / ratio
    if factor < 1.5:
        return "a little"
    if factor < 3:
        return "by up to a factor of 3"
    if factor < 30:
        return "by about an order of magnitude"
    return "by orders of magnitude"


def check_within(
    name: str,
    answer: float | None,
    expected: float,
    rel_tol: float = 0.1,
    unit: str = "",
    hint: str = "",
    mistakes: Mapping[str, float] | None = None,
) -> CheckResult:
    """Check ``answer`` against ``expected`` within a relative tolerance (0.1 = 10 %).

    ``None`` (the reader has not answered yet) gives "not answered yet" and the ``hint``. A wrong
    answer is diagnosed -- too high or too low, and roughly by how much -- without printing the
    expected value, so the reader still has something to work out; ``hint`` names the likely
    mistake. A right answer shows the value it matched.

    ``mistakes`` maps a likely mistake, in words, to the value that mistake produces (e.g.
    ``{"the fan-out to receivers is missing": expected / receivers}``); a wrong answer within
    ``rel_tol`` of one of them is told that mistake instead of the general ``hint``.
    Raises ``ValueError`` if the answer is not a finite number or the tolerance is not positive.
    """
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be positive, got {rel_tol!r}")
    if answer is None:
        return not_answered(name, hint)
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        raise ValueError(f"{name}: the answer must be a number, got {answer!r}")
    if not math.isfinite(answer):
        raise ValueError(f"{name}: the answer must be finite, got {answer!r}")
    if expected == 0:
        passed = abs(answer) <= rel_tol
        why = "right" if passed else f"{_show(answer, unit)} is too {'high' if answer > 0 else 'low'}"
        return CheckResult(name, passed, f"{why}. {hint}".strip() if not passed and hint else why)
    ratio = answer / expected
    if abs(ratio - 1) <= rel_tol:
        return CheckResult(name, True, f"{_show(answer, unit)} is within {rel_tol:.0%} of {_show(expected, unit)}")
    if ratio <= 0:
        why = f"{_show(answer, unit)} has the wrong sign"
    else:
        direction = "high" if ratio > 1 else "low"
        why = f"{_show(answer, unit)} is too {direction}, {_how_far(ratio)} (allowed ±{rel_tol:.0%})"
    for mistake, value in (mistakes or {}).items():
        if value and abs(answer / value - 1) <= rel_tol:
            return CheckResult(name, False, f"{why}. It matches a known slip: {mistake}.")
    return CheckResult(name, False, f"{why}. {hint}" if hint else why)


@dataclass(frozen=True)
class MessengerScenario:
    """The exercise of notebook 01: a group-chat app to estimate by hand.

    Every field has a unit in its name; the expected answers come from
    :mod:`chatdesign.estimation`, so the exercise and the calculators cannot disagree.
    """

    daily_active_users: float = 20e6
    messages_per_user_per_day: float = 30
    receivers_per_message: float = 10
    peak_factor: float = 2.0
    bytes_per_message: float = 150
    image_fraction: float = 0.05
    image_bytes: float = 300e3
    retention_days: float = 2 * 365
    replication_factor: float = 3

    def expected_peak_delivery_rps(self) -> float:
        """Peak messages delivered per second (every receiver counts)."""
        from chatdesign.estimation import estimate_traffic

        traffic = estimate_traffic(
            self.daily_active_users, self.messages_per_user_per_day, self.peak_factor, self.receivers_per_message
        )
        return float(traffic.read_peak_rps)

    def expected_total_storage_bytes(self) -> float:
        """Bytes stored after the retention period, replicas included (messages stored once)."""
        from chatdesign.estimation import estimate_storage

        storage = estimate_storage(
            self.daily_active_users * self.messages_per_user_per_day,
            self.bytes_per_message,
            self.retention_days,
            self.replication_factor,
            self.image_fraction,
            self.image_bytes,
        )
        return float(storage.total_bytes)


def check_messenger_estimate(
    peak_delivery_rps: float | None,
    total_storage_bytes: float | None,
    scenario: MessengerScenario | None = None,
    rel_tol: float = 0.25,
) -> CheckReport:
    """Self-check for notebook 01's exercise: is each answer within ``rel_tol`` (25 %)?

    An order-of-magnitude estimate is what an interview asks for; 25 % leaves room for rounding
    (86,400 → 100,000 s a day) but not for a forgotten fan-out or replication factor.
    """
    chosen = scenario or MessengerScenario()
    rps = chosen.expected_peak_delivery_rps()
    stored = chosen.expected_total_storage_bytes()
    return CheckReport(
        (
            check_within(
                "peak delivery rate", peak_delivery_rps, rps, rel_tol, "rps",
                hint="every message is delivered to each receiver, and the peak is a multiple of the average",
                mistakes={
                    "each message goes to every receiver (the fan-out is missing)": rps / chosen.receivers_per_message,
                    "the peak is a multiple of the average (the peak factor is missing)": rps / chosen.peak_factor,
                },
            ),
            check_within(
                "storage after retention", total_storage_bytes, stored, rel_tol, "bytes",
                hint="count images as well as text, keep them for the whole retention, and store every replica",
                mistakes={
                    "every byte is stored on each replica (the replication factor is missing)":
                        stored / chosen.replication_factor,
                    "a message is stored once, not once per receiver": stored * chosen.receivers_per_message,
                },
            ),
        )
    )
