"""The vectorised live-delivery simulation: every request of every viewer, without a Python loop
per request.

Theory of operation (one segment at a time; the arrays come from
:func:`~chatdesign.live.arrivals.segment_arrivals`). A request leaves its player at ``send``
and reaches its PoP's edge cache at ``a = send + player→edge``. If the PoP already has its
capacity's worth of requests for this segment (``pop_capacity_rps``: by default ``"derived"``
from each PoP's servers and links, or a number for every PoP; None for no limit), the request
is refused or spills to the next-nearest PoP (arriving ``neighbour`` seconds later), which admits
spilled requests only into the room its own viewers left and refuses the rest. Admission is a
partial sort (``np.partition``) of each full PoP's times; from then on only each PoP's times
matter, not which viewer sent which. At each edge cache the whole segment's story is fixed by one
time, ``F``, when the segment lands there:

- coalescing: the earliest request (if it beats any push) is the one miss; it reaches the
  origin cache at ``b = a + edge→origin``; there, the earliest ``b`` of all its PoPs is the one
  origin miss and the segment is ready at ``G = b_min + 2 x origin→server`` (or when the push
  arrived). The edge miss comes back at ``R = max(b, G) + edge→origin`` and ``F = min(push, R)``.
  Every request is answered at ``max(a, F)``: latency ``2 x player→edge + max(0, F - a)``.
- no coalescing: a request is a miss iff it arrives before the earliest answer of the misses
  before it, that is, before the segment lands at its edge (``landed``); each miss waits for its
  own fetch. A miss's answer rises with its arrival within each of two kinds (sent before the
  origin cache has the segment, one more trip to the origin server, or after), so ``landed`` is
  the first request's answer or that of the earliest request of the second kind if it still
  missed: a few reductions per PoP, no sort.

With ``queueing=True`` each request then queues for one of its PoP's servers from the moment
the edge can answer it (``a`` for a hit, ``F`` for a waiter, its own answer for an uncoalesced
miss) and holds it for the segment's transfer time: a FIFO multi-server queue with a fixed
service time (:mod:`chatdesign.live.queueing`). By default it is *binned* (``queue_bin_s``,
0.625 ms): ready times rounded up to the end of their bin, each bin one batch of a fluid queue;
every latency within ``(-b, b + s)`` of the exact queue's (``b`` the bin, ``s`` the service
time; the module states and the tests check the bound). With coalescing the bins are counted
with no sort and each PoP's first request is exact. Without coalescing a miss is ready at its
own answer, in the middle of a bin where hits keep arriving: each PoP's admitted times are
sorted once, the misses are each block's earliest, and a miss goes after exactly the hits of
its ready bin that arrived before its answer (binary search), so the order inside every bin is
the exact queue's. ``queue_bin_s=0`` is the exact queue, solved per PoP with running maxima over
its sorted ready times (``np.sort``; the requests whose ready time is not their arrival are
placed by binary search), which the SimPy oracle checks. Peak load is also counted in 10 ms bins
per PoP (``pop_load["peak_rps_10ms"]``) beside per-segment rates.

Where the time goes (``benchmarks/live_sim.py``): drawing the arrivals is about a third of the
default path; the rest is a handful of passes over each segment's arrays (the 10 ms histogram,
each PoP's earliest arrival, the waiters) and, with a capacity, one partial sort per full PoP.
The binned queue adds one counting pass per request with coalescing; without, a sort of each
PoP's admitted times and a few passes per miss (about 47 k of the 375 k admitted requests per
segment at a million viewers); the exact queue a full sort of each PoP's ready times and a few
passes per request.

Pushing (``push=True``) lands each segment at the origin caches ``origin→server`` after
publication and at the targeted PoPs one ``edge→origin`` later. Targets are all PoPs, or with
``push_to="watched"`` those whose viewers asked for the previous segment.

:func:`chatdesign.live.oracle.simulate_live_simpy` models the same thing one event per request
with SimPy; the tests require identical counters and latency histograms (with queueing, latencies
to float rounding: SimPy sums the queue's times in another order).

Reading Facebook's figures (2015, "Under the hood: Broadcasting live video to millions"). With
edge and origin caches more than 98 % of segments were already in the edge cache, but about
1.8 % of requests still got past it, and that leak is why they added request coalescing. So the
1.8 % describes the *uncoalesced* caches: every request that reaches an edge cache while the
first miss for its segment is still on its way back is another miss. The leak is therefore
set by how players spread their requests (the herd, :mod:`chatdesign.live.arrivals`) against how
long an edge miss takes (:attr:`~chatdesign.live.topology.PathDelays.edge_miss_s`): about the
share of a PoP's herd sent within one edge-miss latency ``m`` of its first request. With phases
uniform over ``S = herd_spread_s`` and jitter uniform over ``J = jitter_s <= S``, that is
``m**2 / (2 S J)`` for ``m <= J`` and ``(m - J / 2) / S`` for ``m >= J``; the plain ``m / S``
holds only without jitter and, at the default 20 ms, overstates the calibrated leak about
twofold (``tests/live/test_herd_leak.py`` checks the approximation against this model). The
herd's spread is the one calibrated parameter (:data:`~chatdesign.live.arrivals.HERD_SPREAD`,
recomputed by :func:`calibrate_herd_spread`). With coalescing each PoP sends at most one request
per segment upstream, so the leak becomes ``PoPs with viewers / requests`` at any audience size.

Other assumptions: every PoP has one logical edge cache per stream (proxies hash a segment's
URL to one cache host), caches are big enough that no live segment is evicted while still asked
for, and all viewers watch the same rendition.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatdesign.checks import check_number
from chatdesign.exercises import CheckResult
from chatdesign.live.arrivals import (
    CALIBRATION_VIEWERS,
    HERD_SPREAD,
    LiveScenario,
    SegmentArrivals,
    segment_arrivals,
)
from chatdesign.live.exercises import diagnose
from chatdesign.live.faults import SlowLink
from chatdesign.live.queueing import (
    QUEUE_BIN_S,
    ProgressionHistogram,
    fifo_finish_sorted,
    fluid_bin_starts,
)
from chatdesign.live.result import (
    BINS_PER_S,
    LAYERS,
    MAX_LATENCY_BINS,
    PEAK_BINS_PER_S,
    LiveResult,
    Tally,
    latency_bins,
)
from chatdesign.live.topology import PathDelays, build_topology, path_delays

EDGE, ORIGIN_CACHE, ORIGIN_SERVER = (LAYERS.index(name) for name in
                                     ("edge", "origin_cache", "origin_server"))

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(segments_done, segments_total)`` after each segment."""


@dataclass(frozen=True, eq=False)
class PathTimes:
    """Per-PoP and per-origin-cache delays (seconds) in the exact form both simulations add them.

    Round trips are computed once here (``x + x``) so that the vectorised model and the SimPy
    oracle add the very same floating-point numbers in the same order.
    """

    player_edge_s: np.ndarray
    player_edge_rtt_s: np.ndarray
    edge_origin_s: np.ndarray
    origin_of_pop: np.ndarray
    origin_server_s: np.ndarray
    origin_server_rtt_s: np.ndarray
    neighbour_pop: np.ndarray
    neighbour_s: np.ndarray
    spill_rtt_s: np.ndarray

    @classmethod
    def from_delays(cls, delays: PathDelays) -> PathTimes:
        """Derive the round trips from one-way :class:`PathDelays`."""
        player_edge_rtt = delays.player_edge_s + delays.player_edge_s
        return cls(
            player_edge_s=delays.player_edge_s,
            player_edge_rtt_s=player_edge_rtt,
            edge_origin_s=delays.edge_origin_s,
            origin_of_pop=delays.origin_of_pop,
            origin_server_s=delays.origin_server_s,
            origin_server_rtt_s=delays.origin_server_s + delays.origin_server_s,
            neighbour_pop=delays.neighbour_pop,
            neighbour_s=delays.neighbour_s,
            spill_rtt_s=player_edge_rtt + (delays.neighbour_s + delays.neighbour_s),
        )

    def __repr__(self) -> str:
        return f"PathTimes(pops={len(self.player_edge_s)}, origin_caches={len(self.origin_server_s)})"


def scenario_paths(scenario: LiveScenario) -> tuple[PathDelays, PathTimes]:
    """The topology of ``scenario`` (seeded by its ``seed``) as delays and path times, with its
    ``slow_link`` (if any) applied: the one place both simulations read the paths from."""
    graph = build_topology(scenario.pops, origin_caches=scenario.origin_caches,
                           seed=scenario.seed, zipf_exponent=scenario.zipf_exponent)
    delays = path_delays(graph)
    if scenario.slow_link is not None:
        delays = scenario.slow_link.apply(delays)
    return delays, PathTimes.from_delays(delays)


