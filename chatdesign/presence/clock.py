"""A clock you set by hand, for tests and notebooks.

The presence service never reads the wall clock: it takes a ``clock`` callable returning seconds
(any epoch). In production that is ``time.monotonic``; in a test or a notebook it is a
:class:`ManualClock`, so a 30-second timeout takes no time to run.
"""

from __future__ import annotations

import math


class ManualClock:
    """A callable clock that only moves when told: ``clock()`` returns ``now_s``.

    ``ManualClock(10.0)`` starts at 10 s. :meth:`advance` moves it forward by a duration,
    :meth:`set` jumps to a time; both refuse to go backwards (a ``ValueError``).
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = _finite(start_s, "start_s")

    def __call__(self) -> float:
        return self._now_s

    def __repr__(self) -> str:
        return f"ManualClock(now_s={self._now_s!r})"

    @property
    def now_s(self) -> float:
        """The current time in seconds."""
        return self._now_s

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (≥ 0) and return the new time in seconds."""
        step = _finite(seconds, "seconds")
        if step < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r})")
        self._now_s += step
        return self._now_s

    def set(self, now_s: float) -> float:
        """Jump to ``now_s`` seconds (not earlier than the current time) and return it."""
        target = _finite(now_s, "now_s")
        if target < self._now_s:
            raise ValueError(f"a clock cannot go backwards: set({now_s!r}) at {self._now_s!r}")
        self._now_s = target
        return self._now_s


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return float(value)
