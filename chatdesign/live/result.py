"""What a live-delivery simulation returns, and the tally both simulations fill in.

:class:`LiveResult` is a frozen, validated value: counters, ratios, per-layer latency
percentiles (from histograms with 0.1 ms bins), per-PoP load and per-second time series. The
per-second frames are what a load forecaster or a load test consumes: ``per_second`` has the
whole stream's requests and origin load per second, ``pop_demand`` the requests each PoP's
viewers sent per second.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from chatdesign.live.arrivals import LiveScenario
from chatdesign.live.topology import PathDelays
from chatdesign.units import format_bytes, format_count

LAYERS: Final = ("edge", "origin_cache", "origin_server")
"""Where a request was answered: the edge cache (hit or coalesced wait), the origin cache, or
the origin server (the request whose fetch went all the way up)."""

BINS_PER_S: Final = 10_000
"""Latency histogram resolution: 0.1 ms bins."""
MAX_LATENCY_BINS: Final = 10 * BINS_PER_S
PEAK_BINS_PER_S: Final = 100
"""Peak load is also counted in 10 ms bins, beside per-segment and per-second rates."""
"""Latencies of 10 s or more fall into the last bin."""

PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)

SERIES_COLUMNS: Final = ("requests", "origin_cache_requests", "origin_server_requests",
                         "spilled", "refused")


def latency_bins(latency_s: np.ndarray) -> np.ndarray:
    """Histogram bin of each latency (seconds → 0.1 ms bins, truncated; capped at 10 s)."""
    scaled = latency_s * float(BINS_PER_S)
    np.minimum(scaled, MAX_LATENCY_BINS - 1, out=scaled)  # then truncate: the same bins
    bins: np.ndarray = scaled.astype(np.int32)  # a narrower cast is cheaper; bins < 100,000
    return bins


def percentile_ms(histogram: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of a 0.1 ms latency histogram, as the upper edge of its bin (ms).

    NaN for an empty histogram.
    """
    total = int(histogram.sum())
    if total == 0:
        return float("nan")
    rank = np.ceil(total * percentile / 100.0)
    index = int(np.searchsorted(np.cumsum(histogram), max(rank, 1)))
    return (index + 1) * 1000.0 / BINS_PER_S