def viewers_carried(pops: int = 20, segment_s: float = 1.0, bitrate_kbps: float = 1_000.0,
                    seed: int = 0, *, origin_caches: int = 1, zipf_exponent: float = 1.0) -> int:
    """The most viewers the map's PoPs can serve at once with their derived capacity: the sum
    over PoPs of ``floor(capacity_rps x segment_s)``, requests per segment (each viewer asks
    once per segment). An upper bound: viewers crowd the big PoPs (Zipf) and spill only to the
    next-nearest one, so refusals start below it. Same topology arguments as
    :func:`simulate_live`."""
    scenario = LiveScenario(1, segment_s, segment_s, pops=pops, origin_caches=origin_caches,
                            seed=seed, bitrate_kbps=bitrate_kbps, zipf_exponent=zipf_exponent)
    delays, _ = scenario_paths(scenario)
    capacity = scenario.pop_capacity_per_segment(delays)
    assert capacity is not None
    return int(capacity.sum())


def push_targets(scenario: LiveScenario, previous_counts: np.ndarray | None) -> np.ndarray:
    """Which PoPs get a segment pushed: all, or those whose viewers asked for the previous one
    (``push_to="watched"``; nothing is known before the first segment, so it is pulled)."""
    if not scenario.push:
        return np.zeros(scenario.pops, dtype=bool)
    if scenario.push_to == "all":
        return np.ones(scenario.pops, dtype=bool)
    if previous_counts is None:
        return np.zeros(scenario.pops, dtype=bool)
    return previous_counts > 0


def _group_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _add_demand(tally: Tally, arrivals: SegmentArrivals, horizon_s: float) -> None:
    """Per-second requests, per PoP, by counting sends below each whole second (no sort)."""
    send, counts = arrivals.send_s, arrivals.pop_counts
    nonempty = counts > 0
    starts = _group_starts(counts)[nonempty]
    second = int(np.floor(arrivals.publish_s))
    below_before = np.zeros(len(counts), dtype=np.int64)
    for boundary in range(second + 1, int(np.floor(arrivals.publish_s + horizon_s)) + 1):
        below = np.zeros(len(counts), dtype=np.int64)
        if len(send):
            below[nonempty] = np.add.reduceat(send < boundary, starts, dtype=np.int64)
        tally.pop_demand[boundary - 1] += below - below_before
        below_before = below
        second = boundary
    tally.pop_demand[second] += counts - below_before


