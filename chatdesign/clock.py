"""Time, injected: the :data:`Clock` type and a :class:`ManualClock` for tests and notebooks.

No rule in the package reads the wall clock. A server takes a ``clock`` callable returning
seconds (``time.time`` in production); a test or a notebook passes a :class:`ManualClock`, so a
30-second timeout takes no time to run and every output is the same on every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from chatdesign.checks import check_number

Clock: TypeAlias = Callable[[], float]
"""A callable returning the current time in seconds."""


class ManualClock:
    """A callable clock that moves only when told: ``clock()`` returns ``now_s``.

    :meth:`advance` and :meth:`set` only move forward (``ValueError`` otherwise), which is what
    a monotonic clock does. :meth:`step_back` models the other thing a wall clock can do: jump
    back, as when NTP corrects it, so tests can show that ordering does not depend on it.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = check_number(start_s, "start_s", unit="seconds")

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
        step = check_number(seconds, "seconds", unit="seconds")
        if step < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r}); see step_back()")
        self._now_s += step
        return self._now_s

    def set(self, now_s: float) -> float:
        """Jump forward to ``now_s`` seconds (not earlier than now) and return it."""
        target = check_number(now_s, "now_s", unit="seconds")
        if target < self._now_s:
            raise ValueError(f"a clock cannot go backwards: set({now_s!r}) at {self._now_s!r}")
        self._now_s = target
        return self._now_s

    def step_back(self, seconds: float) -> float:
        """Jump back by ``seconds`` (≥ 0), as a wall clock does when corrected; returns the new time."""
        step = check_number(seconds, "seconds", unit="seconds")
        if step < 0:
            raise ValueError(f"step_back takes a positive duration, got {seconds!r}")
        self._now_s -= step
        return self._now_s