class Tally:
    """Running totals of one simulation (mutable; both simulations fill one in)."""

    def __init__(self, scenario: LiveScenario, delays: PathDelays) -> None:
        self.scenario = scenario
        self.capacity_rps = delays.capacity_rps(scenario.segment_bytes)
        self.capacity_per_segment = scenario.pop_capacity_per_segment(delays)
        pops, seconds = scenario.pops, scenario.seconds
        self.queue_wait_sum_s = np.zeros(pops)
        self.queue_wait_max_s = np.zeros(pops)
        self._since, self._bins = np.empty(0), np.empty(0, dtype=np.intp)
        self.coalesced = 0
        self.pushes = 0
        self.unwatched_pushes = 0
        self.first_latency_sum_s = 0.0
        self.first_requests = 0
        self.histogram = np.zeros((len(LAYERS), MAX_LATENCY_BINS), dtype=np.int64)
        self.series = {name: np.zeros(seconds, dtype=np.int64) for name in SERIES_COLUMNS}
        self.pop_demand = np.zeros((seconds, pops), dtype=np.int64)
        self.pop = {name: np.zeros(pops, dtype=np.int64) for name in
                    ("viewers_peak", "requests", "served", "spilled_out", "spilled_in",
                     "refused", "origin_cache_requests", "peak_served_per_segment",
                     "peak_served_per_10ms")}

    def add_seconds(self, column: str, times_s: np.ndarray, shift_s: float = 0.0,
                    bounds: tuple[float, float] | None = None) -> None:
        """Count events at ``times_s + shift_s`` into the per-second ``column``.

        Events of one segment fall within a few seconds, so they are counted below each whole
        second in the span (``t < s + 1`` is exactly ``floor(t) <= s``), cheaper than a bincount.
        Adding ``shift_s`` keeps order (rounding is monotone), so when the earliest and latest
        shifted times fall in one second, so do all, and none is shifted one by one. ``bounds``:
        the earliest and latest of ``times_s`` when the caller knows them."""
        if not len(times_s):
            return
        earliest, latest = (float(times_s.min()), float(times_s.max())) if bounds is None else bounds
        first = int(np.floor(earliest + shift_s))
        last = int(np.floor(latest + shift_s))
        series = self.series[column]
        if first == last:
            series[first] += len(times_s)
            return
        if shift_s:
            times_s = times_s + shift_s
        if last - first > 8:
            series += np.bincount(np.floor(times_s).astype(np.int64), minlength=len(series))
            return
        below_before = 0
        for second in range(first, last):
            below = int(np.count_nonzero(times_s < second + 1))
            series[second] += below - below_before
            below_before = below
        series[last] += len(times_s) - below_before

    def add_latencies(self, layer: int, latency_s: np.ndarray) -> None:
        """Add latencies (seconds) to the histogram of ``LAYERS[layer]``."""
        if len(latency_s):
            counts = np.bincount(latency_bins(latency_s))
            self.histogram[layer, : len(counts)] += counts

    def add_segment_load(self, own_counts: np.ndarray, served_counts: np.ndarray) -> None:
        """Per-PoP requests for one segment: from its own viewers, and served there."""
        self.pop["requests"] += own_counts
        self.pop["served"] += served_counts
        np.maximum(self.pop["viewers_peak"], own_counts, out=self.pop["viewers_peak"])
        np.maximum(self.pop["peak_served_per_segment"], served_counts,
                   out=self.pop["peak_served_per_segment"])

    def add_peak_10ms(self, arrive_s: np.ndarray, pop: np.ndarray | None, publish_s: float,
                      counts: np.ndarray | None = None) -> None:
        """Track each PoP's busiest 10 ms (requests arriving at the PoP serving them), counted
        in 10 ms bins from the segment's publication. ``counts``, when given, says the requests
        are grouped by PoP (``counts[p]`` of PoP ``p`` in order), which saves a pass."""
        n = len(arrive_s)
        if n == 0:
            return
        if len(self._since) < n:  # reused buffers: no fresh pages per segment
            self._since, self._bins = np.empty(n), np.empty(n, dtype=np.intp)
        since, bins = self._since[:n], self._bins[:n]
        np.subtract(arrive_s, publish_s, out=since)
        since *= PEAK_BINS_PER_S
        np.copyto(bins, since, casting="unsafe")  # truncates, as astype does
        peak = self.pop["peak_served_per_10ms"]
        if counts is None:
            if pop is None:
                raise ValueError("add_peak_10ms needs the PoP of each request or the counts")
            width = int(bins.max()) + 1
            per_pop = np.bincount(pop * width + bins, minlength=self.scenario.pops * width)
            np.maximum(peak, per_pop.reshape(-1, width).max(axis=1), out=peak)
            return
        begin = 0
        for p, count in enumerate(counts.tolist()):
            if count:
                peak[p] = max(int(peak[p]), int(np.bincount(bins[begin:begin + count]).max()))
                begin += count

    def add_peak_sorted(self, pop: int, arrive_s: np.ndarray, publish_s: float) -> None:
        """:meth:`add_peak_10ms` for one PoP whose arrival times are sorted: the same bins
        (``(t - publish_s) x 100``, truncated), counted by binary search (``t`` is in bin ``b``
        or below iff its scaled time is below ``b + 1``)."""
        if not len(arrive_s):
            return
        scaled = (arrive_s - publish_s) * PEAK_BINS_PER_S
        below = np.searchsorted(scaled, np.arange(1, int(scaled[-1]) + 2))
        busiest = int(np.diff(below, prepend=0).max())
        peak = self.pop["peak_served_per_10ms"]
        peak[pop] = max(int(peak[pop]), busiest)

    def result(self) -> LiveResult:
        """Freeze the totals into a :class:`LiveResult`."""
        scenario = self.scenario
        layers_frame = pd.DataFrame(
            [
                {"requests": int(h.sum()), **{f"p{q:g}_ms": percentile_ms(h, q) for q in PERCENTILES}}
                for h in (*self.histogram, self.histogram.sum(axis=0))
            ],
            index=pd.Index([*LAYERS, "all"], name="layer"),
        )
        index = pd.RangeIndex(scenario.seconds, name="second")
        per_second = pd.DataFrame(self.series, index=index)
        pop_demand = pd.DataFrame(self.pop_demand, index=index,
                                  columns=pd.RangeIndex(scenario.pops, name="pop"))
        pop_load = pd.DataFrame(self.pop, index=pd.RangeIndex(scenario.pops, name="pop"))
        capacity = self.capacity_per_segment
        pop_load["capacity_per_segment"] = -1 if capacity is None else capacity
        pop_load["capacity_rps"] = self.capacity_rps
        pop_load["peak_rps"] = pop_load["peak_served_per_segment"] / scenario.segment_s
        pop_load["peak_rps_10ms"] = pop_load["peak_served_per_10ms"] * PEAK_BINS_PER_S
        pop_load["overloaded"] = (
            False if capacity is None else pop_load["peak_served_per_segment"] > capacity
        )
        # admitted within a segment's capacity, but arriving faster than the servers send:
        # these requests queue (with queueing=True, the waits below say for how long)
        override = scenario.pop_capacity_rps
        serving_rps = (pop_load["capacity_rps"] if override is None or override == "derived"
                       else float(override))
        pop_load["burst_over_capacity"] = pop_load["peak_rps_10ms"] > serving_rps
        served = np.maximum(pop_load["served"].to_numpy(), 1)
        pop_load["mean_queue_wait_ms"] = 1000 * self.queue_wait_sum_s / served
        pop_load["max_queue_wait_ms"] = 1000 * self.queue_wait_max_s
        used = np.flatnonzero(self.histogram.any(axis=0))
        width = int(used[-1]) + 1 if len(used) else 0
        requests = int(self.series["requests"].sum())
        return LiveResult(
            scenario=scenario,
            requests=requests,
            edge_hits=requests - int(self.series["refused"].sum())
            - int(self.series["origin_cache_requests"].sum()),
            edge_coalesced=self.coalesced,
            origin_cache_requests=int(self.series["origin_cache_requests"].sum()),
            origin_server_requests=int(self.series["origin_server_requests"].sum()),
            spilled=int(self.series["spilled"].sum()),
            refused=int(self.series["refused"].sum()),
            pushes=self.pushes,
            unwatched_pushes=self.unwatched_pushes,
            first_request_latency_ms=(
                1000 * self.first_latency_sum_s / self.first_requests
                if self.first_requests else float("nan")
            ),
            latency=layers_frame,
            pop_load=pop_load,
            per_second=per_second,
            pop_demand=pop_demand,
            latency_histogram=self.histogram[:, :width].copy(),
        )


