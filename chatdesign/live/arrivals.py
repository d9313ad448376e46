"""Who asks for which segment, where and when: the seeded arrival model both simulations share.

Theory of operation. A :class:`LiveScenario` fixes one live stream: ``viewers`` players spread
over ``pops`` PoPs by the topology's Zipf ``viewer_share`` (a multinomial draw, so PoP 0 gets
the most), ``duration_s`` of video cut into segments of ``segment_s``. Segment ``s`` is published
(closed at the origin server) at ``(s + 1) x segment_s``. A player who joins at ``join_s``
(uniform over ``ramp_s``, a flash crowd; all at 0 by default) asks for every segment published
from then on.

The herd (when a player asks), a player-side model. An HLS player learns of a new segment by
re-reading the playlist, every ``playlist_refresh_s`` (RFC 8216 lets a live client reload no
sooner than the target duration, so by default the segment length), and asks for the segment as
soon as a reload lists it. So each player's request lags publication by a fixed *phase*: where
its reload timer sits in the refresh interval, plus its clock offset from the packager. Players
whose timers were set independently would spread uniformly over the whole interval; real ones
bunch (they start together when a notification goes out, and re-time their reloads on a playlist
that had not changed yet). The model draws each player's phase uniformly over the first
``herd_spread`` share of the interval (``herd_spread_s = herd_spread x playlist_refresh_s``),
adds a fixed clock offset uniform on [0, ``clock_offset_s``), and each request adds its own
network jitter, uniform on [0, ``jitter_s``). ``herd_window_s``, when given, overrides
``herd_spread_s`` directly.

``herd_spread`` is *calibrated*, the one parameter of the live model fitted to a published
figure: :data:`HERD_SPREAD` is the value at which a popular stream (:data:`CALIBRATION_VIEWERS`
viewers, Facebook's 3-s segments, no coalescing, the default topology) leaks about 1.8 % of its
requests past the edge, the share Facebook reported before they added request coalescing
(:func:`chatdesign.live.simulate.calibrate_herd_spread` recomputes it). The calibration holds
the other herd inputs at their defaults, ``jitter_s`` (20 ms) among them, and the jitter shapes
the result: without coalescing a PoP leaks about the share of its herd sent within one edge-miss
latency ``m`` of its first request, and jitter thins the herd's leading edge, where those
requests are. With phases uniform over ``S = herd_spread_s`` and jitter uniform over
``J = jitter_s <= S`` (no clock offset) that share is ``m**2 / (2 S J)`` for ``m <= J`` and
``(m - J / 2) / S`` for ``m >= J``; the plain ``m / S`` holds only without jitter and, with the
default 20 ms, overstates the calibrated leak about twofold. Weighted by viewers over the
default map's PoPs, the approximation stays within about 15 % of the simulation for 1-6 s
segments and jitter up to 50 ms (``tests/live/test_herd_leak.py``). Shorter segments, slower
misses, a tighter herd or less jitter leak more; ``notebooks/08_edge_cache.ipynb`` shows each.

:func:`segment_arrivals` yields one :class:`SegmentArrivals` per segment, in order, drawing from
one generator seeded by ``traffic_seed`` (``seed`` when not given; ``seed`` alone draws the
topology, so traffic can be rerun over a fixed map): the vectorised model and the SimPy oracle
iterate the same arrays, which is why their counters agree exactly. Per-segment arrays are made
one at a time, so memory stays at a few arrays of ``viewers`` floats however long the stream.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

import numpy as np

from chatdesign.checks import check_number, check_whole
from chatdesign.live.faults import SlowLink
from chatdesign.live.queueing import QUEUE_BIN_S, check_queue_bin
from chatdesign.live.topology import PathDelays

MIN_SEGMENT_S = 0.1
"""Shortest segment accepted (LL-HLS parts are 0.2-0.3 s); keeps every cache's window valid."""

HERD_SPREAD: Final = 0.14
"""Calibrated share of the playlist refresh interval over which players' phases spread (see the
module notes): with it, :data:`CALIBRATION_VIEWERS` viewers of 3-s segments without coalescing
leak about 1.8 % of requests past the edge, Facebook's figure before coalescing. That is, a
popular stream's players ask for a new 3-s segment within about 0.42 s of its publication."""

CALIBRATION_VIEWERS: Final = 100_000
"""The "popular stream" the calibration uses: enough viewers per PoP that one first miss per
PoP and segment is a negligible part of the leak."""


