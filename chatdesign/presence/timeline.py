"""Heartbeats on a timeline: what a slow network does to one user's status.

:func:`heartbeat_times` makes a seeded schedule of heartbeats that arrive late (jitter) or not
at all (drops); :func:`status_timeline` plays it through a :class:`PresenceService` on a
:class:`ManualClock` and samples the status every ``step_s``. The notebook plots the result;
the tests use it to show that jitter below the grace period never makes a user flap.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number
from chatdesign.clock import ManualClock
from chatdesign.presence.policy import PresencePolicy
from chatdesign.presence.service import PresenceService
from chatdesign.presence.states import STATE_RANK, PresenceState
from chatdesign.presence.store import MemoryTTLStore

MAX_HEARTBEATS = 10_000_000
"""The most heartbeats :func:`heartbeat_times` makes in one call (a bound on memory)."""
MAX_SAMPLES = 1_000_000
"""The most samples :func:`status_timeline` takes in one call (a bound on time)."""


def heartbeat_times(
    duration_s: float,
    interval_s: float = 5.0,
    jitter_s: float = 0.0,
    drop_probability: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Arrival times (seconds, sorted) of heartbeats sent every ``interval_s`` from 0 on.

    Each one arrives up to ``jitter_s`` late (uniform) and is lost with ``drop_probability``.
    """
    duration = check_number(duration_s, "duration_s", positive=True, unit="seconds")
    interval = check_number(interval_s, "interval_s", positive=True, unit="seconds")
    jitter = check_number(jitter_s, "jitter_s", minimum=0, unit="seconds")
    drop = check_fraction(drop_probability, "drop_probability")
    if duration / interval > MAX_HEARTBEATS:
        raise ValueError(
            f"{duration:g} s at one beat every {interval:g} s makes {duration / interval:.3g} heartbeats; "
            f"at most {MAX_HEARTBEATS:,} (shorten duration_s)"
        )
    if drop == 1:
        raise ValueError("drop_probability must be below 1: with every heartbeat lost there is no timeline")
    rng = np.random.default_rng(seed)
    sent = np.arange(0.0, duration, interval)
    arrived = sent + rng.uniform(0.0, jitter, size=sent.size)
    kept = rng.random(sent.size) >= drop
    return np.sort(arrived[kept])


def status_timeline(
    heartbeats_s: Sequence[float] | np.ndarray,
    until_s: float,
    policy: PresencePolicy | None = None,
    step_s: float = 1.0,
) -> pd.DataFrame:
    """One user's status every ``step_s`` seconds from 0 to ``until_s`` given heartbeat times.

    Columns: ``time_s``, ``status`` (its value), ``level`` (0 offline, 1 away, 2 online, for
    plotting) and ``heartbeats`` (how many arrived since the previous sample).
    """
    until = check_number(until_s, "until_s", positive=True, unit="seconds")
    step = check_number(step_s, "step_s", positive=True, unit="seconds")
    if until / step > MAX_SAMPLES:
        raise ValueError(
            f"{until:g} s sampled every {step:g} s makes {until / step:.3g} samples; at most {MAX_SAMPLES:,}"
        )
    beats = np.sort(np.asarray(heartbeats_s, dtype=float))
    if beats.size and (not np.isfinite(beats).all() or beats[0] < 0):
        raise ValueError("heartbeat times must be finite and ≥ 0 seconds")
    clock = ManualClock(0.0)
    service = PresenceService(MemoryTTLStore(clock), clock, policy, friends={"user": {}})
    rows: list[tuple[float, str, int, int]] = []
    next_beat = 0
    for sample in np.arange(0.0, until + step / 2, step):
        arrived = 0
        while next_beat < beats.size and beats[next_beat] <= sample:
            clock.set(float(beats[next_beat]))
            service.heartbeat("user", "phone")
            next_beat += 1
            arrived += 1
        clock.set(float(sample))
        state = service.status("user").status
        rows.append((float(sample), state.value, STATE_RANK[state], arrived))
    return pd.DataFrame(rows, columns=["time_s", "status", "level", "heartbeats"])


def count_flaps(timeline: pd.DataFrame) -> int:
    """How many times the status in a :func:`status_timeline` frame went offline after online."""
    if "level" not in timeline:
        raise ValueError("expected a frame from status_timeline (with a 'level' column)")
    offline = STATE_RANK[PresenceState.OFFLINE]
    levels = timeline["level"].to_numpy()
    return int(np.count_nonzero((levels[1:] == offline) & (levels[:-1] != offline)))
