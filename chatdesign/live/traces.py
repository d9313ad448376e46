"""Bandwidth traces: what a player's network delivers over time, and where traces come from.

Theory of operation. A :class:`Trace` is a step function: ``mbps[i]`` megabits per second are
delivered from ``times_s[i]`` until ``times_s[i + 1]``; the last step lasts ``duration_s -
times_s[-1]``. A session that outlasts the trace **wraps around** to its start, as Pensieve's
simulator does (its ``mahimahi_ptr`` loops back); :meth:`Trace.delivered_bytes` and
:meth:`Trace.finish_s` therefore work for any time. Pensieve's cooked files give each sample
the interval that *ends* at its timestamp; ours the interval that *starts* there -- a shift of
one sample, which the loaders below do not correct (the same numbers, read as in sabre).

Where traces come from:

- :func:`synthetic_trace`: a seeded Markov-modulated generator. A hidden state (a "network
  condition") changes each second with probability ``1 / mean dwell``; within a state the
  throughput is the state's level times log-normal noise. :data:`PROFILES` has broadband-,
  3G- and 4G-*like* settings: levels chosen to resemble the ranges of the public sets (FCC
  broadband as filtered by Pensieve, Norway's HSDPA 3G, sabre's 4G logs), not fitted to them.
- :func:`load_tsv`: ``time_s<TAB>Mbps`` lines, the format of the FCC and Norway sets as
  Pensieve distributes them (``cooked_traces``).
- :func:`load_sabre_json`: sabre's list of ``{"duration_ms", "bandwidth_kbps", "latency_ms"}``.
- :func:`write_sample_traces` writes the small files in ``data/traces/`` (see its README).

Taught in ``notebooks/09_adaptive_bitrate.ipynb``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from chatdesign.checks import check_number, check_whole

__all__ = [
    "PROFILES",
    "SAMPLE_TRACES",
    "Trace",
    "TraceProfile",
    "load_sabre_json",
    "load_tsv",
    "sample_traces",
    "synthetic_trace",
    "synthetic_traces",
    "write_sample_traces",
]


@dataclass(frozen=True, eq=False)
class Trace:
    """A throughput step function: ``mbps[i]`` from ``times_s[i]`` to the next time.

    ``times_s`` must start at 0 and increase strictly; ``mbps`` must be finite, not negative,
    and not all zero. ``duration_s`` (the period after which the trace repeats) defaults to the
    last time plus the last step (1 s for a one-sample trace). ``name`` is for tables and plots.
    Raises ``ValueError`` for an empty trace, unequal lengths, unsorted times and so on.
    """

    times_s: np.ndarray
    mbps: np.ndarray
    duration_s: float | None = None
    name: str = "trace"
    _cum_bytes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        times = np.asarray(self.times_s, dtype=float)
        mbps = np.asarray(self.mbps, dtype=float)
        if times.ndim != 1 or mbps.ndim != 1:
            raise ValueError("times_s and mbps must be one-dimensional")
        if len(times) == 0:
            raise ValueError("a trace needs at least one sample, got an empty one")
        if len(times) != len(mbps):
            raise ValueError(f"times_s has {len(times)} samples but mbps has {len(mbps)}")
        if not (np.isfinite(times).all() and np.isfinite(mbps).all()):
            raise ValueError("times_s and mbps must be finite numbers")
        if times[0] != 0:
            raise ValueError(f"times_s must start at 0, got {times[0]!r}")
        if (np.diff(times) <= 0).any():
            raise ValueError("times_s must increase strictly")
        if (mbps < 0).any():
            raise ValueError("mbps must not be negative")
        if not (mbps > 0).any():
            raise ValueError("a trace must deliver something: every mbps is 0")
        last_step = float(times[-1] - times[-2]) if len(times) > 1 else 1.0
        duration = float(times[-1]) + last_step if self.duration_s is None else self.duration_s
        check_number(duration, "duration_s", positive=True)
        if duration <= times[-1]:
            raise ValueError(f"duration_s ({duration:g}) must be after the last time ({times[-1]:g})")
        times.flags.writeable = False
        mbps.flags.writeable = False
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "mbps", mbps)
        object.__setattr__(self, "duration_s", duration)
        steps = np.diff(np.append(times, duration))
        cum = np.concatenate([[0.0], np.cumsum(mbps * steps * 1e6 / 8)])
        cum.flags.writeable = False
        object.__setattr__(self, "_cum_bytes", cum)

    @property
    def period_s(self) -> float:
        """Seconds after which the trace repeats (``duration_s`` as a float)."""
        assert self.duration_s is not None
        return self.duration_s

    @property
    def period_bytes(self) -> float:
        """Bytes delivered in one period."""
        return float(self._cum_bytes[-1])

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean throughput (Mbps)."""
        return self.period_bytes * 8 / 1e6 / self.period_s

    def mbps_at(self, time_s: np.ndarray | float) -> np.ndarray:
        """Throughput at ``time_s`` (wrapping around), Mbps."""
        t = np.mod(np.asarray(time_s, dtype=float), self.period_s)
        index = np.searchsorted(self.times_s, t, side="right") - 1
        result: np.ndarray = self.mbps[index]
        return result

    def delivered_bytes(self, time_s: np.ndarray | float) -> np.ndarray:
        """Bytes the link delivers from time 0 to ``time_s`` (wrapping around)."""
        t = np.asarray(time_s, dtype=float)
        periods = np.floor(t / self.period_s)
        within = t - periods * self.period_s
        index = np.clip(np.searchsorted(self.times_s, within, side="right") - 1, 0, len(self.mbps) - 1)
        inside = self._cum_bytes[index] + (within - self.times_s[index]) * self.mbps[index] * 1e6 / 8
        result: np.ndarray = periods * self.period_bytes + inside
        return result

    def time_for_bytes(self, total_bytes: np.ndarray | float) -> np.ndarray:
        """The earliest time by which the link has delivered ``total_bytes`` since time 0."""
        y = np.asarray(total_bytes, dtype=float)
        periods = np.floor(y / self.period_bytes)
        within = y - periods * self.period_bytes
        # the first step whose end reaches ``within``; zero-rate steps are skipped
        index = np.clip(np.searchsorted(self._cum_bytes, within, side="left") - 1, 0, len(self.mbps) - 1)
        rate = self.mbps[index] * 1e6 / 8
        safe = np.where(rate > 0, rate, 1.0)
        inside = self.times_s[index] + np.where(rate > 0, (within - self._cum_bytes[index]) / safe, 0.0)
        result: np.ndarray = periods * self.period_s + inside
        return result

    def finish_s(self, start_s: np.ndarray | float, nbytes: np.ndarray | float) -> np.ndarray:
        """When a transfer of ``nbytes`` that starts at ``start_s`` ends (seconds)."""
        return self.time_for_bytes(self.delivered_bytes(start_s) + np.asarray(nbytes, dtype=float))

    def to_frame(self) -> pd.DataFrame:
        """One row per step: ``time_s``, ``mbps``."""
        return pd.DataFrame({"time_s": self.times_s, "mbps": self.mbps})

    def to_tsv(self) -> str:
        """The trace as ``time_s<TAB>Mbps`` lines (what :func:`load_tsv` reads)."""
        return "".join(f"{t:.3f}\t{m:.4f}\n" for t, m in zip(self.times_s, self.mbps, strict=True))

    def __repr__(self) -> str:
        return (f"Trace({self.name!r}, {len(self.mbps)} samples over {self.period_s:g} s, "
                f"mean {self.mean_mbps:.2f} Mbps)")


