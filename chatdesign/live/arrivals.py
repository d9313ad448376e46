"""Who asks for which segment, where and when: the seeded arrival model both simulations share.

Theory of operation. A :class:`LiveScenario` fixes one live stream: ``viewers`` players spread
over ``pops`` PoPs by the topology's Zipf ``viewer_share`` (a multinomial draw, so PoP 0 gets
the most), ``duration_s`` of video cut into segments of ``segment_s``. Segment ``s`` is published
(closed at the origin server) at ``(s + 1) x segment_s``. Each player has a fixed *phase*
``herd_window_s x u**2`` (``u`` uniform on [0, 1), so phases crowd near zero: most players are
caught up and ask right after publication, the thundering herd) and every request adds its own
network jitter, uniform on [0, ``jitter_s``). A player who joins at ``join_s`` (uniform over
``ramp_s``, a flash crowd; all at 0 by default) asks for every segment published from then on.

:func:`segment_arrivals` yields one :class:`SegmentArrivals` per segment, in order, drawing from
one generator seeded by ``seed``: the vectorised model and the SimPy oracle iterate the same
arrays, which is why their counters agree exactly. Per-segment arrays are made one at a time,
so memory stays at a few arrays of ``viewers`` floats however long the stream.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatdesign.checks import check_number, check_whole
from chatdesign.live.topology import PathDelays

MIN_SEGMENT_S = 0.1
"""Shortest segment accepted (LL-HLS parts are 0.2-0.3 s); keeps every cache's window valid."""


@dataclass(frozen=True)
class LiveScenario:
    """Every input of a live-delivery simulation, validated (see :func:`simulate_live`)."""

    viewers: int
    duration_s: float
    segment_s: float = 1.0
    pops: int = 20
    origin_caches: int = 1
    coalescing: bool = True
    push: bool = False
    pop_capacity_rps: float | None = None
    seed: int = 0
    push_to: Literal["all", "watched"] = "all"
    overflow: Literal["spill", "refuse"] = "spill"
    herd_window_s: float = 0.5
    jitter_s: float = 0.02
    ramp_s: float = 0.0
    bitrate_kbps: float = 1_000.0
    zipf_exponent: float = 1.0

    def __post_init__(self) -> None:
        check_whole(self.viewers, "viewers", minimum=1)
        check_number(self.duration_s, "duration_s", positive=True)
        check_number(self.segment_s, "segment_s", positive=True)
        if self.segment_s < MIN_SEGMENT_S:
            raise ValueError(f"segment_s must be at least {MIN_SEGMENT_S} s, got {self.segment_s!r}")
        if self.duration_s < self.segment_s:
            raise ValueError(
                f"duration_s ({self.duration_s!r}) must hold at least one segment of "
                f"{self.segment_s!r} s"
            )
        check_whole(self.pops, "pops", minimum=1)
        check_whole(self.origin_caches, "origin_caches", minimum=1)
        check_whole(self.seed, "seed", minimum=0)
        for name in ("coalescing", "push"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.pop_capacity_rps is not None:
            check_number(self.pop_capacity_rps, "pop_capacity_rps", positive=True)
            if self.overflow == "spill" and self.pops < 2:
                raise ValueError("overflow='spill' needs at least 2 PoPs to spill to")
        if self.push_to not in ("all", "watched"):
            raise ValueError(f"push_to must be 'all' or 'watched', got {self.push_to!r}")
        if self.overflow not in ("spill", "refuse"):
            raise ValueError(f"overflow must be 'spill' or 'refuse', got {self.overflow!r}")
        check_number(self.herd_window_s, "herd_window_s", minimum=0)
        check_number(self.jitter_s, "jitter_s", minimum=0)
        if self.herd_window_s + self.jitter_s >= self.segment_s:
            raise ValueError(
                f"herd_window_s + jitter_s ({self.herd_window_s + self.jitter_s:g} s) must be "
                f"shorter than segment_s ({self.segment_s:g} s): each segment is asked for "
                "before the next one is published"
            )
        check_number(self.ramp_s, "ramp_s", minimum=0)
        check_number(self.bitrate_kbps, "bitrate_kbps", positive=True)
        check_number(self.zipf_exponent, "zipf_exponent", minimum=0)

    @property
    def segments(self) -> int:
        """Whole segments in the stream: ``floor(duration_s / segment_s)``."""
        return int(self.duration_s // self.segment_s)

    @property
    def segment_bytes(self) -> float:
        """Bytes per segment at ``bitrate_kbps``."""
        return self.segment_s * self.bitrate_kbps * 1000 / 8

    @property
    def capacity_per_segment(self) -> int | None:
        """Requests a PoP serves for one segment: ``floor(pop_capacity_rps x segment_s)``."""
        if self.pop_capacity_rps is None:
            return None
        return math.floor(self.pop_capacity_rps * self.segment_s)

    def publish_s(self, segment: int) -> float:
        """When segment ``segment`` (0-based) closes at the origin server, in seconds."""
        return (segment + 1) * self.segment_s

    @property
    def seconds(self) -> int:
        """Length of the per-second time series: every second an event can fall in."""
        return math.ceil(self.publish_s(self.segments) + 1.0) + 1


@dataclass(frozen=True, eq=False)
class SegmentArrivals:
    """The requests for one segment, grouped by PoP (PoP 0's first).

    ``send_s[i]`` is when request ``i`` leaves its player and ``pop[i]`` the PoP serving its
    player; ``pop_counts[p]`` is how many requests PoP ``p`` gets.
    """

    segment: int
    publish_s: float
    send_s: np.ndarray
    pop: np.ndarray
    pop_counts: np.ndarray

    def __post_init__(self) -> None:
        if len(self.send_s) != len(self.pop) or int(self.pop_counts.sum()) != len(self.pop):
            raise ValueError("send_s, pop and pop_counts disagree on the number of requests")

    def __repr__(self) -> str:
        return (
            f"SegmentArrivals(segment={self.segment}, publish_s={self.publish_s:g}, "
            f"requests={len(self.send_s)})"
        )


def segment_arrivals(scenario: LiveScenario, delays: PathDelays) -> Iterator[SegmentArrivals]:
    """Yield the requests for each segment of ``scenario`` in order (see the module notes).

    The random draws depend only on ``scenario.seed`` and the viewer shares in ``delays``.
    """
    if delays.pops != scenario.pops:
        raise ValueError(f"delays describe {delays.pops} PoPs, the scenario has {scenario.pops}")
    rng = np.random.default_rng(np.random.SeedSequence(scenario.seed, spawn_key=(1,)))
    counts = rng.multinomial(scenario.viewers, delays.viewer_share)
    pop = np.repeat(np.arange(scenario.pops), counts)
    phase = rng.random(scenario.viewers)
    phase *= phase
    phase *= scenario.herd_window_s
    join = rng.random(scenario.viewers) * scenario.ramp_s if scenario.ramp_s > 0 else None
    for segment in range(scenario.segments):
        publish = scenario.publish_s(segment)
        if join is None:
            active_pop, active_phase, active_counts = pop, phase, counts
        else:
            active = join <= publish
            active_pop, active_phase = pop[active], phase[active]
            active_counts = np.bincount(active_pop, minlength=scenario.pops)
        send = publish + active_phase
        send += rng.random(len(send)) * scenario.jitter_s
        yield SegmentArrivals(segment, publish, send, active_pop, active_counts)