def exact_segments(duration_s: float, segment_s: float) -> int:
    """Whole segments of ``segment_s`` in ``duration_s``, in decimal arithmetic.

    Each float is read as the shortest decimal that prints it (``0.3`` as 3/10), so
    ``exact_segments(0.3, 0.1) == 3`` where ``0.3 // 0.1`` gives 2.
    """
    return math.floor(Fraction(repr(float(duration_s))) / Fraction(repr(float(segment_s))))


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
    pop_capacity_rps: float | Literal["derived"] | None = "derived"
    seed: int = 0
    push_to: Literal["all", "watched"] = "all"
    overflow: Literal["spill", "refuse"] = "spill"
    herd_window_s: float | None = None
    jitter_s: float = 0.02
    ramp_s: float = 0.0
    bitrate_kbps: float = 1_000.0
    zipf_exponent: float = 1.0
    herd_spread: float = HERD_SPREAD
    playlist_refresh_s: float | None = None
    clock_offset_s: float = 0.0
    traffic_seed: int | None = None
    queueing: bool = False
    slow_link: SlowLink | None = None
    queue_bin_s: float = QUEUE_BIN_S

    def __post_init__(self) -> None:
        check_whole(self.viewers, "viewers", minimum=1)
        check_number(self.duration_s, "duration_s", positive=True)
        check_number(self.segment_s, "segment_s", positive=True)
        if self.segment_s < MIN_SEGMENT_S:
            raise ValueError(f"segment_s must be at least {MIN_SEGMENT_S} s, got {self.segment_s!r}")
        if exact_segments(self.duration_s, self.segment_s) < 1:
            raise ValueError(
                f"duration_s ({self.duration_s!r}) must hold at least one segment of "
                f"{self.segment_s!r} s"
            )
        check_whole(self.pops, "pops", minimum=1)
        check_whole(self.origin_caches, "origin_caches", minimum=1)
        check_whole(self.seed, "seed", minimum=0)
        for name in ("coalescing", "push", "queueing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.pop_capacity_rps is not None:
            if isinstance(self.pop_capacity_rps, str) and self.pop_capacity_rps != "derived":
                raise ValueError("pop_capacity_rps must be a number of requests per second, "
                                 f"'derived' or None, got {self.pop_capacity_rps!r}")
            if self.pop_capacity_rps != "derived":
                check_number(self.pop_capacity_rps, "pop_capacity_rps", positive=True)
        if self.push_to not in ("all", "watched"):
            raise ValueError(f"push_to must be 'all' or 'watched', got {self.push_to!r}")
        if self.overflow not in ("spill", "refuse"):
            raise ValueError(f"overflow must be 'spill' or 'refuse', got {self.overflow!r}")
        if self.herd_window_s is not None:
            check_number(self.herd_window_s, "herd_window_s", minimum=0)
        check_number(self.jitter_s, "jitter_s", minimum=0)
        check_number(self.herd_spread, "herd_spread", minimum=0, maximum=1)
        if self.playlist_refresh_s is not None:
            check_number(self.playlist_refresh_s, "playlist_refresh_s", positive=True)
            if self.playlist_refresh_s > self.segment_s:
                raise ValueError(
                    f"playlist_refresh_s ({self.playlist_refresh_s:g} s) must not exceed "
                    f"segment_s ({self.segment_s:g} s): a slower player falls behind live")
        check_number(self.clock_offset_s, "clock_offset_s", minimum=0)
        if self.traffic_seed is not None:
            check_whole(self.traffic_seed, "traffic_seed", minimum=0)
        if self.herd_span_s >= self.segment_s:
            raise ValueError(
                f"the herd (herd_spread_s + clock_offset_s + jitter_s = {self.herd_span_s:g} s) "
                f"must be shorter than segment_s ({self.segment_s:g} s): each segment is asked "
                "for before the next one is published"
            )
        check_number(self.ramp_s, "ramp_s", minimum=0)
        check_number(self.bitrate_kbps, "bitrate_kbps", positive=True)
        check_number(self.zipf_exponent, "zipf_exponent", minimum=0)
        if self.slow_link is not None:
            if not isinstance(self.slow_link, SlowLink):
                raise ValueError(f"slow_link must be a SlowLink or None, got {self.slow_link!r}")
            self.slow_link.check_against(self.pops, self.origin_caches)
        check_queue_bin(self.queue_bin_s)

    @property
    def segments(self) -> int:
        """Whole segments in the stream: ``floor(duration_s / segment_s)`` in decimal
        arithmetic (:func:`exact_segments`)."""
        return exact_segments(self.duration_s, self.segment_s)

    @property
    def refresh_s(self) -> float:
        """How often a player re-reads the playlist (``playlist_refresh_s``, else ``segment_s``)."""
        return self.segment_s if self.playlist_refresh_s is None else self.playlist_refresh_s

    @property
    def herd_spread_s(self) -> float:
        """Width of the players' phases (s): ``herd_window_s`` if given, else
        ``herd_spread x refresh_s``."""
        if self.herd_window_s is not None:
            return self.herd_window_s
        return self.herd_spread * self.refresh_s

    @property
    def herd_span_s(self) -> float:
        """Latest a request can leave after publication (s): spread + clock offset + jitter."""
        return self.herd_spread_s + self.clock_offset_s + self.jitter_s

    @property
    def playlist_requests_per_viewer_s(self) -> float:
        """Playlist reloads per second per viewer (``1 / refresh_s``), counted beside segments."""
        return 1.0 / self.refresh_s

    @property
    def segment_bytes(self) -> float:
        """Bytes per segment at ``bitrate_kbps``."""
        return self.segment_s * self.bitrate_kbps * 1000 / 8

    @property
    def capacity_per_segment(self) -> int | None:
        """Requests every PoP serves for one segment when ``pop_capacity_rps`` is a number (an
        override): ``floor(pop_capacity_rps x segment_s)``; None when unlimited or derived."""
        if self.pop_capacity_rps is None or self.pop_capacity_rps == "derived":
            return None
        return math.floor(self.pop_capacity_rps * self.segment_s)

    def pop_capacity_per_segment(self, delays: PathDelays) -> np.ndarray | None:
        """Requests each PoP admits for one segment: the override for all, or with
        ``pop_capacity_rps="derived"`` each PoP's own ``floor(capacity_rps x segment_s)`` from
        its servers and links (:meth:`PathDelays.capacity_rps`); None when unlimited."""
        if self.pop_capacity_rps is None:
            return None
        if self.pop_capacity_rps == "derived":
            rps = delays.capacity_rps(self.segment_bytes)
        else:
            rps = np.full(delays.pops, float(self.pop_capacity_rps))
        # the product rounds down exactly as the scalar override does
        return np.array([math.floor(float(r) * self.segment_s) for r in rps], dtype=np.int64)

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


def segment_arrivals(scenario: LiveScenario, delays: PathDelays,
                     reuse_buffers: bool = False) -> Iterator[SegmentArrivals]:
    """Yield the requests for each segment of ``scenario`` in order (see the module notes).

    The random draws depend only on the traffic seed and the viewer shares in ``delays``.
    ``reuse_buffers=True`` writes every segment's send times into the same two arrays (no fresh
    pages per segment, a few ms per million requests): each ``SegmentArrivals.send_s`` is then
    overwritten by the next one, so use it only to consume segments one at a time. The values
    are the same either way.
    """
    if delays.pops != scenario.pops:
        raise ValueError(f"delays describe {delays.pops} PoPs, the scenario has {scenario.pops}")
    seed = scenario.seed if scenario.traffic_seed is None else scenario.traffic_seed
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    counts = rng.multinomial(scenario.viewers, delays.viewer_share)
    pop = np.repeat(np.arange(scenario.pops), counts)
    phase = rng.random(scenario.viewers)
    phase *= scenario.herd_spread_s
    if scenario.clock_offset_s > 0:
        phase += rng.random(scenario.viewers) * scenario.clock_offset_s
    join = rng.random(scenario.viewers) * scenario.ramp_s if scenario.ramp_s > 0 else None
    size = scenario.viewers if reuse_buffers else 0
    send_buffer, jitter_buffer = np.empty(size), np.empty(size)
    for segment in range(scenario.segments):
        publish = scenario.publish_s(segment)
        if join is None:
            active_pop, active_phase, active_counts = pop, phase, counts
        else:
            active = join <= publish
            active_pop, active_phase = pop[active], phase[active]
            active_counts = np.bincount(active_pop, minlength=scenario.pops)
        n = len(active_phase)
        send = send_buffer[:n] if reuse_buffers else np.empty(n)
        jitter = jitter_buffer[:n] if reuse_buffers else np.empty(n)
        np.add(publish, active_phase, out=send)
        rng.random(n, out=jitter)
        jitter *= scenario.jitter_s
        send += jitter
        yield SegmentArrivals(segment, publish, send, active_pop, active_counts)
