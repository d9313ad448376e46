"""Self-checks for the notebooks' exercises.

Each exercise ends with a call such as ``check_within("peak RPS", mine, expected, rel_tol=0.1)``.
The answer object says whether the reader passed and, when not, *why*: too high or too low and
by how much, so a wrong estimate teaches something instead of just failing. Exercise-specific
checks live next to their topic (e.g. :func:`check_messenger_estimate` here for notebook 01) and
return the same :class:`CheckResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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


def check_within(
    name: str, answer: float, expected: float, rel_tol: float = 0.1, unit: str = ""
) -> CheckResult:
    """Check ``answer`` against ``expected`` within a relative tolerance (0.1 = 10 %).

    Raises ``ValueError`` if the answer is not a finite number or the tolerance is not positive.
    """
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        raise ValueError(f"{name}: the answer must be a number, got {answer!r}")
    if not math.isfinite(answer):
        raise ValueError(f"{name}: the answer must be finite, got {answer!r}")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be positive, got {rel_tol!r}")
    suffix = f" {unit}" if unit else ""
    if expected == 0:
        passed = abs(answer) <= rel_tol
        return CheckResult(
            name, passed, f"expected 0{suffix}, got {answer:,.4g}{suffix}"
        )
    ratio = answer / expected
    passed = abs(ratio - 1) <= rel_tol
    if passed:
        why = f"{answer:,.4g}{suffix} is within {rel_tol:.0%} of {expected:,.4g}{suffix}"
    else:
        direction = "high" if ratio > 1 else "low"
        why = (
            f"{answer:,.4g}{suffix} is {ratio:.2f}x the expected {expected:,.4g}{suffix} "
            f"(too {direction}; allowed ±{rel_tol:.0%})"
        )
    return CheckResult(name, passed, why)
