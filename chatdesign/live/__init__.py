"""Live-video delivery: topology, segments, coalescing caches and the viewer simulation.

The chain from the seed notes, "Video player → Edge Proxy → Edge Cache → Origin Server Cache →
Origin Server", as Facebook Live built it in 2015. Taught in ``notebooks/07_live_pipeline.ipynb``
and ``notebooks/08_edge_cache.ipynb``.
"""

from chatdesign.live.abr import (
    BOLA,
    BufferBased,
    RateBased,
    RobustMPC,
    Video,
    offline_optimal,
    qoe_lin,
    simulate_session,
    simulate_sessions,
)
from chatdesign.live.arrivals import LiveScenario, SegmentArrivals, segment_arrivals
from chatdesign.live.cache import CacheOutcome, CacheStats, CoalescingCache
from chatdesign.live.forecast import evaluate_forecasts, fit_growth, push_cost, push_decision
from chatdesign.live.loadtest import Scenario, Slo, check_slos, replay_log, run_scenario
from chatdesign.live.oracle import simulate_live_simpy
from chatdesign.live.result import LAYERS, LiveResult
from chatdesign.live.segments import (
    LatencyBudget,
    RtmpChunking,
    check_glass_to_glass,
    latency_budget,
    requests_per_viewer_s,
    rtmp_chunking,
    segment_bytes,
    segment_length_table,
)
from chatdesign.live.simulate import (
    POPULAR_STREAM_VIEWERS,
    check_origin_cache_requests_per_segment,
    simulate_live,
)
from chatdesign.live.topology import (
    ROLES,
    PathDelays,
    build_topology,
    draw_topology,
    path_delays,
    pop_name,
)
from chatdesign.live.traces import Trace, load_sabre_json, load_tsv, synthetic_trace

__all__ = [  # noqa: RUF022 -- the ABR names are appended, not sorted in, to keep merges trivial
    "LAYERS",
    "POPULAR_STREAM_VIEWERS",
    "ROLES",
    "CacheOutcome",
    "CacheStats",
    "CoalescingCache",
    "LatencyBudget",
    "LiveResult",
    "LiveScenario",
    "PathDelays",
    "RtmpChunking",
    "SegmentArrivals",
    "build_topology",
    "check_glass_to_glass",
    "check_origin_cache_requests_per_segment",
    "draw_topology",
    "latency_budget",
    "path_delays",
    "pop_name",
    "requests_per_viewer_s",
    "rtmp_chunking",
    "segment_arrivals",
    "segment_bytes",
    "segment_length_table",
    "simulate_live",
    "simulate_live_simpy",
    "BOLA", "BufferBased", "RateBased", "RobustMPC", "Trace", "Video", "load_sabre_json", "load_tsv",
    "offline_optimal", "qoe_lin", "simulate_session", "simulate_sessions", "synthetic_trace",
    "evaluate_forecasts", "fit_growth", "push_cost", "push_decision",
    "Scenario", "Slo", "check_slos", "replay_log", "run_scenario",
]