@dataclass(frozen=True, eq=False)
class LiveResult:
    """The outcome of one live-delivery simulation.

    Counters are over the whole stream. ``edge_hits`` counts requests answered by the edge
    cache without a fetch of their own (plain hits plus ``edge_coalesced``, the ones that waited
    for a fetch or push already in flight); ``origin_cache_requests`` are the edge misses, each
    one request past the edge; ``origin_server_requests`` are origin-cache misses. ``spilled``
    requests were served by the next-nearest PoP, ``refused`` ones not at all. ``pushes`` counts
    segments pushed to PoPs, ``unwatched_pushes`` those no request then asked for.
    ``first_request_latency_ms`` is the mean latency of the first request for each segment at
    each PoP. ``latency`` has per-layer percentiles (ms, 0.1 ms bins), ``pop_load`` one row per
    PoP, ``per_second`` the stream's per-second counts, ``pop_demand`` each PoP's requests per
    second, ``latency_histogram`` the raw 0.1 ms histograms (one row per layer).

    In ``pop_load``, ``overloaded`` says a PoP's busiest segment brought more requests than its
    capacity per segment (with a limit, the excess spilled or was refused);
    ``burst_over_capacity`` says requests arrived, in its busiest 10 ms (``peak_rps_10ms``),
    faster than it serves (the ``pop_capacity_rps`` override, else ``capacity_rps``, what its
    servers and links send): admitted, they queue, which only ``queueing=True`` turns into
    waiting time (``mean_queue_wait_ms``, ``max_queue_wait_ms``).
    """

    scenario: LiveScenario
    requests: int
    edge_hits: int
    edge_coalesced: int
    origin_cache_requests: int
    origin_server_requests: int
    spilled: int
    refused: int
    pushes: int
    unwatched_pushes: int
    first_request_latency_ms: float
    latency: pd.DataFrame
    pop_load: pd.DataFrame
    per_second: pd.DataFrame
    pop_demand: pd.DataFrame
    latency_histogram: np.ndarray

    def __post_init__(self) -> None:
        for name in ("requests", "edge_hits", "edge_coalesced", "origin_cache_requests",
                     "origin_server_requests", "spilled", "refused", "pushes",
                     "unwatched_pushes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.edge_hits + self.origin_cache_requests + self.refused != self.requests:
            raise ValueError("edge hits + requests past the edge + refused must equal requests")
        if self.edge_coalesced > self.edge_hits:
            raise ValueError("coalesced requests are a subset of edge hits")
        if self.origin_server_requests > self.origin_cache_requests:
            raise ValueError("every origin-server request is an origin-cache miss")
        self.latency_histogram.setflags(write=False)

    @property
    def segments(self) -> int:
        """Segments in the stream."""
        return self.scenario.segments

    @property
    def edge_hit_ratio(self) -> float:
        """Share of requests the edge cache answered (hits and coalesced waits); 0 without
        requests (a flash crowd that had not arrived yet)."""
        return self.edge_hits / self.requests if self.requests else 0.0

    @property
    def requests_past_edge_ratio(self) -> float:
        """Share of requests that went on to the origin cache (Facebook reported ~1.8 %); 0
        without requests."""
        return self.origin_cache_requests / self.requests if self.requests else 0.0

    @property
    def origin_server_requests_per_segment(self) -> float:
        """Origin-server requests per segment (1 per origin cache with coalescing and pull)."""
        return self.origin_server_requests / self.segments

    @property
    def playlist_requests(self) -> float:
        """Playlist reloads over the run, counted beside the segment requests the model
        simulates: each segment request comes with ``segment_s / refresh_s`` reloads (one per
        segment by default, as :func:`~chatdesign.live.segments.requests_per_viewer_s` counts).
        The edge answers them (a playlist is tiny and cached for under a segment)."""
        return self.requests * self.scenario.segment_s / self.scenario.refresh_s

    @property
    def pushed_bytes(self) -> float:
        """Bytes pushed to PoPs."""
        return self.pushes * self.scenario.segment_bytes

    @property
    def unwatched_push_bytes(self) -> float:
        """Bytes pushed to PoPs where nobody then asked for the segment."""
        return self.unwatched_pushes * self.scenario.segment_bytes

    def counters(self) -> dict[str, float]:
        """The counters and ratios as a plain dict (what the oracle tests compare)."""
        return {
            "requests": self.requests,
            "edge_hits": self.edge_hits,
            "edge_coalesced": self.edge_coalesced,
            "origin_cache_requests": self.origin_cache_requests,
            "origin_server_requests": self.origin_server_requests,
            "spilled": self.spilled,
            "refused": self.refused,
            "pushes": self.pushes,
            "unwatched_pushes": self.unwatched_pushes,
            "edge_hit_ratio": self.edge_hit_ratio,
            "requests_past_edge_ratio": self.requests_past_edge_ratio,
        }

    def __repr__(self) -> str:
        return (
            f"LiveResult(viewers={format_count(self.scenario.viewers)}, segments={self.segments}, "
            f"requests={format_count(self.requests)}, edge_hit_ratio={self.edge_hit_ratio:.3%}, "
            f"past_edge={self.requests_past_edge_ratio:.3%}, "
            f"origin_server_requests={self.origin_server_requests})"
        )

    def to_frame(self) -> pd.DataFrame:
        """The headline numbers: one row per metric, with a ``value`` and a readable ``text``."""
        overall = self.latency_histogram.sum(axis=0)
        p50_ms, p99_ms = percentile_ms(overall, 50.0), percentile_ms(overall, 99.0)
        rows: list[tuple[str, float, str]] = [
            ("viewers", self.scenario.viewers, format_count(self.scenario.viewers)),
            ("segments", self.segments, f"{self.segments} x {self.scenario.segment_s:g} s"),
            ("requests", self.requests, format_count(self.requests)),
            ("playlist_requests", self.playlist_requests, format_count(self.playlist_requests)),
            ("edge_hit_ratio", self.edge_hit_ratio, f"{self.edge_hit_ratio:.3%}"),
            ("edge_coalesced", self.edge_coalesced, format_count(self.edge_coalesced)),
            ("requests_past_edge_ratio", self.requests_past_edge_ratio,
             f"{self.requests_past_edge_ratio:.3%}"),
            ("origin_cache_requests", self.origin_cache_requests,
             format_count(self.origin_cache_requests)),
            ("origin_server_requests", self.origin_server_requests,
             format_count(self.origin_server_requests)),
            ("origin_server_requests_per_segment", self.origin_server_requests_per_segment,
             f"{self.origin_server_requests_per_segment:.3g}"),
            ("spilled", self.spilled, format_count(self.spilled)),
            ("refused", self.refused, format_count(self.refused)),
            ("pushed_bytes", self.pushed_bytes, format_bytes(self.pushed_bytes)),
            ("unwatched_push_bytes", self.unwatched_push_bytes,
             format_bytes(self.unwatched_push_bytes)),
            ("first_request_latency_ms", self.first_request_latency_ms,
             f"{self.first_request_latency_ms:.1f} ms"),
            ("p50_latency_ms", p50_ms, f"{p50_ms:.1f} ms"),
            ("p99_latency_ms", p99_ms, f"{p99_ms:.1f} ms"),
            ("peak_requests_per_s", float(self.per_second["requests"].max()),
             format_count(float(self.per_second["requests"].max()))),
        ]
        return pd.DataFrame(
            [(value, text) for _, value, text in rows],
            columns=["value", "text"],
            index=pd.Index([name for name, _, _ in rows], name="metric"),
        )