def _split_earliest(values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Reorder ``values`` in place so that its ``count`` smallest come first (a partial sort);
    return the two parts as views. Only the values matter downstream, not which request had
    which, so equal times need no order."""
    if count <= 0:
        return values[:0], values
    if count < len(values):
        values.partition(count - 1)
    return values[:count], values[count:]


def _admitted_per_block(values: list[np.ndarray], room: int) -> tuple[np.ndarray, float]:
    """Of blocks of times offered to one PoP with ``room`` left (earliest first; equal times in
    block order), how many each block gets in, and the cutoff time (admitted: below it, plus
    the first ties)."""
    if room <= 0:
        return np.zeros(len(values), dtype=np.int64), -np.inf
    offered = np.concatenate(values)
    if room >= len(offered):
        return np.array([len(v) for v in values], dtype=np.int64), np.inf
    cutoff = float(np.partition(offered, room - 1)[room - 1])
    below = np.array([np.count_nonzero(v < cutoff) for v in values], dtype=np.int64)
    ties = np.array([np.count_nonzero(v == cutoff) for v in values], dtype=np.int64)
    tie_room = room - int(below.sum())
    tie_taken = np.minimum(ties, np.maximum(tie_room - (np.cumsum(ties) - ties), 0))
    return below + tie_taken, cutoff


class _Segment:
    """One segment's requests after admission: arrival times grouped by the PoP serving them.

    A PoP admits its own viewers' earliest ``capacity`` requests; the rest are refused or spill
    to the next-nearest PoP, which takes them only into the room its own viewers left
    (``capacity - own admitted``), earliest first (equal times in order of the PoP they came
    from), and refuses the others: a spill never pushes a neighbour over its own capacity.
    (With one PoP there is no neighbour: the rest is refused.) Admission is a partial sort of
    each full PoP's times, in place; what follows needs each PoP's times, not who sent them.

    Each PoP's group is made of *blocks* that share one no-wait latency: its own viewers
    (``2 x player→edge``), then the requests spilled to it from each other PoP, in PoP order
    (``2 x player→edge + 2 x neighbour``). Hits are counted per block, not per request.
    """

    def __init__(self, scenario: LiveScenario, paths: PathTimes, arrivals: SegmentArrivals,
                 tally: Tally, player_edge_v: np.ndarray, capacity: np.ndarray | None,
                 buffers: tuple[np.ndarray, np.ndarray], count_peak: bool = True,
                 sort_blocks: bool = False) -> None:
        pops = scenario.pops
        self.publish_s = arrivals.publish_s
        self.count_peak = count_peak  # False: the queue counts it from each PoP's sorted times
        self.sort_blocks = sort_blocks  # each block's times sorted in place once admitted
        own_counts = arrivals.pop_counts
        every_pop = np.arange(pops)
        if capacity is None or not (own_counts > capacity).any():
            arrive = np.add(arrivals.send_s, player_edge_v, out=buffers[0][: len(player_edge_v)])
            self._set(arrive, own_counts, every_pop, own_counts,
                      paths.player_edge_rtt_s)
            tally.add_segment_load(own_counts, own_counts)
            self._add_peak(tally)
            return
        # admission on the send times (a PoP adds one delay to all its own, which keeps their
        # order), partially sorted in place; only the admitted get their arrival computed
        starts = _group_starts(own_counts)
        kept_counts = np.minimum(own_counts, capacity)
        over_counts = own_counts - kept_counts
        kept_arrive = buffers[1][: int(kept_counts.sum())]
        kept_starts = _group_starts(kept_counts)
        over_parts = []  # send times
        for p in range(pops):
            part = arrivals.send_s[int(starts[p]):int(starts[p] + own_counts[p])]
            kept, over = (_split_earliest(part, int(capacity[p])) if own_counts[p] > capacity[p]
                          else (part, part[:0]))
            np.add(kept, paths.player_edge_s[p],
                   out=kept_arrive[int(kept_starts[p]):int(kept_starts[p]) + len(kept)])
            over_parts.append(over)
        spill = scenario.overflow == "spill" and pops > 1
        # every send is within the herd after publication (a margin for rounding): bounds for
        # counting arrivals per second, instead of a pass for each
        send_bounds = (self.publish_s, self.publish_s + scenario.herd_span_s + 1e-9)

        def count_at(column: str, send_s: np.ndarray, q: int, extra_s: float = 0.0) -> None:
            """Count ``(send + player->edge of PoP q) + extra_s`` per second (arrivals at q or,
            with ``extra_s``, at its neighbour); computed only if they may straddle a second."""
            edge = float(paths.player_edge_s[q])
            low, high = ((bound + edge) + extra_s for bound in send_bounds)
            if np.floor(low) == np.floor(high):
                tally.add_seconds(column, send_s, bounds=(low, high))
            else:
                values = send_s + edge
                tally.add_seconds(column, values + extra_s if extra_s else values)

        for q, over in enumerate(over_parts):
            count_at("spilled" if spill else "refused", over, q)
        if not spill:
            tally.pop["refused"] += over_counts
            self._set(kept_arrive, kept_counts, every_pop, kept_counts,
                      paths.player_edge_rtt_s)
            tally.add_segment_load(own_counts, self.counts)
            self._add_peak(tally)
            return
        tally.pop["spilled_out"] += over_counts
        room = capacity - kept_counts
        spill_counts = np.zeros(pops, dtype=np.int64)
        spilled_in: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(pops)]
        by_target: dict[int, list[int]] = {}
        for q in np.flatnonzero(over_counts).tolist():  # in PoP order
            by_target.setdefault(int(paths.neighbour_pop[q]), []).append(q)
        for target, sources in sorted(by_target.items()):
            if room[target] <= 0:  # no room left: all refused, counted at the neighbour
                for q in sources:
                    count_at("refused", over_parts[q], q, float(paths.neighbour_s[q]))
                    tally.pop["refused"][q] += len(over_parts[q])
                continue
            # only a source's earliest `room` can get in: split them off first, in place (the
            # partial sort keeps each source's order, so shifting after it changes nothing)
            times = []
            for q in sources:
                head, tail = _split_earliest(over_parts[q], int(room[target]))
                if len(tail):
                    count_at("refused", tail, q, float(paths.neighbour_s[q]))
                    tally.pop["refused"][q] += len(tail)
                times.append((head + paths.player_edge_s[q]) + paths.neighbour_s[q])
            admitted, cutoff = _admitted_per_block(times, int(room[target]))
            for q, values, count in zip(sources, times, admitted.tolist(), strict=True):
                if count == 0:  # no room left: all refused
                    tally.add_seconds("refused", values)
                    tally.pop["refused"][q] += len(values)
                elif count < len(values):
                    taken = np.flatnonzero(values < cutoff)
                    ties = np.flatnonzero(values == cutoff)[: count - len(taken)]
                    keep = np.zeros(len(values), dtype=bool)
                    keep[taken], keep[ties] = True, True
                    tally.add_seconds("refused", values[~keep])
                    tally.pop["refused"][q] += len(values) - count
                    values = values[keep]
                if count:
                    spilled_in[target].append((q, values))
            spill_counts[target] = int(admitted.sum())
        tally.pop["spilled_in"] += spill_counts
        if not spill_counts.any():  # every spilled request was refused
            self._set(kept_arrive, kept_counts, every_pop, kept_counts,
                      paths.player_edge_rtt_s)
        else:
            parts: list[np.ndarray] = []
            block_pop, block_counts, block_base = [], [], []
            for p in range(pops):
                parts.append(kept_arrive[kept_starts[p]:kept_starts[p] + kept_counts[p]])
                block_pop.append(p)
                block_counts.append(int(kept_counts[p]))
                block_base.append(float(paths.player_edge_rtt_s[p]))
                for q, values in spilled_in[p]:
                    parts.append(values)
                    block_pop.append(p)
                    block_counts.append(len(values))
                    block_base.append(float(paths.spill_rtt_s[q]))
            self._set(np.concatenate(parts, out=buffers[0][: int((kept_counts + spill_counts).sum())]),
                      kept_counts + spill_counts,
                      np.array(block_pop, dtype=np.int64), np.array(block_counts, dtype=np.int64),
                      np.array(block_base))
        tally.add_segment_load(own_counts, self.counts)
        self._add_peak(tally)

    def _set(self, arrive_s: np.ndarray, counts: np.ndarray, block_pop: np.ndarray,
             block_counts: np.ndarray, block_base: np.ndarray) -> None:
        self.arrive_s, self.counts = arrive_s, counts
        if self.sort_blocks:
            block_ends = np.cumsum(block_counts).tolist()
            for begin, end in zip([0, *block_ends[:-1]], block_ends, strict=True):
                if end - begin > 1:
                    arrive_s[begin:end].sort()
        self.ends = np.cumsum(counts)
        self.starts = _group_starts(counts)
        self.block_counts, self.block_base = block_counts, block_base
        self.block_ends = np.cumsum(block_counts)
        self.simple = len(block_counts) == len(counts)  # one block per PoP: its own viewers
        self.blocks_of_pop = np.bincount(block_pop, minlength=len(counts))
        self.own_block = np.searchsorted(block_pop, np.arange(len(counts)))  # first of each PoP
        nonempty = np.flatnonzero(counts)
        self.nonempty = nonempty.tolist()
        self.first_pop = nonempty
        self.first_arrival = np.full(len(counts), np.inf)  # the earliest arrival at each PoP
        if len(nonempty):
            self.first_arrival[nonempty] = np.minimum.reduceat(arrive_s, self.starts[nonempty])
        self._first: np.ndarray | None = None

    @property
    def first(self) -> np.ndarray:
        """Index of the earliest arrival of each non-empty PoP (first occurrence on ties), in
        PoP order; found on demand (the queue and PoPs with spilled-in requests need it)."""
        if self._first is None:
            self._first = np.array([int(self.starts[p]) + int(np.argmin(
                self.arrive_s[self.starts[p]:self.starts[p] + self.counts[p]]))
                for p in self.nonempty], dtype=np.int64)
        return self._first

    def first_base(self, paths: PathTimes) -> np.ndarray:
        """The no-wait latency of each non-empty PoP's earliest request, in PoP order."""
        if self.simple:
            simple: np.ndarray = paths.player_edge_rtt_s[self.first_pop]
            return simple
        return self.base(paths, self.first)

    def _add_peak(self, tally: Tally) -> None:
        if self.count_peak:
            tally.add_peak_10ms(self.arrive_s, None, self.publish_s, self.counts)

    def pop_of(self, index: np.ndarray) -> np.ndarray:
        """The PoP serving requests ``index``."""
        pop: np.ndarray = np.searchsorted(self.ends, index, side="right")
        return pop

    def part(self, p: int) -> slice:
        """Where PoP ``p``'s requests are."""
        begin = int(self.starts[p])
        return slice(begin, begin + int(self.counts[p]))

    def all_base(self) -> np.ndarray:
        """The no-wait latency of every request."""
        base: np.ndarray = np.repeat(self.block_base, self.block_counts)
        return base

    def base(self, paths: PathTimes, index: np.ndarray) -> np.ndarray:
        """The no-wait latency (round trip to the serving edge) of requests ``index``."""
        if self.simple:
            simple: np.ndarray = paths.player_edge_rtt_s[self.pop_of(index)]
            return simple
        base: np.ndarray = self.block_base[np.searchsorted(self.block_ends, index, side="right")]
        return base

    def add_hits(self, tally: Tally, non_hits: np.ndarray,
                 own_non_hits: np.ndarray | None = None) -> None:
        """Add every request but ``non_hits`` (indices) and, per PoP, ``own_non_hits`` more of
        its own viewers' (counted, not listed) to the edge histogram at its no-wait latency
        (the round trip to the edge), one bin per block."""
        block = (self.pop_of(non_hits) if self.simple
                 else np.searchsorted(self.block_ends, non_hits, side="right"))
        non = np.bincount(block, minlength=len(self.block_counts))
        if own_non_hits is not None:
            non[self.own_block] += own_non_hits
        np.add.at(tally.histogram[EDGE], latency_bins(self.block_base), self.block_counts - non)


def _latency_and_wait(finish: np.ndarray, arrive: np.ndarray, ready: np.ndarray, base: float,
                      service: float, latency: np.ndarray, wait: np.ndarray) -> None:
    """Write ``base + (finish - arrive)`` into ``latency`` and ``finish - service - ready`` into
    ``wait`` without temporaries (the same operations, in the same order)."""
    np.subtract(finish, arrive, out=latency)
    np.add(base, latency, out=latency)
    np.subtract(finish, service, out=wait)
    wait -= ready


def _positions(key: np.ndarray, ready: np.ndarray, arrive: np.ndarray) -> np.ndarray:
    """Where requests ready at ``ready`` (arrived at ``arrive``, before it) sit in the queue
    order ``key`` (sorted ready times; ties by arrival, then by index). A request ready later
    than it arrived goes before any other ready at the same time that arrived then; several
    such with one ready time take consecutive places in order of arrival."""
    order = np.lexsort((arrive, ready))
    ready_sorted = ready[order]
    place = np.arange(len(order))
    new_time = np.ones(len(order), dtype=bool)
    new_time[1:] = ready_sorted[1:] != ready_sorted[:-1]
    run_start = np.maximum.accumulate(np.where(new_time, place, 0))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.searchsorted(key, ready_sorted) + (place - run_start)
    return position


def _fluid_rows(queued: np.ndarray, bin_end_s: np.ndarray, step_s: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~chatdesign.live.queueing.fluid_bin_starts` for many PoPs at once, one row each
    (``queued`` requests per ready bin ending at ``bin_end_s``; ``step_s`` a column, s per
    request): each bin's first start, the requests queued before it in its row, and per row
    the sum and the longest of the waits counted from the bins' ends (s)."""
    queued_before = np.cumsum(queued, axis=1) - queued
    used = queued > 0
    begins = np.where(used, bin_end_s - step_s * queued_before, -np.inf)
    np.maximum.accumulate(begins, axis=1, out=begins)
    begins += step_s * queued_before
    wait0 = np.where(used, begins - bin_end_s, 0.0)
    wait_sum = (queued * wait0).sum(axis=1) + step_s[:, 0] * (queued * (queued - 1)).sum(axis=1) / 2
    longest = np.where(used, wait0 + (queued - 1) * step_s, 0.0).max(axis=1)
    return begins, queued_before, wait_sum, longest


@dataclass(frozen=True, eq=False)
class _Misses:
    """One segment's uncoalesced edge misses in queue order (by PoP, then answer time): when
    each arrived (s), when its own fetch answered it (``ready_s``), its no-wait latency, block
    and the layer that answered it."""

    arrive_s: np.ndarray
    ready_s: np.ndarray
    pop: np.ndarray
    base_s: np.ndarray
    block: np.ndarray
    layer: np.ndarray


class _Queue:
    """Each PoP's servers as a FIFO D/c queue (:mod:`chatdesign.live.queueing`): exact
    (:meth:`serve`) or, with ``bin_s`` > 0, binned (:meth:`serve_binned` with coalescing,
    :meth:`serve_binned_uncoalesced` without)."""

    def __init__(self, servers: np.ndarray, service_s: np.ndarray, bin_s: float = 0.0) -> None:
        self.servers = servers.tolist()
        self.service_s = service_s
        self.bin_s = bin_s
        self.fine = round(0.01 / bin_s) if bin_s else 0  # queue bins per 10 ms peak bin
        self.step_s = service_s / servers  # the fluid queue's time per request
        self.histogram = ProgressionHistogram(MAX_LATENCY_BINS, 1.0 / BINS_PER_S)
        self._since, self._bins = np.empty(0), np.empty(0, dtype=np.intp)

    def finish(self, tally: Tally) -> None:
        """Add the binned queue's edge latencies to the tally (once, after the last segment)."""
        if self.histogram.total:
            tally.histogram[EDGE] += self.histogram.counts()

    def serve_binned(self, seg: _Segment, tally: Tally, landed: np.ndarray,
                     first_layer: np.ndarray, publish_s: float) -> None:
        """:meth:`serve` with coalescing, binned (:mod:`chatdesign.live.queueing`): each
        request is ready at ``max(arrival, landed[pop])`` rounded up to the end of its bin, and
        each bin is one batch of a fluid queue. One pass counts every PoP's arrivals per bin
        (the same pass gives the busiest 10 ms); everything else is per bin. Each PoP's first
        request is served first, at ``max(arrival, landed)``, so its latency (the one
        ``first_request_latency_ms`` averages, and the fetch's, in ``first_layer``) is exact;
        the others' latencies are taken from their arrival bin's end, in order of arrival bin
        (a PoP's blocks in one bin in any order: they share a rounded arrival), and spread
        over the edge histogram (:class:`~chatdesign.live.queueing.ProgressionHistogram`).
        """
        n = len(seg.arrive_s)
        if len(self._since) < n:  # reused buffers: no fresh pages per segment
            self._since, self._bins = np.empty(n), np.empty(n, dtype=np.intp)
        since, bins = self._since[:n], self._bins[:n]
        np.subtract(seg.arrive_s, publish_s, out=since)
        since *= PEAK_BINS_PER_S  # as Tally.add_peak_10ms; then x 2**k, exact
        since *= self.fine
        np.copyto(bins, since, casting="unsafe")  # truncates: queue bin; // fine: 10 ms bin
        pops = seg.first_pop
        if seg.simple:  # one block per PoP: the earliest arrival is known, its index is not needed
            first_block = seg.own_block[pops]
            first_arrive = seg.first_arrival[pops]
            first_bin = (((first_arrive - publish_s) * PEAK_BINS_PER_S) * self.fine).astype(np.intp)
        else:
            first_block = np.searchsorted(seg.block_ends, seg.first, side="right")
            first_arrive = seg.arrive_s[seg.first]
            first_bin = bins[seg.first]
        service = self.service_s[pops]
        ready = np.maximum(first_arrive, landed[pops])
        first_latency = seg.block_base[first_block] + ((ready + service) - first_arrive)
        for layer in (EDGE, ORIGIN_CACHE, ORIGIN_SERVER):
            tally.add_latencies(layer, first_latency[first_layer == layer])
        tally.first_latency_sum_s += float(first_latency.sum())
        tally.first_requests += len(pops)
        peak = tally.pop["peak_served_per_10ms"]
        width, fine = self.bin_s, self.fine
        landed_bin = np.floor(((landed[pops] - publish_s) * PEAK_BINS_PER_S) * fine)
        merged_bin = np.maximum(landed_bin, first_bin).astype(np.int64)  # where waiters are ready
        lows: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        steps: list[np.ndarray] = []
        single = seg.blocks_of_pop[pops] == 1
        if single.any():
            rows = np.flatnonzero(single)
            self._serve_single_blocks(seg, tally, bins, rows, merged_bin[rows], publish_s,
                                      lows, counts, steps)
        for k in np.flatnonzero(~single).tolist():
            p = int(pops[k])
            part = seg.part(p)
            pop_bins = bins[part]
            own, blocks = int(seg.own_block[p]), int(seg.blocks_of_pop[p])
            merged = int(merged_bin[k])
            # several blocks: its own viewers', then those spilled in
            edges = np.concatenate(([0], np.cumsum(seg.block_counts[own:own + blocks])))
            per_block = [np.bincount(pop_bins[edges[b]:edges[b + 1]])
                         for b in range(blocks)]
            lead = int(first_block[k]) - own  # the first request's block goes first
            rest = [b for b in range(blocks) if b != lead]
            order = own + np.array([lead, *rest])
            per_block = [per_block[lead]] + [per_block[b] for b in rest]
            size = max(*(len(c) for c in per_block), merged + 1)
            grid = np.zeros((size, blocks), dtype=np.int64)  # bin x block
            for b, c in enumerate(per_block):
                grid[: len(c), b] = c
            arrived = grid.sum(axis=1)
            size = len(arrived)
            whole = -(-size // fine) * fine
            by_10ms = np.zeros(whole, dtype=np.int64)
            by_10ms[:size] = arrived
            peak[p] = max(int(peak[p]), int(by_10ms.reshape(-1, fine).sum(axis=1).max()))
            queued = arrived.copy()  # requests per ready bin
            queued[merged] = arrived[: merged + 1].sum()
            queued[:merged] = 0
            bin_end = publish_s + (np.arange(size) + 1.0) * width
            servers, service_s = self.servers[p], float(self.service_s[p])
            step = float(self.step_s[p])
            begins = fluid_bin_starts(bin_end, queued, servers, service_s)
            used = queued > 0
            wait0 = begins[used] - bin_end[used]
            many = queued[used]
            tally.queue_wait_sum_s[p] += float((many * wait0).sum()
                                               + step * (many * (many - 1)).sum() / 2)
            tally.queue_wait_max_s[p] = max(float(tally.queue_wait_max_s[p]),
                                            float((wait0 + (many - 1) * step).max()))
            flat = grid.ravel()  # groups of (arrival bin, block), in queue order
            rank = np.cumsum(flat) - flat
            nonzero = np.flatnonzero(flat)
            arrival_bin = nonzero // blocks
            ready_bin = np.maximum(arrival_bin, merged)
            within = rank[nonzero] - (np.cumsum(queued) - queued)[ready_bin]
            base = seg.block_base[order[nonzero % blocks]]
            low = base + (((begins[ready_bin] + within * step) + service_s)
                          - bin_end[arrival_bin])
            count = flat[nonzero].astype(float)
            low[0] += step  # the first request, counted exactly above
            count[0] -= 1
            lows.append(low)
            counts.append(count)
            steps.append(np.full(len(low), step))
        if lows:
            self.histogram.add(np.concatenate(lows), np.concatenate(counts),
                               np.concatenate(steps))

    def _serve_single_blocks(self, seg: _Segment, tally: Tally, bins: np.ndarray,
                             rows: np.ndarray, merged: np.ndarray, publish_s: float,
                             lows: list[np.ndarray], counts: list[np.ndarray],
                             steps: list[np.ndarray]) -> None:
        """:meth:`serve_binned` for the PoPs ``seg.first_pop[rows]`` that serve only their own
        viewers, all at once: one row of bins per PoP (its waiters' bin ``merged``)."""
        pops = seg.first_pop[rows]
        per_pop = [np.bincount(bins[seg.part(int(p))]) for p in pops.tolist()]
        fine = self.fine
        size = max(max(len(c) for c in per_pop), int(merged.max()) + 1)
        size = -(-size // fine) * fine  # whole 10 ms bins
        arrived = np.zeros((len(pops), size), dtype=np.int64)
        for row, c in enumerate(per_pop):
            arrived[row, : len(c)] = c
        peak = tally.pop["peak_served_per_10ms"]
        peak[pops] = np.maximum(peak[pops],
                                arrived.reshape(len(pops), -1, fine).sum(axis=2).max(axis=1))
        column = np.arange(size)
        ready_bin = np.maximum(column, merged[:, None])  # of each arrival bin
        arrived_before = np.cumsum(arrived, axis=1) - arrived  # the queue is in arrival-bin order
        queued = np.where(column < merged[:, None], 0, arrived)  # requests per ready bin
        line = np.arange(len(pops))
        queued[line, merged] += arrived_before[line, merged]
        bin_end = publish_s + (column + 1.0) * self.bin_s
        step = self.step_s[pops][:, None]
        service = self.service_s[pops][:, None]
        begins, queued_before, wait_sum, longest = _fluid_rows(queued, bin_end, step)
        tally.queue_wait_sum_s[pops] += wait_sum
        tally.queue_wait_max_s[pops] = np.maximum(tally.queue_wait_max_s[pops], longest)
        within = arrived_before - np.take_along_axis(queued_before, ready_bin, axis=1)
        low = (seg.block_base[seg.own_block[pops]][:, None]
               + (((np.take_along_axis(begins, ready_bin, axis=1) + within * step) + service)
                  - bin_end))
        count = arrived.astype(float)
        first = np.argmax(arrived > 0, axis=1)  # the first request's bin: counted exactly
        low[line, first] += step[:, 0]
        count[line, first] -= 1
        keep = arrived > 0
        lows.append(low[keep])
        counts.append(count[keep])
        steps.append(np.broadcast_to(step, low.shape)[keep])

    def _bin_of(self, times_s: np.ndarray, publish_s: float, reuse: bool = False,
                truncate: bool = True) -> np.ndarray:
        """The queue bin of each time (its index from publication; the 10 ms peak bin is it
        ``// fine``), by the same operations as :meth:`serve_binned` so that equal times share
        a bin; with ``truncate=False`` the scaled times before truncation (a time is in bin
        ``k`` or below iff its scaled time is below ``k + 1``). ``reuse``: into the queue's own
        buffers (valid until the next call)."""
        n = len(times_s)
        if not reuse:
            since, bins = np.empty(n), np.empty(n, dtype=np.intp)
        else:
            if len(self._since) < n:  # reused buffers: no fresh pages per segment
                self._since, self._bins = np.empty(n), np.empty(n, dtype=np.intp)
            since, bins = self._since[:n], self._bins[:n]
        np.subtract(times_s, publish_s, out=since)
        since *= PEAK_BINS_PER_S  # as Tally.add_peak_10ms; then x 2**k, exact
        since *= self.fine
        if not truncate:
            return since
        np.copyto(bins, since, casting="unsafe")  # truncates
        return bins

    def serve_binned_uncoalesced(self, seg: _Segment, tally: Tally, misses: _Misses,
                                 first_row: np.ndarray, first_missed: np.ndarray,
                                 paths: PathTimes, publish_s: float) -> None:
        """:meth:`serve` without coalescing, binned (:mod:`chatdesign.live.queueing`), for a
        segment whose blocks are sorted (``sort_blocks``).

        Every ready time is rounded up to the end of its bin and each bin is one batch of the
        fluid queue, as with coalescing; a hit is ready on arrival, a miss at its own answer.
        The misses of a block are its earliest requests (a request that arrives after the
        segment landed hits, and so does every later one), the rest its hits, sorted. The
        queue order inside a bin is exact: a miss goes after the hits of its ready bin that
        arrived before its answer (a binary search in the sorted hits) and among the bin's
        misses by answer time, so every latency is within ``(-b, b + s)`` of the exact queue's.
        A miss's latency is computed one by one from its own arrival. The hits of one bin and
        block are one run of evenly spaced latencies from the bin's end over the places from
        their first to their last (:class:`ProgressionHistogram`), less a run of -1 at each
        miss's place in between. A PoP's first request is exact when it hit (a push had landed;
        nothing is ready before it). Requests per bin (and the busiest 10 ms) are counted by
        binary search over each block's scaled, sorted times.
        """
        pops, blocks = len(seg.counts), len(seg.block_counts)
        fine = self.fine
        ready_bin = self._bin_of(misses.ready_s, publish_s)
        block_end = seg.block_ends
        block_start = block_end - seg.block_counts
        filled = np.flatnonzero(seg.block_counts)
        last_bin = self._bin_of(seg.arrive_s[block_end[filled] - 1], publish_s)
        width = max(int(last_bin.max()) + 1 if len(last_bin) else 1,
                    int(ready_bin.max()) + 1 if len(ready_bin) else 1)
        width = -(-width // fine) * fine  # whole 10 ms bins, the same for every PoP
        # requests and hits per (block, bin): the misses are each block's first requests
        block_misses = np.bincount(misses.block, minlength=blocks)
        edges = np.arange(1, width + 1)
        arrived_below = np.zeros((blocks, width), dtype=np.int64)  # in this bin or before
        for b in filled.tolist():
            scaled = self._bin_of(seg.arrive_s[block_start[b]:block_end[b]], publish_s,
                                  reuse=True, truncate=False)
            arrived_below[b] = np.searchsorted(scaled, edges)
        hits_below = np.maximum(arrived_below - block_misses[:, None], 0)
        arrived = np.diff(arrived_below, axis=1, prepend=0)
        hits = np.diff(hits_below, axis=1, prepend=0)
        if seg.simple:
            arrived_pop, hits_pop = arrived, hits
        else:
            arrived_pop = np.add.reduceat(arrived, seg.own_block, axis=0)
            hits_pop = np.add.reduceat(hits, seg.own_block, axis=0)
        peak = tally.pop["peak_served_per_10ms"]
        np.maximum(peak, arrived_pop.reshape(pops, -1, fine).sum(axis=2).max(axis=1), out=peak)
        ready_cell = misses.pop * width + ready_bin
        ready_count = np.bincount(ready_cell, minlength=pops * width).reshape(pops, width)
        queued = hits_pop + ready_count
        # the fluid queue of every PoP at once (fluid_bin_starts, row by row)
        bin_end = publish_s + (np.arange(width) + 1.0) * self.bin_s
        begins, queued_before, wait_sum, longest = _fluid_rows(queued, bin_end,
                                                               self.step_s[:, None])
        served = np.flatnonzero(seg.counts)
        tally.queue_wait_sum_s[served] += wait_sum[served]
        tally.queue_wait_max_s[served] = np.maximum(tally.queue_wait_max_s[served],
                                                    longest[served])
        # the misses come in queue order; the hits that arrived before a miss's answer go
        # before it: its place in its PoP's queue is that count plus the misses before it
        hits_flat = hits_pop.ravel()
        hits_before_cell = np.cumsum(hits_flat) - hits_flat
        miss_bounds = np.searchsorted(misses.pop, np.arange(pops + 1))
        hits_first = np.empty(len(misses.pop), dtype=np.int64)  # of all hits, in queue order
        pop_hits = hits_before_cell[np.arange(pops) * width]  # hits of the PoPs before
        place = np.empty(len(misses.pop), dtype=np.int64)  # in its PoP's queue
        for p in np.flatnonzero(np.diff(miss_bounds)).tolist():
            mine = slice(int(miss_bounds[p]), int(miss_bounds[p + 1]))
            own = int(seg.own_block[p])
            count = np.searchsorted(seg.arrive_s[block_start[own] + block_misses[own]:
                                                 block_end[own]], misses.ready_s[mine])
            for b in range(own + 1, own + int(seg.blocks_of_pop[p])):
                count += np.searchsorted(
                    seg.arrive_s[block_start[b] + block_misses[b]:block_end[b]],
                    misses.ready_s[mine])
            hits_first[mine] = count + pop_hits[p]
            place[mine] = count + np.arange(mine.stop - mine.start)
        cell = ready_cell
        rank = place - queued_before.ravel()[cell]  # in its bin
        begins_flat = begins.ravel()
        miss_service = self.service_s[misses.pop]
        start = begins_flat[cell] + rank * self.step_s[misses.pop]
        latency = misses.base_s + ((start + miss_service) - misses.arrive_s)
        if len(latency):  # into the histogram's (layer, bin) cells, seen as one row
            by_layer = np.bincount(latency_bins(latency) + misses.layer * MAX_LATENCY_BINS)
            tally.histogram.reshape(-1)[: len(by_layer)] += by_layer
        # each PoP's first request: its earliest miss, or a hit served at once
        first_pop = seg.first_pop
        first_missed_here = first_missed[first_pop]
        first_latency = np.empty(len(first_pop))
        first_latency[first_missed_here] = latency[first_row[first_pop[first_missed_here]]]
        if not first_missed_here.all():  # some PoP's first request hit (a push had landed)
            hit_first = ~first_missed_here
            first_arrive = seg.first_arrival[first_pop[hit_first]]
            first_latency[hit_first] = (seg.first_base(paths)[hit_first] + (
                (first_arrive + self.service_s[first_pop[hit_first]]) - first_arrive))
        tally.first_latency_sum_s += float(first_latency.sum())
        tally.first_requests += len(first_pop)
        # the hits: one run per (PoP, bin, block) over its places, less the misses in between
        if seg.simple:
            cells = hits.ravel()
            group_cell = np.arange(len(cells))
            block_pop = np.arange(pops)
        else:
            block_pop = np.repeat(np.arange(pops), seg.blocks_of_pop)
            within = np.arange(blocks) - seg.own_block[block_pop]
            key = ((block_pop[:, None] * width + np.arange(width)) * int(seg.blocks_of_pop.max())
                   + within[:, None])
            group_cell = np.argsort(key.ravel())  # (block, bin) cells in queue order
            cells = hits.ravel()[group_cell]
        groups = np.flatnonzero(cells)
        if not len(groups):
            return
        group_hits = cells[groups]
        first_hit = np.cumsum(group_hits) - group_hits  # in all hits, in queue order
        misses_before = np.searchsorted(hits_first, first_hit, side="right")
        misses_within = np.searchsorted(hits_first, first_hit + (group_hits - 1),
                                        side="right") - misses_before
        group_block, group_bin = np.divmod(group_cell[groups], width)
        group_pop = block_pop[group_block]
        group_at = group_pop * width + group_bin
        ready_flat = ready_count.ravel()
        place0 = ((first_hit - hits_before_cell[group_at])
                  + (misses_before - (np.cumsum(ready_flat) - ready_flat)[group_at]))
        group_step = self.step_s[group_pop]
        group_base = seg.block_base[group_block]
        group_low = group_base + (((begins_flat[group_at] + place0 * group_step)
                                   + self.service_s[group_pop]) - bin_end[group_bin])
        # the places of the misses within a group's run, taken out again (a run of -1)
        taken = np.repeat(np.arange(len(groups)), misses_within)
        row = np.arange(len(taken)) + np.repeat(misses_before - (np.cumsum(misses_within)
                                                                 - misses_within), misses_within)
        taken_low = group_base[taken] + (((start[row] + miss_service[row]) + group_step[taken])
                                         - bin_end[group_bin[taken]])
        self.histogram.add(np.concatenate((group_low, taken_low)),
                           np.concatenate(((group_hits + misses_within).astype(float),
                                           np.full(len(taken), -1.0))),
                           np.concatenate((group_step, group_step[taken])))

    def serve(self, seg: _Segment, tally: Tally, landed: np.ndarray | None, special: np.ndarray,
              special_ready: np.ndarray | None, special_layer: np.ndarray,
              publish_s: float | None = None) -> None:
        """Queue every request from when the edge can answer it; add latencies (round trip +
        waiting for the segment + queueing + transfer) and queue waits.

        With coalescing (``landed`` given) a request is ready at ``max(arrival, landed[pop])``,
        which rises with its arrival, so each PoP's queue order is its arrivals sorted. Without
        it a request is ready on arrival, except the misses ``special`` (ready at their own
        answer, ``special_ready``), so the order is the ready times sorted (ties by arrival).
        The queue needs only the sorted times: latencies are computed in queue order and the
        few requests whose arrival differs from their ready time (or that are answered
        upstream, ``special_layer``) are found by binary search, and so are requests spilled in
        from another PoP (another no-wait latency); without coalescing such a PoP is ordered with
        an argsort. With ``publish_s`` (coalescing) each PoP's busiest 10 ms is counted here from
        its sorted arrivals (:meth:`Tally.add_peak_sorted`) instead of at admission.
        """
        n = len(seg.arrive_s)
        latency = np.empty(n)
        wait = np.empty(n)
        special_pos = np.empty(len(special), dtype=np.int64)
        first_pos = np.empty(len(seg.first), dtype=np.int64)
        special_pop = seg.pop_of(special)
        all_base = None if seg.simple or landed is not None else seg.all_base()
        for k, p in enumerate(seg.nonempty):
            part = seg.part(p)
            begin = part.start
            arrive = seg.arrive_s[part]
            mine = np.flatnonzero(special_pop == p)
            local = special[mine] - begin
            first_local = int(seg.first[k]) - begin
            servers, service = self.servers[p], float(self.service_s[p])
            own = int(seg.own_block[p])
            base = float(seg.block_base[own])  # its own viewers' no-wait latency
            if landed is not None:
                key = np.sort(arrive)
                ready = np.maximum(key, landed[p])
                finish = fifo_finish_sorted(ready, servers, service)
                lat = latency[part]
                _latency_and_wait(finish, key, ready, base, service, lat, wait[part])
                if seg.blocks_of_pop[p] > 1:  # requests spilled in: their own no-wait latency
                    spilled = arrive[int(seg.block_counts[own]):]
                    blocks = slice(own + 1, own + int(seg.blocks_of_pop[p]))
                    position = _positions(key, spilled, spilled)
                    lat[position] = (np.repeat(seg.block_base[blocks], seg.block_counts[blocks])
                                     + (finish[position] - spilled))
                special_pos[mine] = begin + np.searchsorted(key, arrive[local])
                first_pos[k] = begin + np.searchsorted(key, arrive[first_local])
                if publish_s is not None:
                    tally.add_peak_sorted(p, key, publish_s)
                continue
            if seg.blocks_of_pop[p] == 1:
                assert special_ready is not None
                ready = arrive.copy()
                ready[local] = special_ready[mine]
                key = np.sort(ready)
                finish = fifo_finish_sorted(key, servers, service)
                lat = latency[part]
                _latency_and_wait(finish, key, key, base, service, lat, wait[part])
                position = _positions(key, special_ready[mine], arrive[local])
                lat[position] = base + (finish[position] - arrive[local])
                special_pos[mine] = begin + position
                match = np.flatnonzero(local == first_local)
                first_pos[k] = begin + (int(position[match[0]]) if len(match)
                                        else int(np.searchsorted(key, arrive[first_local])))
                continue
            assert all_base is not None
            assert special_ready is not None
            ready = arrive.copy()
            ready[local] = special_ready[mine]
            order = np.lexsort((arrive, ready))
            finish = fifo_finish_sorted(ready[order], servers, service)
            latency[part] = all_base[part][order] + (finish - arrive[order])
            wait[part] = finish - service - ready[order]
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            special_pos[mine] = begin + rank[local]
            first_pos[k] = begin + rank[first_local]
        tally.add_latencies(EDGE, latency)
        special_bins = latency_bins(latency[special_pos])
        np.subtract.at(tally.histogram[EDGE], special_bins, 1)
        for layer in (EDGE, ORIGIN_CACHE, ORIGIN_SERVER):
            np.add.at(tally.histogram[layer], special_bins[special_layer == layer], 1)
        tally.first_latency_sum_s += float(latency[first_pos].sum())
        tally.first_requests += len(first_pos)
        np.maximum(wait, 0.0, out=wait)
        served = np.flatnonzero(seg.counts)
        tally.queue_wait_sum_s[served] += np.add.reduceat(wait, seg.starts[served])
        tally.queue_wait_max_s[served] = np.maximum(tally.queue_wait_max_s[served],
                                                    np.maximum.reduceat(wait, seg.starts[served]))


def _first_misses(
    seg: _Segment, paths: PathTimes, edge_push_s: np.ndarray, origin_push_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each PoP's first request and what it sets off upstream, shared by both cache kinds.

    Returns per PoP whether its first request missed (arrived before a push) and when it
    reached the origin cache; per origin cache, its first miss time, whether that went on to
    the origin server, and when the segment is ready there.
    """
    first_arrival = seg.first_arrival
    missed = first_arrival < edge_push_s
    upstream = first_arrival + paths.edge_origin_s
    origin_first = np.full(len(origin_push_s), np.inf)
    np.minimum.at(origin_first, paths.origin_of_pop[missed], upstream[missed])
    origin_missed = origin_first < origin_push_s
    ready = np.where(origin_missed,
                     np.minimum(origin_push_s, origin_first + paths.origin_server_rtt_s),
                     origin_push_s)
    return missed, upstream, origin_first, origin_missed, ready


def _coalescing_segment(seg: _Segment, scenario: LiveScenario, paths: PathTimes, tally: Tally,
                        edge_push_s: np.ndarray, origin_push_s: np.ndarray,
                        queue: _Queue | None) -> np.ndarray:
    """Resolve one segment with single-flight caches; returns F, when it lands at each edge."""
    missed, upstream, origin_first, origin_missed, ready = _first_misses(seg, paths, edge_push_s, origin_push_s)
    answered = np.maximum(upstream, ready[paths.origin_of_pop]) + paths.edge_origin_s
    landed = np.where(missed, np.minimum(edge_push_s, answered), edge_push_s)

    tally.add_seconds("origin_cache_requests", upstream[missed])
    tally.add_seconds("origin_server_requests", origin_first[origin_missed])
    tally.pop["origin_cache_requests"] += missed

    first_pop = seg.first_pop
    fetcher = missed[first_pop]
    went_to_server = origin_missed[paths.origin_of_pop[first_pop[fetcher]]] & (
        upstream[first_pop[fetcher]] == origin_first[paths.origin_of_pop[first_pop[fetcher]]])
    fetcher_layer = np.where(went_to_server, ORIGIN_SERVER, ORIGIN_CACHE)
    # the waiters (arrived before the segment landed), PoP by PoP
    waiters = np.zeros(scenario.pops, dtype=np.int64)
    waited_parts: list[np.ndarray] = []
    waiter_index: list[np.ndarray] = []
    for p in seg.nonempty:
        part = seg.part(p)
        arrive = seg.arrive_s[part]
        if queue is not None:
            waiters[p] = np.count_nonzero(arrive < landed[p])
        elif seg.blocks_of_pop[p] == 1:  # its own viewers only: one no-wait latency
            early = arrive[arrive < landed[p]]
            waiters[p] = len(early)
            waited_parts.append(paths.player_edge_rtt_s[p] + (landed[p] - early))
        else:
            index = part.start + np.flatnonzero(arrive < landed[p])
            waiters[p] = len(index)
            waiter_index.append(index)
            waited_parts.append(seg.base(paths, index) + (landed[p] - seg.arrive_s[index]))
    tally.coalesced += int(waiters.sum()) - int(missed.sum())
    if queue is not None and queue.bin_s:
        first_layer = np.full(len(first_pop), EDGE)
        first_layer[fetcher] = fetcher_layer
        queue.serve_binned(seg, tally, landed, first_layer, seg.publish_s)
        return landed
    if queue is not None:
        queue.serve(seg, tally, landed, seg.first[fetcher], None, fetcher_layer, seg.publish_s)
        return landed
    waited = np.concatenate(waited_parts) if waited_parts else np.empty(0)
    edge_histogram = np.bincount(latency_bins(waited))
    first_latency = seg.first_base(paths) + np.maximum(
        landed[first_pop] - seg.first_arrival[first_pop], 0.0)
    tally.first_latency_sum_s += float(first_latency.sum())
    tally.first_requests += len(first_pop)
    fetcher_bins = latency_bins(first_latency[fetcher])
    np.subtract.at(edge_histogram, fetcher_bins, 1)
    tally.histogram[EDGE, : len(edge_histogram)] += edge_histogram
    np.add.at(tally.histogram[ORIGIN_SERVER], fetcher_bins[went_to_server], 1)
    np.add.at(tally.histogram[ORIGIN_CACHE], fetcher_bins[~went_to_server], 1)
    single = seg.blocks_of_pop == 1
    seg.add_hits(tally, np.concatenate(waiter_index) if waiter_index
                 else np.empty(0, dtype=np.int64), np.where(single, waiters, 0))
    return landed


def _uncoalesced_segment(seg: _Segment, scenario: LiveScenario, paths: PathTimes, tally: Tally,
                         edge_push_s: np.ndarray, origin_push_s: np.ndarray,
                         queue: _Queue | None) -> np.ndarray:
    """Resolve one segment with plain caches: every request before the fill is its own miss.

    A request misses iff it arrives before the segment lands at its edge (``landed``, the
    earliest answer of a miss or the push). A miss's answer rises with its arrival within each of
    two kinds: sent before the origin cache has the segment (one more trip to the origin server)
    or after. So ``landed`` is the first request's answer, or the answer of the earliest request
    of the second kind if that one still missed: found with a few reductions, no sort.
    """
    missed, first_upstream, _, _, ready = _first_misses(seg, paths, edge_push_s, origin_push_s)

    def answered_at(pops: np.ndarray, upstream: np.ndarray) -> np.ndarray:
        origin = paths.origin_of_pop[pops]
        answer = np.where(upstream >= ready[origin], upstream,
                          upstream + paths.origin_server_rtt_s[origin])
        answer_at_edge: np.ndarray = answer + paths.edge_origin_s[pops]
        return answer_at_edge

    every_pop = np.arange(scenario.pops)
    first_answer = answered_at(every_pop, first_upstream)
    landed = np.where(missed, np.minimum(edge_push_s, first_answer), edge_push_s)
    ready_at_pop = ready[paths.origin_of_pop]
    for p in np.flatnonzero(missed & (first_upstream < ready_at_pop)).tolist():
        # the first request went on to the origin server; a later one that finds the segment at
        # the origin cache is answered sooner, and if it still missed, it lands the segment
        arrive = seg.arrive_s[seg.part(p)]
        if seg.sort_blocks and seg.blocks_of_pop[p] == 1:
            arrive = arrive[: int(np.searchsorted(arrive, landed[p]))]
        later = arrive[((arrive + paths.edge_origin_s[p]) >= ready_at_pop[p])
                       & (arrive < landed[p])]
        if len(later):
            earliest = later.min(keepdims=True)
            landed[p] = min(float(landed[p]), float(answered_at(
                np.array([p]), earliest + paths.edge_origin_s[p])[0]))
    arrive_parts: list[np.ndarray] = []
    index_parts: list[np.ndarray] = []
    listed: list[tuple[int, np.ndarray]] = []  # (first row, indices) of PoPs listed by index
    miss_counts = np.zeros(scenario.pops, dtype=np.int64)
    own_misses = np.zeros(scenario.pops, dtype=np.int64)
    binned = queue is not None and queue.bin_s > 0
    rows = 0
    for p in seg.nonempty:
        if not missed[p]:
            continue
        part = seg.part(p)
        arrive = seg.arrive_s[part]
        if (queue is None or binned) and seg.blocks_of_pop[p] == 1:  # its times, not who
            miss_arrive = (arrive[: int(np.searchsorted(arrive, landed[p]))] if seg.sort_blocks
                           else arrive[arrive < landed[p]])
            own_misses[p] = len(miss_arrive)
        else:
            index = part.start + np.flatnonzero(arrive < landed[p])
            miss_arrive = seg.arrive_s[index]
            if binned:
                by_arrival = np.argsort(miss_arrive, kind="stable")
                index, miss_arrive = index[by_arrival], miss_arrive[by_arrival]
            index_parts.append(index)
            listed.append((rows, index))
        arrive_parts.append(miss_arrive)
        miss_counts[p] = len(miss_arrive)
        rows += len(miss_arrive)

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    miss_arrive = joined(arrive_parts, float)
    miss_pop = np.repeat(np.arange(scenario.pops), miss_counts)
    miss_base = paths.player_edge_rtt_s[miss_pop]  # its own viewers', unless listed by index
    for row, index in listed:
        miss_base[row:row + len(index)] = seg.base(paths, index)
    miss_index = joined(index_parts, np.int64)  # every miss when queueing exactly
    miss_upstream = miss_arrive + paths.edge_origin_s[miss_pop]
    miss_answer = answered_at(miss_pop, miss_upstream)
    to_server = miss_upstream < ready[paths.origin_of_pop[miss_pop]]
    tally.add_seconds("origin_cache_requests", miss_upstream)
    tally.add_seconds("origin_server_requests", miss_upstream[to_server])
    tally.pop["origin_cache_requests"] += miss_counts
    miss_layer = np.where(to_server, ORIGIN_SERVER, ORIGIN_CACHE)
    if queue is not None and binned:
        # the queue's order: by PoP, then answer (ties: arrival order); where each PoP's
        # earliest miss goes in it
        order = np.arange(len(miss_pop))
        first_row = np.full(scenario.pops, -1, dtype=np.int64)
        bounds = np.searchsorted(miss_pop, np.arange(scenario.pops + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            begin, end = int(bounds[p]), int(bounds[p + 1])
            local = np.argsort(miss_answer[begin:end], kind="stable")
            order[begin:end] = local + begin
            first_row[p] = begin + int(np.argmin(local))
        miss_block = seg.own_block[miss_pop]
        for row, index in listed:
            miss_block[row:row + len(index)] = np.searchsorted(seg.block_ends, index, side="right")
        queue.serve_binned_uncoalesced(
            seg, tally, _Misses(miss_arrive[order], miss_answer[order], miss_pop,
                                miss_base[order], miss_block[order], miss_layer[order]),
            first_row, missed, paths, seg.publish_s)
        return landed
    if queue is not None:
        queue.serve(seg, tally, None, miss_index, miss_answer, miss_layer)
        return landed
    miss_latency = miss_base + (miss_answer - miss_arrive)
    tally.add_latencies(ORIGIN_SERVER, miss_latency[to_server])
    tally.add_latencies(ORIGIN_CACHE, miss_latency[~to_server])

    first_pop = seg.first_pop
    first_base = seg.first_base(paths)
    first_latency = np.where(missed[first_pop],
                             first_base + (first_answer[first_pop] - seg.first_arrival[first_pop]),
                             first_base)
    tally.first_latency_sum_s += float(first_latency.sum())
    tally.first_requests += len(first_pop)
    seg.add_hits(tally, miss_index, own_misses)
    return landed


def run_vectorised(scenario: LiveScenario, progress: ProgressCallback | None = None) -> LiveResult:
    """Run :func:`simulate_live` for a validated :class:`LiveScenario`."""
    delays, paths = scenario_paths(scenario)
    capacity = scenario.pop_capacity_per_segment(delays)
    tally = Tally(scenario, delays)
    queue = (_Queue(delays.servers, delays.service_s(scenario.segment_bytes),
                    scenario.queue_bin_s) if scenario.queueing else None)
    horizon_s = scenario.herd_span_s
    previous_counts: np.ndarray | None = None
    cached_counts: np.ndarray | None = None
    player_edge_v = np.empty(0)
    resolve = _coalescing_segment if scenario.coalescing else _uncoalesced_segment
    buffers = (np.empty(scenario.viewers), np.empty(scenario.viewers))  # reused every segment
    for arrivals in segment_arrivals(scenario, delays, reuse_buffers=True):
        if cached_counts is None or not np.array_equal(cached_counts, arrivals.pop_counts):
            cached_counts = arrivals.pop_counts
            player_edge_v = np.repeat(paths.player_edge_s, cached_counts)
        _add_demand(tally, arrivals, horizon_s)
        binned_uncoalesced = queue is not None and queue.bin_s > 0 and not scenario.coalescing
        seg = _Segment(scenario, paths, arrivals, tally, player_edge_v, capacity, buffers,
                       count_peak=queue is None or (not scenario.coalescing and not queue.bin_s),
                       sort_blocks=binned_uncoalesced)
        targets = push_targets(scenario, previous_counts)
        if scenario.push:
            origin_push = arrivals.publish_s + paths.origin_server_s
            edge_push = np.where(targets, origin_push[paths.origin_of_pop] + paths.edge_origin_s,
                                 np.inf)
        else:
            origin_push = np.full(len(paths.origin_server_s), np.inf)
            edge_push = np.full(scenario.pops, np.inf)
        resolve(seg, scenario, paths, tally, edge_push, origin_push, queue)
        tally.pushes += int(targets.sum())
        tally.unwatched_pushes += int((targets & (seg.counts == 0)).sum())
        previous_counts = arrivals.pop_counts
        if progress is not None:
            progress(arrivals.segment + 1, scenario.segments)
    if queue is not None:
        queue.finish(tally)
    tally.series["requests"] = tally.pop_demand.sum(axis=1)
    return tally.result()


def simulate_live(
    viewers: int,
    duration_s: float,
    segment_s: float = 1.0,
    pops: int = 20,
    origin_caches: int = 1,
    coalescing: bool = True,
    push: bool = False,
    pop_capacity_rps: float | Literal["derived"] | None = "derived",
    seed: int = 0,
    *,
    push_to: Literal["all", "watched"] = "all",
    overflow: Literal["spill", "refuse"] = "spill",
    herd_window_s: float | None = None,
    jitter_s: float = 0.02,
    ramp_s: float = 0.0,
    bitrate_kbps: float = 1_000.0,
    zipf_exponent: float = 1.0,
    herd_spread: float = HERD_SPREAD,
    playlist_refresh_s: float | None = None,
    clock_offset_s: float = 0.0,
    traffic_seed: int | None = None,
    queueing: bool = False,
    progress: ProgressCallback | None = None,
    slow_link: SlowLink | None = None,
    queue_bin_s: float = QUEUE_BIN_S,
) -> LiveResult:
    """Simulate ``viewers`` watching one live stream for ``duration_s`` seconds (vectorised).

    ``segment_s``: segment length (s). ``pops``/``origin_caches``: topology size (built by
    :func:`~chatdesign.live.topology.build_topology` with ``seed``). ``coalescing``: single-flight
    at edge and origin caches, as Facebook did. ``push``: the origin pushes each segment on
    publication to ``push_to`` PoPs ("all", or "watched" = those with viewers on the previous
    segment). ``pop_capacity_rps``: requests per second a PoP admits (checked per segment as
    ``floor(rps x segment_s)`` requests). By default (``"derived"``) each PoP's own capacity
    from its servers and links (:meth:`~chatdesign.live.topology.PathDelays.capacity_rps`:
    ``min(servers x 2 Gbps, player-facing links)`` over the segment's bits); a number overrides
    it for every PoP; None means no limit (every request is admitted). The rest ``overflow``
    ("spill" to the next-nearest PoP, which admits them only into the room its own viewers left
    and refuses the others, or "refuse"; with a single PoP there is no neighbour, so the rest is
    refused). The default 20-PoP map carries a few hundred thousand viewers of a 1,000 kbps
    stream (:func:`viewers_carried`); beyond that the result shows refusals. ``queueing``: each
    PoP's servers serve every request in a FIFO D/c queue (:mod:`chatdesign.live.queueing`),
    adding queueing delay and transfer time to its latency; ``queue_bin_s`` (s, default
    0.625 ms; 0 or 10 ms over a power of two) rounds ready times up to bins and serves each bin
    as a batch of a fluid queue (each latency within ``(-b, b + s)`` of the exact queue's), 0
    queues every request exactly (as the SimPy oracle does).
    The herd (see :mod:`chatdesign.live.arrivals`): players' phases spread uniformly
    over ``herd_spread`` (calibrated, :data:`~chatdesign.live.arrivals.HERD_SPREAD`) of the
    playlist refresh interval ``playlist_refresh_s`` (default ``segment_s``), or over
    ``herd_window_s`` seconds when given; plus a per-player clock offset up to
    ``clock_offset_s`` and per-request jitter up to ``jitter_s``. ``seed`` draws the topology
    and, unless ``traffic_seed`` is given, the traffic. ``ramp_s``: viewers join uniformly over
    this many seconds (a flash crowd); ``bitrate_kbps`` sizes segments for push bytes;
    ``zipf_exponent`` skews viewers over PoPs.
    ``progress(done, total)`` is called after each segment. ``slow_link``: a
    :class:`~chatdesign.live.faults.SlowLink` (one link slowed at some PoPs or origin caches:
    its delays, and for the player-facing link its bandwidth, scaled) or None.

    Memory is a handful of arrays of ``viewers`` floats (one segment at a time). Raises
    ``ValueError`` for invalid inputs (see :class:`~chatdesign.live.arrivals.LiveScenario`).
    """
    scenario = LiveScenario(
        viewers=viewers, duration_s=duration_s, segment_s=segment_s, pops=pops,
        origin_caches=origin_caches, coalescing=coalescing, push=push,
        pop_capacity_rps=pop_capacity_rps, seed=seed, push_to=push_to, overflow=overflow,
        herd_window_s=herd_window_s, jitter_s=jitter_s, ramp_s=ramp_s,
        bitrate_kbps=bitrate_kbps, zipf_exponent=zipf_exponent, herd_spread=herd_spread,
        playlist_refresh_s=playlist_refresh_s, clock_offset_s=clock_offset_s,
        traffic_seed=traffic_seed, queueing=queueing, slow_link=slow_link,
        queue_bin_s=queue_bin_s,
    )
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable, got {progress!r}")
    return run_vectorised(scenario, progress)


def calibrate_herd_spread(
    target_leak: float = 0.018,
    *,
    viewers: int = CALIBRATION_VIEWERS,
    segment_s: float = 3.0,
    duration_s: float = 30.0,
    seed: int = 0,
    tolerance: float = 0.002,
) -> float:
    """The ``herd_spread`` at which a popular stream without coalescing leaks ``target_leak``.

    Bisection over ``herd_spread`` (the leak falls as the herd spreads out) with
    :func:`simulate_live` at ``viewers`` over the default 20 PoPs, ``segment_s`` segments,
    ``coalescing=False`` and no PoP capacity limit (the leak is the caches' doing; refusals
    would hide it); stops when the bracket is narrower than ``tolerance``. The defaults are
    Facebook's: 3-s segments and about 1.8 % past the edge before coalescing; the result, rounded,
    is :data:`~chatdesign.live.arrivals.HERD_SPREAD`. Raises ``ValueError`` when the target is
    not reachable with a spread between 1 % and the largest the segment allows.
    """
    def leak(spread: float) -> float:
        return simulate_live(viewers, duration_s, segment_s=segment_s, coalescing=False,
                             pop_capacity_rps=None, herd_spread=spread,
                             seed=seed).requests_past_edge_ratio

    check_number(target_leak, "target_leak", positive=True, maximum=1)
    check_number(tolerance, "tolerance", positive=True)
    low = 0.01
    high = (segment_s - LiveScenario(viewers, duration_s, segment_s).jitter_s) / segment_s * 0.999
    if not leak(high) <= target_leak <= leak(low):
        raise ValueError(f"a leak of {target_leak:.2%} is out of reach for herd_spread in "
                         f"{low:g}..{high:.3f}")
    while high - low > tolerance:
        middle = (low + high) / 2
        if leak(middle) > target_leak:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def check_origin_cache_requests_per_segment(answer: float | None, viewers: int, pops: int = 20,
                                            seed: int = 0) -> CheckResult:
    """Self-check for notebook 08: with coalescing, how many requests per segment reach the
    origin cache when ``viewers`` watch one stream through ``pops`` PoPs?

    The expected value comes from one segment of :func:`simulate_live` (the PoPs that have
    viewers). Passes within 5 %; never shows the expected value. An answer near
    ``viewers x 1.8 %`` is told that 1.8 % is Facebook's leak *before* coalescing.
    """
    result = simulate_live(viewers, 1.0, pops=pops, seed=seed)
    expected = result.origin_cache_requests / result.segments
    return diagnose(
        "origin-cache requests per segment", answer, expected, rel_tol=0.05,
        hint="with coalescing, how many requests does one edge cache send upstream for one "
             "segment, whatever its audience? And how many edge caches have viewers?",
        slips={"Facebook's 1.8 % was applied, but that is the leak they measured before "
               "coalescing, not a law of coalesced caches": viewers * 0.018,
               "every viewer was counted; the edge cache answers all but its first request":
               float(viewers)},
    )
