"""The SimPy oracle: the same live-delivery model, one discrete event per request.

Nothing here is clever on purpose. Each request is a SimPy process that travels
player → edge cache → (origin cache → (origin server)) and back, and each cache is a
:class:`~chatdesign.live.cache.CoalescingCache` whose waiters are SimPy events. With
``queueing=True`` each PoP's servers are a ``simpy.Resource`` with one slot per server, held for
the time one server takes to send the segment; with a capacity, requests are admitted, spilled
into a neighbour's spare room or refused one by one as they arrive. Pushes are
processes that fill the caches when the segment arrives. It reads the same seeded arrivals as
:func:`~chatdesign.live.simulate.simulate_live`, so the tests can demand identical counters and
latency histograms; it is slow (``benchmarks/live_sim.py`` measures how much, on the same
scenarios), so use it on
small scenarios.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from typing import Any, Literal

import numpy as np
import simpy

from chatdesign.live.arrivals import HERD_SPREAD, LiveScenario, segment_arrivals
from chatdesign.live.cache import CacheOutcome, CoalescingCache
from chatdesign.live.result import LAYERS, PEAK_BINS_PER_S, LiveResult, Tally
from chatdesign.live.simulate import PathTimes, push_targets, scenario_paths
from chatdesign.live.topology import PathDelays

CACHE_SEGMENTS = 8
"""Segments each cache holds; far more than are ever requested at once."""

Process = Generator[simpy.Event, Any, None]


class _Request:
    """One request's bookkeeping: where it was answered and how long it took."""

    __slots__ = ("first", "latency_s", "layer")

    def __init__(self, first: bool) -> None:
        self.first = first
        self.layer = "edge"
        self.latency_s = 0.0


