"""The benchmark result convention: one machine-readable line per figure.

A benchmark script (``benchmarks/<name>.py``; files starting with ``_`` are helpers, not
benchmarks) prints whatever it likes for people, plus one line per figure::

    BENCH-RESULT {"figure": "send_message rate", "value": 2100.0, "unit": "msg/s", ...}

i.e. the prefix :data:`PREFIX`, a space and a JSON object with the keys of :func:`result`.
``benchmarks/_runner.py`` (``make bench``) runs every script, collects these lines and prints
one table. Print them with :func:`result` (or write the JSON yourself with the same keys).
A script must exit 0 when it ran (a missed goal is reported by ``met``, not by the exit code),
keep its temporary files under ``tempfile``'s directory (the runner points ``TMPDIR`` at a
directory it removes afterwards), and accept ``--quick``.
"""

from __future__ import annotations

import json
import math

PREFIX = "BENCH-RESULT"


def result(
    figure: str,
    value: float,
    unit: str,
    goal: str,
    met: bool | None,
    baseline: str | None = None,
    baseline_value: float | None = None,
    ratio: float | None = None,
) -> dict[str, object]:
    """Print one result line and return it.

    ``figure``: what was measured; ``value`` in ``unit``; ``goal``: the target in words
    (``"ratio >= 0.5"``, ``"<= 1 s"``); ``met``: whether it was reached (``None``: no goal);
    ``baseline``: what the figure is compared with, measured in the same run, and its
    ``baseline_value`` (same unit); ``ratio``: the figure against the baseline, in the
    direction the goal states (e.g. value / baseline, or baseline time / value time).
    """
    for name, number in (("value", value), ("baseline_value", baseline_value), ("ratio", ratio)):
        if number is not None and not math.isfinite(number):
            raise ValueError(f"{name} must be finite, got {number!r}")
    def plain(number: float | None) -> float | None:  # numpy scalars are not JSON
        return None if number is None else float(number)

    row: dict[str, object] = {
        "figure": figure, "value": float(value), "unit": unit, "goal": goal,
        "met": None if met is None else bool(met), "baseline": baseline,
        "baseline_value": plain(baseline_value), "ratio": plain(ratio),
    }
    print(f"{PREFIX} {json.dumps(row)}", flush=True)
    return row