@dataclass(frozen=True)
class TraceProfile:
    """A Markov-modulated network: levels (Mbps), mean seconds in a level, noise (log sd)."""

    name: str
    levels_mbps: tuple[float, ...]
    mean_dwell_s: float
    noise_sigma: float
    outage_probability: float = 0.0
    """Chance per second of a 0.1 x dip (a handover or a tunnel)."""

    def __post_init__(self) -> None:
        if not self.levels_mbps:
            raise ValueError("a profile needs at least one level")
        for level in self.levels_mbps:
            check_number(level, "levels_mbps", positive=True)
        check_number(self.mean_dwell_s, "mean_dwell_s", minimum=1)
        check_number(self.noise_sigma, "noise_sigma", minimum=0)
        check_number(self.outage_probability, "outage_probability", minimum=0, maximum=1)


PROFILES: Final[dict[str, TraceProfile]] = {
    "broadband": TraceProfile("broadband", (1.5, 3.0, 5.0, 8.0), mean_dwell_s=20.0, noise_sigma=0.15),
    "3g": TraceProfile("3g", (0.3, 0.8, 1.5, 2.5), mean_dwell_s=8.0, noise_sigma=0.35,
                       outage_probability=0.02),
    "4g": TraceProfile("4g", (2.0, 5.0, 10.0, 20.0), mean_dwell_s=10.0, noise_sigma=0.3,
                       outage_probability=0.01),
}
"""Synthetic profiles, "like" the public sets in range and variability; invented, not fitted."""