class _Model:
    """The SimPy model of one scenario: caches, processes and event logs."""

    def __init__(self, scenario: LiveScenario, delays: PathDelays, paths: PathTimes) -> None:
        self.scenario = scenario
        self.paths = paths
        self.env = simpy.Environment()
        self.capacity = scenario.pop_capacity_per_segment(delays)
        self.service_s = delays.service_s(scenario.segment_bytes)
        self.servers = [simpy.Resource(self.env, capacity=int(c)) for c in delays.servers]
        self.own_counts: dict[int, np.ndarray] = {}
        self.spilled_in: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.wait_s: list[tuple[int, float]] = []
        self.served_at: list[tuple[float, int, int]] = []
        coalescing = scenario.coalescing
        self.edge: list[CoalescingCache[int, simpy.Event]] = [
            CoalescingCache(CACHE_SEGMENTS, coalescing) for _ in range(scenario.pops)]
        self.origin: list[CoalescingCache[int, simpy.Event]] = [
            CoalescingCache(CACHE_SEGMENTS, coalescing) for _ in range(scenario.origin_caches)]
        self.admitted: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.served: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.requests: list[_Request] = []
        self.log: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)

    def wake(self, waiters: tuple[simpy.Event, ...]) -> None:
        for event in waiters:
            event.succeed()

    def request(self, send_s: float, pop: int, segment: int) -> Process:
        env, paths = self.env, self.paths
        yield env.timeout(send_s)
        self.log["requests"].append((send_s, pop))
        yield env.timeout(paths.player_edge_s[pop])
        served, base = pop, paths.player_edge_rtt_s[pop]
        capacity = self.capacity
        if capacity is not None:
            if self.admitted[pop, segment] >= capacity[pop]:
                if self.scenario.overflow == "refuse" or self.scenario.pops < 2:
                    self.log["refused"].append((env.now, pop))
                    return
                self.log["spilled"].append((env.now, pop))
                yield env.timeout(paths.neighbour_s[pop])
                neighbour = int(paths.neighbour_pop[pop])
                room = capacity[neighbour] - min(int(self.own_counts[segment][neighbour]),
                                                 int(capacity[neighbour]))
                if self.spilled_in[neighbour, segment] >= room:
                    self.log["refused"].append((env.now, pop))
                    return
                self.spilled_in[neighbour, segment] += 1
                self.log["spilled_in"].append((env.now, neighbour))
                served, base = neighbour, paths.spill_rtt_s[pop]
            else:
                self.admitted[pop, segment] += 1
        arrived = env.now
        self.served_at.append((env.now - self.scenario.publish_s(segment), served, segment))
        record = _Request(first=self.served[served, segment] == 0)
        self.served[served, segment] += 1
        self.requests.append(record)
        waiter = env.event()
        outcome = self.edge[served].request(segment, waiter)
        if outcome is CacheOutcome.HIT:
            if not self.scenario.queueing:
                record.latency_s = base
                return
        elif outcome is CacheOutcome.COALESCED:
            self.log["coalesced"].append((env.now, served))
            yield waiter
        elif self.scenario.coalescing:
            env.process(self.fetch(served, segment, record))
            yield waiter
        else:
            yield from self.fetch(served, segment, record)
        if self.scenario.queueing:  # one of the PoP's servers sends the segment
            ready = env.now
            with self.servers[served].request() as slot:
                yield slot
                self.wait_s.append((served, env.now - ready))
                yield env.timeout(self.service_s[served])
        record.latency_s = base + (env.now - arrived)

    def fetch(self, pop: int, segment: int, record: _Request) -> Process:
        env, paths = self.env, self.paths
        yield env.timeout(paths.edge_origin_s[pop])
        self.log["origin_cache_requests"].append((env.now, pop))
        record.layer = "origin_cache"
        origin = int(paths.origin_of_pop[pop])
        waiter = env.event()
        outcome = self.origin[origin].request(segment, waiter)
        if outcome is CacheOutcome.MISS:
            record.layer = "origin_server"
            self.log["origin_server_requests"].append((env.now, origin))
            if self.scenario.coalescing:
                env.process(self.origin_fetch(origin, segment))
                yield waiter
            else:
                yield env.timeout(paths.origin_server_rtt_s[origin])
                self.wake(self.origin[origin].fill(segment))
        elif outcome is CacheOutcome.COALESCED:
            yield waiter
        yield env.timeout(paths.edge_origin_s[pop])
        self.wake(self.edge[pop].fill(segment))

    def origin_fetch(self, origin: int, segment: int) -> Process:
        yield self.env.timeout(self.paths.origin_server_rtt_s[origin])
        self.wake(self.origin[origin].fill(segment))

    def push(self, publish_s: float, segment: int, targets: np.ndarray) -> Process:
        yield self.env.timeout(publish_s)
        for origin in range(self.scenario.origin_caches):
            self.env.process(self.push_origin(origin, segment, targets))

    def push_origin(self, origin: int, segment: int, targets: np.ndarray) -> Process:
        yield self.env.timeout(self.paths.origin_server_s[origin])
        self.wake(self.origin[origin].fill(segment))
        for pop in np.flatnonzero(targets & (self.paths.origin_of_pop == origin)):
            self.env.process(self.push_edge(int(pop), segment))

    def push_edge(self, pop: int, segment: int) -> Process:
        yield self.env.timeout(self.paths.edge_origin_s[pop])
        self.wake(self.edge[pop].fill(segment))


def simulate_live_simpy(
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
    queue_bin_s: float = 0.0,
) -> LiveResult:
    """The same model as :func:`~chatdesign.live.simulate.simulate_live`, one SimPy event per
    request; same arguments (bar ``progress``) and result fields. Use it on small scenarios.
    Its queue is exact: ``queue_bin_s`` must stay 0 with queueing and coalescing (compare it
    with ``simulate_live(..., queue_bin_s=0.0)``)."""
    scenario = LiveScenario(
        viewers=viewers, duration_s=duration_s, segment_s=segment_s, pops=pops,
        origin_caches=origin_caches, coalescing=coalescing, push=push,
        pop_capacity_rps=pop_capacity_rps, seed=seed, push_to=push_to, overflow=overflow,
        herd_window_s=herd_window_s, jitter_s=jitter_s, ramp_s=ramp_s,
        bitrate_kbps=bitrate_kbps, zipf_exponent=zipf_exponent, herd_spread=herd_spread,
        playlist_refresh_s=playlist_refresh_s, clock_offset_s=clock_offset_s,
        traffic_seed=traffic_seed, queueing=queueing, queue_bin_s=queue_bin_s,
    )
    if scenario.queueing and scenario.coalescing and scenario.queue_bin_s:
        raise ValueError("the SimPy oracle queues every request exactly: pass queue_bin_s=0.0 "
                         f"(got {queue_bin_s!r})")
    return run_simpy(scenario)


