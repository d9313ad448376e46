"""The SimPy oracle agrees with the vectorised model; coalescing bounds the origin's load."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatdesign.live import LiveResult, simulate_live, simulate_live_simpy

SCENARIOS: list[dict[str, Any]] = [
    {},
    {"coalescing": False},
    {"push": True},
    {"push": True, "coalescing": False},
    {"push": True, "push_to": "watched", "ramp_s": 5.0},
    {"pop_capacity_rps": 100.0},
    {"pop_capacity_rps": 100.0, "overflow": "refuse"},
    {"pop_capacity_rps": 100.0, "coalescing": False, "origin_caches": 3},
    {"segment_s": 2.0, "herd_window_s": 1.5, "origin_caches": 2},
]


def assert_same(fast: LiveResult, oracle: LiveResult) -> None:
    assert fast.counters() == oracle.counters()
    np.testing.assert_array_equal(fast.latency_histogram, oracle.latency_histogram)
    assert fast.latency.equals(oracle.latency)
    assert fast.per_second.equals(oracle.per_second)
    assert fast.pop_demand.equals(oracle.pop_demand)
    assert fast.pop_load.equals(oracle.pop_load)
    assert fast.first_request_latency_ms == pytest.approx(oracle.first_request_latency_ms,
                                                          rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("kwargs", SCENARIOS, ids=lambda kw: ",".join(map(str, kw)) or "default")
def test_oracle_agrees_exactly(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"viewers": 1_500, "duration_s": 10, "pops": 8, "seed": 3, **kwargs}
    assert_same(simulate_live(**args), simulate_live_simpy(**args))


def test_the_agreement_is_not_vacuous() -> None:
    fast = simulate_live(300, 5, pops=4, seed=1)
    other = simulate_live_simpy(300, 5, pops=4, seed=2)
    assert fast.counters() != other.counters()


def test_oracle_refuses_bad_input_like_the_model() -> None:
    with pytest.raises(ValueError, match="viewers must be at least 1"):
        simulate_live_simpy(-1, 10)
    with pytest.raises(ValueError, match="segment_s must be positive"):
        simulate_live_simpy(10, 10, segment_s=0)


scenarios = st.fixed_dictionaries({
    "viewers": st.integers(1, 400),
    "duration_s": st.sampled_from([1.0, 2.0, 4.0]),
    "pops": st.integers(2, 6),
    "origin_caches": st.integers(1, 3),
    "coalescing": st.booleans(),
    "push": st.booleans(),
    "push_to": st.sampled_from(["all", "watched"]),
    "pop_capacity_rps": st.none() | st.just("derived") | st.floats(5.0, 200.0),
    "overflow": st.sampled_from(["spill", "refuse"]),
    "ramp_s": st.sampled_from([0.0, 2.0]),
    "herd_window_s": st.sampled_from([0.0, 0.3, 0.5, 0.9]),
    "jitter_s": st.sampled_from([0.0, 0.02]),
    "zipf_exponent": st.sampled_from([0.0, 1.0, 2.0]),
    "seed": st.integers(0, 1_000),
    "traffic_seed": st.none() | st.integers(0, 50),
    "clock_offset_s": st.sampled_from([0.0, 0.05]),
})


@settings(max_examples=40, deadline=None)
@given(scenarios)
def test_oracle_agrees_on_random_scenarios(kwargs: dict[str, Any]) -> None:
    assert_same(simulate_live(**kwargs), simulate_live_simpy(**kwargs))


@settings(max_examples=60, deadline=None)
@given(scenarios.filter(lambda kw: kw["coalescing"]))
def test_coalescing_sends_at_most_one_request_per_segment_per_origin_cache(
    kwargs: dict[str, Any],
) -> None:
    result = simulate_live(**kwargs)
    origin_caches = kwargs["origin_caches"]
    assert result.origin_server_requests <= result.segments * origin_caches
    if kwargs["herd_window_s"] <= 0.5:  # then every fetch of segment s starts in second s + 1
        assert result.per_second["origin_server_requests"].max() <= origin_caches
    assert result.origin_cache_requests <= result.segments * kwargs["pops"]


EXACT = {"queueing": True, "queue_bin_s": 0.0}  # the oracle's queue is the exact one
QUEUED: list[dict[str, Any]] = [
    {**EXACT, "bitrate_kbps": 20_000.0},
    {**EXACT, "bitrate_kbps": 20_000.0, "coalescing": False},
    {**EXACT, "bitrate_kbps": 8_000.0, "push": True, "pop_capacity_rps": "derived"},
    {**EXACT, "bitrate_kbps": 20_000.0, "pop_capacity_rps": 150.0},  # spilled-in blocks
    {**EXACT, "bitrate_kbps": 20_000.0, "pop_capacity_rps": 150.0, "coalescing": False},
]


@pytest.mark.parametrize("kwargs", QUEUED, ids=lambda kw: ",".join(map(str, kw)))
def test_oracle_with_servers_as_simpy_resources_agrees(kwargs: dict[str, Any]) -> None:
    """The queue's times are summed in another order by SimPy, so latencies agree to float
    rounding (percentiles within one 0.1 ms bin), counters exactly."""
    args: dict[str, Any] = {"viewers": 1_500, "duration_s": 6, "pops": 8, "seed": 3, **kwargs}
    fast, oracle = simulate_live(**args), simulate_live_simpy(**args)
    assert fast.counters() == oracle.counters()
    assert fast.per_second.equals(oracle.per_second)
    np.testing.assert_allclose(fast.latency.to_numpy(), oracle.latency.to_numpy(), atol=0.1 + 1e-9)
    waits = ["mean_queue_wait_ms", "max_queue_wait_ms"]
    assert fast.pop_load.drop(columns=waits).equals(oracle.pop_load.drop(columns=waits))
    np.testing.assert_allclose(fast.pop_load[waits], oracle.pop_load[waits], rtol=1e-6, atol=1e-6)
    assert fast.pop_load["max_queue_wait_ms"].max() > 5  # the queue is really exercised
    assert fast.first_request_latency_ms == pytest.approx(oracle.first_request_latency_ms, rel=1e-9)


def test_oracle_refuses_spill_beyond_the_neighbours_room_like_the_model() -> None:
    args: dict[str, Any] = {"viewers": 1_500, "duration_s": 4, "pops": 5, "seed": 1,
                            "pop_capacity_rps": 250.0}
    fast, oracle = simulate_live(**args), simulate_live_simpy(**args)
    assert fast.refused > 0 and fast.pop_load["spilled_in"].sum() > 0
    assert_same(fast, oracle)


@settings(max_examples=25, deadline=None)
@given(scenarios, st.sampled_from([2_000.0, 8_000.0, 20_000.0]))
def test_queueing_agrees_with_simpy_resources_on_random_scenarios(
    kwargs: dict[str, Any], bitrate_kbps: float,
) -> None:
    """The queue sorts each PoP's ready times and finds its special requests (misses, fetches,
    spilled-in blocks) by binary search; SimPy queues them one by one."""
    kwargs = {**kwargs, **EXACT, "bitrate_kbps": bitrate_kbps}
    fast, oracle = simulate_live(**kwargs), simulate_live_simpy(**kwargs)
    assert fast.counters() == oracle.counters()
    np.testing.assert_allclose(fast.latency.to_numpy(), oracle.latency.to_numpy(), atol=0.1 + 1e-9)
    waits = ["mean_queue_wait_ms", "max_queue_wait_ms"]
    assert fast.pop_load.drop(columns=waits).equals(oracle.pop_load.drop(columns=waits))
    np.testing.assert_allclose(fast.pop_load[waits], oracle.pop_load[waits], rtol=1e-6, atol=1e-6)
    assert fast.first_request_latency_ms == pytest.approx(oracle.first_request_latency_ms,
                                                          rel=1e-9, nan_ok=True)