def synthetic_trace(profile: str | TraceProfile = "broadband", duration_s: int = 320,
                    seed: int = 0, step_s: float = 1.0) -> Trace:
    """A seeded Markov-modulated trace of ``duration_s`` seconds in ``step_s`` steps.

    Each step the hidden level moves, with probability ``step_s / mean_dwell_s``, to a
    neighbouring level (up or down, equally likely; reflected at the ends); the throughput is
    the level times ``exp(N(0, noise_sigma))``, divided by 10 during an outage. Rounded to
    0.1 kbps so that the text files reproduce it exactly.
    """
    chosen = _profile(profile)
    check_whole(duration_s, "duration_s", minimum=1)
    check_whole(seed, "seed", minimum=0)
    check_number(step_s, "step_s", positive=True)
    steps = max(1, round(duration_s / step_s))
    rng = np.random.default_rng(seed)
    levels = np.array(chosen.levels_mbps)
    level = np.empty(steps, dtype=np.int64)
    level[0] = rng.integers(len(levels))
    moves = rng.random(steps) < step_s / chosen.mean_dwell_s
    ups = rng.random(steps) < 0.5
    for i in range(1, steps):
        current = level[i - 1]
        if moves[i] and len(levels) > 1:
            current = current + 1 if ups[i] else current - 1
            if current < 0:
                current = 1
            elif current >= len(levels):
                current = len(levels) - 2
        level[i] = current
    noise = np.exp(rng.normal(0.0, chosen.noise_sigma, steps))
    outage = rng.random(steps) < chosen.outage_probability
    mbps = levels[level] * noise * np.where(outage, 0.1, 1.0)
    mbps = np.maximum(np.round(mbps, 4), 1e-4)
    times = np.round(np.arange(steps) * step_s, 3)
    return Trace(times, mbps, name=f"{chosen.name}-{seed}")


def synthetic_traces(count: int, profile: str | TraceProfile = "broadband", duration_s: int = 320,
                     seed: int = 0) -> list[Trace]:
    """``count`` independent traces; trace ``i`` is ``synthetic_trace(..., seed=seed + i)``."""
    check_whole(count, "count", minimum=1)
    return [synthetic_trace(profile, duration_s, seed + i) for i in range(count)]


def _profile(profile: str | TraceProfile) -> TraceProfile:
    if isinstance(profile, TraceProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile]


def load_tsv(path: str | Path, name: str | None = None) -> Trace:
    """Read ``time_s<TAB>Mbps`` lines (FCC / Norway as Pensieve ships them; any whitespace).

    Times are shifted so the first is 0. Raises ``ValueError`` naming the line that is not two
    numbers.
    """
    source = Path(path)
    times, mbps = [], []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            times.append(float(parts[0]))
            mbps.append(float(parts[1]))
        except ValueError:
            raise ValueError(f"{source.name} line {number}: expected 'time_s<TAB>Mbps', got {line!r}") from None
    if not times:
        raise ValueError(f"{source.name}: no samples")
    start = times[0]
    return Trace(np.array(times) - start, np.array(mbps), name=name or source.stem)


def load_sabre_json(path: str | Path, name: str | None = None) -> Trace:
    """Read sabre's network JSON: a list of ``{"duration_ms", "bandwidth_kbps", "latency_ms"}``.

    Each period becomes one step. Latency is not part of a :class:`Trace`: pass the file's
    ``latency_ms`` (as seconds, doubled for a round trip if you like) as ``rtt_s`` to the simulator.
    """
    source = Path(path)
    periods = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(periods, list) or not periods:
        raise ValueError(f"{source.name}: expected a non-empty list of periods")
    try:
        durations = np.array([float(p["duration_ms"]) for p in periods]) / 1000
        kbps = np.array([float(p["bandwidth_kbps"]) for p in periods])
    except (KeyError, TypeError):
        raise ValueError(f"{source.name}: each period needs duration_ms and bandwidth_kbps") from None
    if (durations <= 0).any():
        raise ValueError(f"{source.name}: every duration_ms must be positive")
    times = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return Trace(times, kbps / 1000, duration_s=float(durations.sum()), name=name or source.stem)


TRACES_DIR: Final = Path(__file__).resolve().parents[2] / "data" / "traces"

SAMPLE_TRACES: Final[tuple[tuple[str, int], ...]] = (
    ("broadband", 1), ("broadband", 2), ("3g", 1), ("3g", 2), ("4g", 1), ("4g", 2))
"""The (profile, seed) pairs written to ``data/traces/`` as ``{profile}-{seed}.tsv``, 320 s each."""


def write_sample_traces(directory: str | Path = TRACES_DIR) -> list[Path]:
    """(Re)write the sample traces into ``directory``; returns the paths. A test checks the
    committed files equal a fresh regeneration."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for profile, seed in SAMPLE_TRACES:
        path = target / f"{profile}-{seed}.tsv"
        path.write_text(synthetic_trace(profile, 320, seed).to_tsv(), encoding="utf-8")
        paths.append(path)
    return paths


def sample_traces(directory: str | Path = TRACES_DIR) -> list[Trace]:
    """The sample traces read back from ``directory`` (the repository's ``data/traces``)."""
    return [load_tsv(Path(directory) / f"{profile}-{seed}.tsv") for profile, seed in SAMPLE_TRACES]
