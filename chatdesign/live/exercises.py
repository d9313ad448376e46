"""Self-checks for the live-video notebooks' exercises, in the book's exercise convention.

The reader writes ``answer = None  # your estimate`` and calls a checker. ``None`` gets "not
answered yet" and a hint; a right answer (within a tolerance) passes; a wrong one is told whether
it is too high or too low and, when it matches a common slip, which one -- never the expected
value, so the checker cannot be used to read the answer off. The worked solutions sit in
collapsed blocks in the notebooks.

Taught in ``notebooks/07_live_pipeline.ipynb`` and ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from chatdesign.exercises import CheckResult


def diagnose(name: str, answer: float | None, expected: float, *, rel_tol: float, hint: str,
             slips: Mapping[str, float] | None = None) -> CheckResult:
    """Judge ``answer`` against ``expected`` without revealing ``expected``.

    ``hint`` is shown for an unanswered (``None``) exercise. ``slips`` maps a description of a
    likely mistake ("left out the player's buffer") to the value that mistake gives; an answer
    within ``rel_tol`` of one is told which mistake it looks like. Raises ``ValueError`` for an
    answer that is not a finite number or ``None``, or a non-positive tolerance.
    """
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be positive, got {rel_tol!r}")
    if answer is None:
        return CheckResult(name, False, f"not answered yet. Hint: {hint}")
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        raise ValueError(f"{name}: the answer must be a number (or None), got {answer!r}")
    if not math.isfinite(answer):
        raise ValueError(f"{name}: the answer must be finite, got {answer!r}")
    if math.isclose(answer, expected, rel_tol=rel_tol, abs_tol=rel_tol if expected == 0 else 0.0):
        return CheckResult(name, True, f"right (within {rel_tol:.0%})")
    direction = "too high" if answer > expected else "too low"
    for slip, value in (slips or {}).items():
        if math.isclose(answer, value, rel_tol=rel_tol):
            return CheckResult(name, False, f"{direction}; it looks like {slip}")
    ratio = answer / expected if expected else math.inf
    size = "by more than 10x" if ratio > 10 or ratio < 0.1 else "by less than 10x"
    return CheckResult(name, False, f"{direction} {size}. Hint: {hint}")
