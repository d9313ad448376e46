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
from chatdesign.live.arrivals import (
    CALIBRATION_VIEWERS,
    HERD_SPREAD,
    LiveScenario,
    SegmentArrivals,
    exact_segments,
    segment_arrivals,
)
from chatdesign.live.cache import CacheOutcome, CacheStats, CoalescingCache, LruByteCache
from chatdesign.live.faults import SlowLink
from chatdesign.live.forecast import evaluate_forecasts, fit_growth, push_cost, push_decision
from chatdesign.live.loadtest import Scenario, Slo, check_slos, replay_log, run_scenario
from chatdesign.live.oracle import simulate_live_simpy
from chatdesign.live.queueing import fifo_finish_times, md1_mean_wait_s
from chatdesign.live.renditions import (
    PENSIEVE_LADDER_KBPS,
    USD_PER_GB,
    RenditionResult,
    egress_cost_per_month,
    simulate_renditions,
)
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
    calibrate_herd_spread,
    check_origin_cache_requests_per_segment,
    simulate_live,
    viewers_carried,
)
from chatdesign.live.streams import StreamRequests, hit_ratio_by_cache_size, stream_requests
from chatdesign.live.topology import (
    ROLES,
    PathDelays,
    build_topology,
    draw_topology,
    path_delays,
    pop_name,
)
from chatdesign.live.traces import Trace, load_sabre_json, load_tsv, synthetic_trace

__all__ = [
    "BOLA",
    "CALIBRATION_VIEWERS",
    "HERD_SPREAD",
    "LAYERS",
    "PENSIEVE_LADDER_KBPS",
    "ROLES",
    "USD_PER_GB",
    "BufferBased",
    "CacheOutcome",
    "CacheStats",
    "CoalescingCache",
    "LatencyBudget",
    "LiveResult",
    "LiveScenario",
    "LruByteCache",
    "PathDelays",
    "RateBased",
    "RenditionResult",
    "RobustMPC",
    "RtmpChunking",
    "Scenario",
    "SegmentArrivals",
    "Slo",
    "SlowLink",
    "StreamRequests",
    "Trace",
    "Video",
    "build_topology",
    "calibrate_herd_spread",
    "check_glass_to_glass",
    "check_origin_cache_requests_per_segment",
    "check_slos",
    "draw_topology",
    "egress_cost_per_month",
    "evaluate_forecasts",
    "exact_segments",
    "fifo_finish_times",
    "fit_growth",
    "hit_ratio_by_cache_size",
    "latency_budget",
    "load_sabre_json",
    "load_tsv",
    "md1_mean_wait_s",
    "offline_optimal",
    "path_delays",
    "pop_name",
    "push_cost",
    "push_decision",
    "qoe_lin",
    "replay_log",
    "requests_per_viewer_s",
    "rtmp_chunking",
    "run_scenario",
    "segment_arrivals",
    "segment_bytes",
    "segment_length_table",
    "simulate_live",
    "simulate_live_simpy",
    "simulate_renditions",
    "simulate_session",
    "simulate_sessions",
    "stream_requests",
    "synthetic_trace",
    "viewers_carried",
]