def run_simpy(scenario: LiveScenario) -> LiveResult:
    """Run :func:`simulate_live_simpy` for a validated :class:`LiveScenario`."""
    delays, paths = scenario_paths(scenario)
    model = _Model(scenario, delays, paths)
    previous_counts: np.ndarray | None = None
    own_counts, targets_by_segment = [], []
    for arrivals in segment_arrivals(scenario, delays):
        for send_s, pop in zip(arrivals.send_s.tolist(), arrivals.pop.tolist(), strict=True):
            model.env.process(model.request(send_s, pop, arrivals.segment))
        targets = push_targets(scenario, previous_counts)
        if scenario.push:  # the origin caches get every segment, the PoPs only if targeted
            model.env.process(model.push(arrivals.publish_s, arrivals.segment, targets))
        own_counts.append(arrivals.pop_counts)
        model.own_counts[arrivals.segment] = arrivals.pop_counts
        targets_by_segment.append(targets)
        previous_counts = arrivals.pop_counts
    model.env.run()
    return _tally(model, delays, own_counts, targets_by_segment).result()


def _tally(model: _Model, delays: PathDelays, own_counts: list[np.ndarray],
           targets_by_segment: list[np.ndarray]) -> Tally:
    """Turn the model's event logs into the same :class:`Tally` the vectorised model fills."""
    scenario, pops = model.scenario, model.scenario.pops
    tally = Tally(scenario, delays)
    for column in ("requests", "origin_cache_requests", "origin_server_requests", "spilled",
                   "refused"):
        tally.add_seconds(column, np.array([time for time, _ in model.log[column]], dtype=float))
    requests = model.log["requests"]
    seconds = np.floor(np.array([t for t, _ in requests], dtype=float)).astype(np.int64)
    np.add.at(tally.pop_demand, (seconds, np.array([p for _, p in requests], dtype=np.int64)), 1)
    for column, key in (("refused", "refused"), ("spilled_out", "spilled"),
                        ("origin_cache_requests", "origin_cache_requests")):
        tally.pop[column] += np.bincount(
            np.array([p for _, p in model.log[key]], dtype=np.int64), minlength=pops)
    tally.pop["spilled_in"] += np.bincount(
        np.array([p for _, p in model.log["spilled_in"]], dtype=np.int64), minlength=pops)
    if model.served_at:
        since = np.array([t for t, _, _ in model.served_at], dtype=float)
        where = np.array([p for _, p, _ in model.served_at], dtype=np.int64)
        segment_of = np.array([s for _, _, s in model.served_at], dtype=np.int64)
        bins = (since * PEAK_BINS_PER_S).astype(np.int64)
        width = int(bins.max()) + 1
        counts = np.zeros(scenario.segments * pops * width, dtype=np.int64)
        np.add.at(counts, (segment_of * pops + where) * width + bins, 1)
        tally.pop["peak_served_per_10ms"] = counts.reshape(scenario.segments, pops, width).max(
            axis=(0, 2))
    for pop, wait in model.wait_s:
        tally.queue_wait_sum_s[pop] += max(wait, 0.0)
        tally.queue_wait_max_s[pop] = max(tally.queue_wait_max_s[pop], wait)
    for segment, (own, targets) in enumerate(zip(own_counts, targets_by_segment, strict=True)):
        served = np.array([model.served[pop, segment] for pop in range(pops)], dtype=np.int64)
        tally.add_segment_load(own, served)
        tally.pushes += int(targets.sum())
        tally.unwatched_pushes += int((targets & (served == 0)).sum())
    tally.coalesced = len(model.log["coalesced"])
    for record in model.requests:
        tally.add_latencies(LAYERS.index(record.layer), np.array([record.latency_s]))
        if record.first:
            tally.first_latency_sum_s += record.latency_s
            tally.first_requests += 1
    return tally
