"""A slowed link: the delays it scales, the latencies it moves (by hand), the oracle, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chatdesign.live import simulate_live
from chatdesign.live.arrivals import LiveScenario, segment_arrivals
from chatdesign.live.faults import SlowLink
from chatdesign.live.oracle import run_simpy
from chatdesign.live.result import LAYERS, latency_bins
from chatdesign.live.simulate import run_vectorised, scenario_paths

# one PoP, one origin cache: each segment's earliest request is the one miss and goes to the
# origin server; requests spread over 0.6 s after publication, so later ones are plain hits
ONE_POP: dict[str, Any] = {"viewers": 400, "duration_s": 6.0, "pops": 1, "origin_caches": 1, "seed": 2,
                           "herd_window_s": 0.0, "clock_offset_s": 0.6, "jitter_s": 0.0}
FACTOR = 3.0


def plain_hits_by_hand(scenario: LiveScenario, edge_origin_s: float) -> int:
    """Requests that reach the edge after the segment's one miss is back: ``a >= F`` with
    ``F = first arrival + 2 x edge->origin + 2 x origin->server`` (PathDelays, unslowed, plus
    the slowed edge->origin delay given)."""
    delays, _ = scenario_paths(LiveScenario(**ONE_POP))
    hits = 0
    for arrivals in segment_arrivals(scenario, delays):
        arrive = arrivals.send_s + delays.player_edge_s[0]
        landed = arrive.min() + 2 * edge_origin_s + 2 * delays.origin_server_s[0]
        hits += int((arrive >= landed).sum())
    return hits


def test_a_slowed_edge_origin_link_raises_miss_latency_by_hand_and_leaves_hits_alone() -> None:
    delays, _ = scenario_paths(LiveScenario(**ONE_POP))
    pe, eo = float(delays.player_edge_s[0]), float(delays.edge_origin_s[0])
    before = simulate_live(**ONE_POP)
    after = simulate_live(**ONE_POP, slow_link=SlowLink("edge_origin", delay_factor=FACTOR))
    # every first request is the miss: 2 x player->edge + 2 x edge->origin + 2 x origin->server
    miss_ms = 1000 * (2 * pe + 2 * eo + 2 * float(delays.origin_server_s[0]))
    assert before.first_request_latency_ms == pytest.approx(miss_ms, abs=1e-9)
    assert after.first_request_latency_ms - before.first_request_latency_ms == pytest.approx(
        1000 * 2 * (FACTOR - 1) * eo, abs=1e-9)
    assert after.origin_server_requests == before.origin_server_requests == before.segments
    # hits still take one player<->edge round trip; fewer requests are hits (more wait longer)
    hit_bin = int(latency_bins(np.array([2 * pe]))[0])
    edge = LAYERS.index("edge")
    for result, link_s in ((before, eo), (after, FACTOR * eo)):
        plain = result.edge_hits - result.edge_coalesced
        assert plain == plain_hits_by_hand(result.scenario, link_s)
        assert plain > 0
        assert int(np.flatnonzero(result.latency_histogram[edge])[0]) == hit_bin
        assert result.latency_histogram[edge, hit_bin] >= plain
    assert after.edge_hits - after.edge_coalesced < before.edge_hits - before.edge_coalesced
    assert after.latency.loc["all", "p99_ms"] > before.latency.loc["all", "p99_ms"]


def test_a_slowed_origin_server_link_and_a_slowed_last_mile() -> None:
    delays, _ = scenario_paths(LiveScenario(**ONE_POP))
    before = simulate_live(**ONE_POP)
    upstream = simulate_live(**ONE_POP, slow_link=SlowLink("origin_server", pops=(0,), delay_factor=2.0))
    assert upstream.first_request_latency_ms - before.first_request_latency_ms == pytest.approx(
        1000 * 2 * float(delays.origin_server_s[0]), abs=1e-9)
    last_mile = simulate_live(**ONE_POP, slow_link=SlowLink("player_edge", delay_factor=2.0))
    # everything, hits included, takes one more player<->edge round trip; arrivals shift alike
    assert last_mile.first_request_latency_ms - before.first_request_latency_ms == pytest.approx(
        1000 * 2 * float(delays.player_edge_s[0]), abs=1e-9)
    assert last_mile.edge_hits == before.edge_hits


def test_only_the_named_pops_are_slowed_and_bandwidth_moves_derived_capacity() -> None:
    base = LiveScenario(1_000, 4.0, pops=4, origin_caches=2, seed=5)
    delays, _ = scenario_paths(base)
    slowed = SlowLink("player_edge", pops=(1, 3), delay_factor=1.5, bandwidth_factor=0.25).apply(delays)
    chosen = np.array([False, True, False, True])
    np.testing.assert_array_equal(slowed.player_edge_s, np.where(chosen, delays.player_edge_s * 1.5,
                                                                 delays.player_edge_s))
    np.testing.assert_array_equal(slowed.link_gbps, np.where(chosen, delays.link_gbps * 0.25, delays.link_gbps))
    np.testing.assert_array_equal(slowed.edge_origin_s, delays.edge_origin_s)
    bits = 8 * base.segment_bytes
    expected = np.minimum(delays.servers * delays.server_gbps, np.where(chosen, delays.link_gbps * 0.25,
                                                                         delays.link_gbps)) * 1e9 / bits
    np.testing.assert_allclose(slowed.capacity_rps(base.segment_bytes), expected, rtol=1e-12)
    upstream = SlowLink("origin_server", pops=(1,), delay_factor=3.0).apply(delays)
    assert list(upstream.origin_server_s) == [delays.origin_server_s[0], 3.0 * delays.origin_server_s[1]]
    assert "edge_origin at PoPs all: delay x4" in repr(SlowLink("edge_origin", delay_factor=4.0))


SLOWED: list[dict[str, Any]] = [
    {"slow_link": SlowLink("edge_origin", pops=(0, 2), delay_factor=5.0)},
    {"slow_link": SlowLink("origin_server", pops=(1,), delay_factor=3.0), "coalescing": False},
    {"slow_link": SlowLink("player_edge", delay_factor=2.0), "push": True, "pop_capacity_rps": 100.0},
    {"slow_link": SlowLink("player_edge", pops=(0,), bandwidth_factor=0.1), "pop_capacity_rps": "derived",
     "bitrate_kbps": 8_000.0},
]


@pytest.mark.parametrize("kwargs", SLOWED, ids=lambda kw: repr(kw["slow_link"]))
def test_the_simpy_oracle_sees_the_same_slowed_link(kwargs: dict[str, Any]) -> None:
    scenario = LiveScenario(**{"viewers": 1_000, "duration_s": 5.0, "pops": 6, "origin_caches": 2, "seed": 3,
                               **kwargs})
    fast, oracle = run_vectorised(scenario), run_simpy(scenario)
    assert fast.counters() == oracle.counters()
    np.testing.assert_array_equal(fast.latency_histogram, oracle.latency_histogram)
    assert fast.pop_load.equals(oracle.pop_load)
    unslowed = run_vectorised(LiveScenario(**{**scenario.__dict__, "slow_link": None}))
    assert not np.array_equal(fast.latency_histogram, unslowed.latency_histogram)  # it did something


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SlowLink("backbone"), "link must be one of 'player_edge', 'edge_origin', 'origin_server'"),  # type: ignore[arg-type]
        (lambda: SlowLink("edge_origin", delay_factor=0.5), "delay_factor must be at least 1"),
        (lambda: SlowLink("player_edge", bandwidth_factor=0.0), "bandwidth_factor must be positive"),
        (lambda: SlowLink("player_edge", bandwidth_factor=2.0), "bandwidth_factor must be at most 1"),
        (lambda: SlowLink("edge_origin", bandwidth_factor=0.5), "'player_edge' link only"),
        (lambda: SlowLink("edge_origin", pops=()), "at least one number"),
        (lambda: SlowLink("edge_origin", pops=(1, 1)), "repeats a number"),
        (lambda: SlowLink("edge_origin", pops=(-1,)), "pops must be at least 0"),
        (lambda: SlowLink("edge_origin", pops="0"), "tuple of PoP numbers"),  # type: ignore[arg-type]
        (lambda: LiveScenario(10, 2.0, pops=3, slow_link=SlowLink("edge_origin", pops=(3,))),
         "names PoP 3, but there are only 3"),
        (lambda: LiveScenario(10, 2.0, slow_link=SlowLink("origin_server", pops=(1,))),
         "names origin cache 1, but there are only 1"),
        (lambda: LiveScenario(10, 2.0, slow_link="edge_origin"), "must be a SlowLink or None"),  # type: ignore[arg-type]
        (lambda: simulate_live(10, 2.0, pops=2, slow_link=SlowLink("player_edge", pops=(5,))), "names PoP 5"),
    ],
)
def test_bad_slow_links_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
