"""simulate_live: the Facebook numbers, coalescing, push, PoP capacity, the result object."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatdesign.live import (
    CALIBRATION_VIEWERS,
    HERD_SPREAD,
    LiveResult,
    build_topology,
    calibrate_herd_spread,
    path_delays,
    simulate_live,
)
from chatdesign.live.queueing import QUEUE_BIN_S
from chatdesign.live.result import BINS_PER_S

POPULAR = 1_100  # viewers of a mid-sized stream over the default 20 PoPs


@pytest.fixture(scope="module")
def popular() -> LiveResult:
    return simulate_live(POPULAR, 60, seed=0)


@pytest.fixture(scope="module")
def uncoalesced() -> LiveResult:
    return simulate_live(POPULAR, 60, seed=0, coalescing=False)


def test_the_calibrated_herd_leaks_facebooks_share_without_coalescing() -> None:
    leaky = simulate_live(CALIBRATION_VIEWERS, 30, segment_s=3.0, coalescing=False)
    assert leaky.requests_past_edge_ratio == pytest.approx(0.018, abs=0.001)
    fixed = simulate_live(CALIBRATION_VIEWERS, 30, segment_s=3.0)
    assert fixed.edge_hit_ratio > 0.98
    assert fixed.origin_cache_requests == 20 * fixed.segments  # every PoP has viewers


def test_the_calibration_recovers_the_stated_constant() -> None:
    assert calibrate_herd_spread() == pytest.approx(HERD_SPREAD, abs=0.005)
    with pytest.raises(ValueError, match="out of reach"):
        calibrate_herd_spread(0.9)


def test_the_leak_moves_with_segment_length_spread_and_miss_latency() -> None:
    def leak(**kwargs: float) -> float:
        args: dict[str, float] = {"segment_s": 3.0, **kwargs}
        return simulate_live(20_000, 12, coalescing=False, **args).requests_past_edge_ratio  # type: ignore[arg-type]

    base = leak()
    assert leak(segment_s=1.0) > 2 * base  # a third of the spread: the herd is denser
    assert leak(herd_spread=0.5) < base / 2
    assert leak(origin_caches=4) < base  # nearer origin caches answer a miss sooner


def test_coalesced_leak_is_pops_with_viewers_over_requests_at_any_audience(
        popular: LiveResult) -> None:
    for result in (popular, simulate_live(50, 12, seed=1), simulate_live(200_000, 3)):
        active_pops = int((result.pop_load["viewers_peak"] > 0).sum())
        assert result.origin_cache_requests == active_pops * result.segments
        assert result.requests_past_edge_ratio == active_pops * result.segments / result.requests
    assert popular.origin_server_requests == 60  # one per segment


def test_without_coalescing_the_origin_sees_the_herd(popular: LiveResult,
                                                      uncoalesced: LiveResult) -> None:
    assert uncoalesced.origin_cache_requests > 2 * popular.origin_cache_requests
    assert uncoalesced.origin_server_requests > popular.origin_server_requests
    assert uncoalesced.edge_coalesced == 0
    assert popular.edge_coalesced > 0
    peak = uncoalesced.per_second["origin_cache_requests"].max()
    assert peak > 2 * popular.per_second["origin_cache_requests"].max()


def test_traffic_seed_reruns_the_traffic_over_the_same_map() -> None:
    base = simulate_live(500, 4, pops=5, seed=3)
    again = simulate_live(500, 4, pops=5, seed=3, traffic_seed=3)
    other_traffic = simulate_live(500, 4, pops=5, seed=3, traffic_seed=9)
    other_map = simulate_live(500, 4, pops=5, seed=4, traffic_seed=3)
    assert again.counters() == base.counters()
    assert other_traffic.pop_load["requests"].sum() == base.pop_load["requests"].sum()
    assert not other_traffic.pop_demand.equals(base.pop_demand)
    assert other_map.latency_histogram.shape != base.latency_histogram.shape or not np.array_equal(
        other_map.latency_histogram, base.latency_histogram)


def test_requests_are_conserved_in_every_view(popular: LiveResult) -> None:
    assert popular.per_second["requests"].sum() == popular.requests
    assert int(popular.pop_demand.to_numpy().sum()) == popular.requests
    assert popular.pop_load["requests"].sum() == popular.requests
    assert popular.latency.loc["all", "requests"] == popular.requests
    assert popular.latency.loc["origin_server", "requests"] == popular.origin_server_requests
    assert (popular.latency.loc["origin_cache", "requests"]
            + popular.latency.loc["origin_server", "requests"]) == popular.origin_cache_requests


def test_latency_percentiles_are_ordered_and_an_edge_hit_is_fastest(popular: LiveResult) -> None:
    row = popular.latency.loc["all"]
    assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["p99.9_ms"]
    assert popular.latency.loc["edge", "p50_ms"] < popular.latency.loc["origin_cache", "p50_ms"]
    assert 10 < row["p50_ms"] < 100


def test_push_to_all_removes_pulls_and_wastes_bytes_on_empty_pops() -> None:
    pull = simulate_live(40, 20, pops=20, seed=2)
    push = simulate_live(40, 20, pops=20, seed=2, push=True)
    assert push.origin_cache_requests < pull.origin_cache_requests / 20  # beat the push
    assert push.origin_server_requests == 0
    assert push.pushes == 20 * 20
    assert push.unwatched_pushes > 0
    assert push.unwatched_push_bytes == push.unwatched_pushes * 125_000
    assert push.first_request_latency_ms < pull.first_request_latency_ms
    assert pull.pushes == 0 and pull.pushed_bytes == 0


def test_push_to_watched_pops_pushes_less_and_wastes_nothing_in_steady_state() -> None:
    push_all = simulate_live(40, 20, pops=20, seed=2, push=True)
    watched = simulate_live(40, 20, pops=20, seed=2, push=True, push_to="watched")
    assert watched.pushes < push_all.pushes
    assert watched.unwatched_pushes == 0
    assert watched.origin_cache_requests > 0  # the first segment is pulled


def test_spill_goes_only_into_the_neighbours_spare_room() -> None:
    result = simulate_live(2_000, 10, pops=5, pop_capacity_rps=300, seed=1)
    load = result.pop_load
    assert result.spilled > 0
    assert load["spilled_out"].sum() == result.spilled
    assert load["spilled_in"].sum() + result.refused == result.spilled  # the rest is refused
    assert (load["served"] == load["requests"] - load["spilled_out"] + load["spilled_in"]).all()
    assert (load["peak_served_per_segment"] <= 300).all()  # nobody is pushed over capacity
    assert not load["overloaded"].any()
    assert load["spilled_in"].sum() > 0  # a PoP with room does take some
    assert result.edge_hits + result.origin_cache_requests + result.refused == result.requests


def test_derived_capacity_comes_from_servers_and_links() -> None:
    derived = simulate_live(60_000, 5, pops=5, seed=1, pop_capacity_rps="derived")
    capacity = derived.pop_load["capacity_rps"]
    assert (derived.pop_load["capacity_per_segment"] == np.floor(capacity * 1.0)).all()
    assert (derived.pop_load["peak_served_per_segment"] <= derived.pop_load["capacity_per_segment"]).all()
    assert derived.spilled > 0
    default = simulate_live(60_000, 5, pops=5, seed=1)  # derived is the default
    assert default.counters() == derived.counters()
    assert default.pop_load.equals(derived.pop_load)
    unlimited = simulate_live(60_000, 5, pops=5, seed=1, pop_capacity_rps=None)
    assert unlimited.refused == unlimited.spilled == 0
    assert unlimited.pop_load["capacity_rps"].equals(capacity)  # reported even when not applied
    assert (unlimited.pop_load["capacity_per_segment"] == -1).all()


def test_peak_load_at_10_ms_shows_what_per_second_rates_hide() -> None:
    result = simulate_live(2_000, 10, pops=5, pop_capacity_rps=300, seed=1)
    load = result.pop_load
    assert (load["peak_rps"] <= 300).all()
    assert load.loc[0, "peak_rps_10ms"] > 10 * 300  # the admitted 300 arrive within the herd
    assert (load["peak_rps_10ms"] == 100 * load["peak_served_per_10ms"]).all()
    # not overloaded per segment, yet a burst beyond what the servers send: it is flagged
    assert not load.loc[0, "overloaded"] and load.loc[0, "burst_over_capacity"]
    assert (load["burst_over_capacity"] == (load["peak_rps_10ms"] > 300)).all()
    light = simulate_live(100, 10, pops=5, seed=1).pop_load
    assert not light["burst_over_capacity"].any()


def test_queueing_adds_waits_and_transfer_time_where_the_herd_exceeds_the_servers() -> None:
    plain = simulate_live(20_000, 6, pops=5, seed=1)
    queued = simulate_live(20_000, 6, pops=5, seed=1, queueing=True)
    assert queued.counters() == plain.counters()  # load costs time, not cache outcomes
    assert (plain.pop_load["max_queue_wait_ms"] == 0).all()
    busiest = queued.pop_load["peak_rps_10ms"].idxmax()
    assert queued.pop_load.loc[busiest, "mean_queue_wait_ms"] > 10
    assert queued.latency.loc["all", "p99_ms"] > plain.latency.loc["all", "p99_ms"] + 10
    small = simulate_live(200, 6, pops=5, seed=1, queueing=True)
    assert small.pop_load["mean_queue_wait_ms"].max() < 1  # a light load barely waits


BINNED_CASES: list[dict[str, object]] = [
    {"viewers": 20_000, "duration_s": 6, "pops": 5, "seed": 1},
    {"viewers": 30_000, "duration_s": 4, "pop_capacity_rps": None, "seed": 2},
    {"viewers": 3_000, "duration_s": 6, "pops": 8, "seed": 3, "bitrate_kbps": 8_000.0,
     "pop_capacity_rps": 150.0},  # spilled-in blocks, long service times
    {"viewers": 3_000, "duration_s": 6, "pops": 8, "seed": 3, "bitrate_kbps": 8_000.0,
     "push": True, "jitter_s": 0.1},
    {"viewers": 500, "duration_s": 5, "pops": 3, "seed": 4, "segment_s": 2.0,
     "herd_window_s": 0.5},  # a light load
    # without coalescing: each miss is ready at its own answer, among the hits of that bin
    {"viewers": 20_000, "duration_s": 4, "coalescing": False},
    {"viewers": 3_000, "duration_s": 6, "pops": 8, "seed": 3, "bitrate_kbps": 8_000.0,
     "pop_capacity_rps": 150.0, "coalescing": False},  # spilled-in blocks
    {"viewers": 3_000, "duration_s": 6, "pops": 8, "seed": 3, "bitrate_kbps": 8_000.0,
     "push": True, "jitter_s": 0.1, "coalescing": False},
]


def assert_within_the_bound(exact: LiveResult, binned: LiveResult, bin_s: float) -> int:
    """Counters, per-PoP load and first-request latency as the exact queue; every latency,
    sorted, within b + s + 0.1 ms (the queueing module's bound) and queue waits within b + s.
    Returns how many latencies moved to another 0.1 ms bin."""
    assert binned.counters() == exact.counters()
    waits = ["mean_queue_wait_ms", "max_queue_wait_ms"]
    assert binned.pop_load.drop(columns=waits).equals(exact.pop_load.drop(columns=waits))
    scenario = binned.scenario
    delays = path_delays(build_topology(scenario.pops, origin_caches=scenario.origin_caches,
                                        seed=scenario.seed, zipf_exponent=scenario.zipf_exponent))
    service = delays.service_s(scenario.segment_bytes)
    if scenario.coalescing:  # each PoP's first request is served first, exactly
        assert binned.first_request_latency_ms == pytest.approx(exact.first_request_latency_ms,
                                                                rel=1e-12, nan_ok=True)
    elif math.isnan(exact.first_request_latency_ms):  # nobody asked for anything
        assert math.isnan(binned.first_request_latency_ms)
    else:  # a first request that missed queues among the others: within the bound
        gap_ms = binned.first_request_latency_ms - exact.first_request_latency_ms
        assert -1000 * bin_s - 1e-9 < gap_ms < 1000 * (bin_s + service.max()) + 1e-9, gap_ms
    bound_bins = math.ceil((bin_s + service.max()) * BINS_PER_S) + 1
    moved = 0

    def sorted_bins(result: LiveResult, layer: int) -> np.ndarray:
        row = result.latency_histogram[layer]
        return np.repeat(np.arange(len(row)), row)

    for layer in range(3):
        gap = sorted_bins(binned, layer) - sorted_bins(exact, layer)
        assert len(gap) == int(exact.latency_histogram[layer].sum())
        if len(gap):
            assert np.abs(gap).max() <= bound_bins, (layer, np.abs(gap).max(), bound_bins)
            moved += int(np.count_nonzero(gap))
    used = (exact.pop_load["served"] > 0).to_numpy()
    tolerance_ms = 1000 * (bin_s + service[used]) + 1e-6
    for column in waits:
        error = (binned.pop_load[column] - exact.pop_load[column]).to_numpy()[used]
        assert (np.abs(error) <= tolerance_ms).all(), (column, error, tolerance_ms)
    return moved


@pytest.mark.parametrize("kwargs", BINNED_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("bin_s", [0.01 / 16, 0.01 / 2])
def test_binned_queue_is_within_its_bound_of_the_exact_queue(kwargs: dict[str, object],
                                                             bin_s: float) -> None:
    exact = simulate_live(**kwargs, queueing=True, queue_bin_s=0.0)  # type: ignore[arg-type]
    binned = simulate_live(**kwargs, queueing=True, queue_bin_s=bin_s)  # type: ignore[arg-type]
    assert assert_within_the_bound(exact, binned, bin_s) > 0  # an approximation, and seen as one


@settings(max_examples=30, deadline=None)
@given(st.fixed_dictionaries({
    "viewers": st.integers(1, 3_000),
    "duration_s": st.sampled_from([1.0, 3.0]),
    "pops": st.integers(1, 6),
    "origin_caches": st.integers(1, 2),
    "push": st.booleans(),
    "push_to": st.sampled_from(["all", "watched"]),
    "pop_capacity_rps": st.none() | st.just("derived") | st.floats(20.0, 2_000.0),
    "overflow": st.sampled_from(["spill", "refuse"]),
    "ramp_s": st.sampled_from([0.0, 2.0]),
    "herd_window_s": st.sampled_from([0.0, 0.05, 0.5]),
    "jitter_s": st.sampled_from([0.0, 0.02]),
    "zipf_exponent": st.sampled_from([0.0, 1.0, 2.0]),
    "bitrate_kbps": st.sampled_from([1_000.0, 8_000.0]),
    "seed": st.integers(0, 1_000),
    "clock_offset_s": st.sampled_from([0.0, 0.05]),
    "coalescing": st.booleans(),
}), st.sampled_from([0.01, 0.01 / 16, 0.01 / 1024]))
def test_binned_queue_stays_within_its_bound_on_random_scenarios(kwargs: dict[str, object],
                                                                 bin_s: float) -> None:
    exact = simulate_live(**kwargs, queueing=True, queue_bin_s=0.0)  # type: ignore[arg-type]
    binned = simulate_live(**kwargs, queueing=True, queue_bin_s=bin_s)  # type: ignore[arg-type]
    assert_within_the_bound(exact, binned, bin_s)


def test_without_coalescing_a_miss_queues_behind_the_hits_that_arrived_before_its_answer(
) -> None:
    """In a bin where misses become ready while hits keep arriving, putting the misses first
    (or last) moves latencies by many service steps; the binned queue orders them exactly and
    stays within its bound."""
    kwargs = {"viewers": 20_000, "duration_s": 3, "coalescing": False, "queueing": True}
    exact = simulate_live(**kwargs, queue_bin_s=0.0)  # type: ignore[arg-type]
    binned = simulate_live(**kwargs)  # type: ignore[arg-type]
    assert binned.scenario.queue_bin_s == QUEUE_BIN_S and binned.origin_cache_requests > 0
    assert assert_within_the_bound(exact, binned, QUEUE_BIN_S) > 0
    assert not np.array_equal(binned.latency_histogram, exact.latency_histogram)


def test_a_queue_bin_that_does_not_divide_10_ms_by_a_power_of_two_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_bin_s"):
        simulate_live(100, 2, queueing=True, queue_bin_s=0.001)


def test_capacity_can_refuse_instead() -> None:
    result = simulate_live(2_000, 10, pops=5, pop_capacity_rps=300, seed=1, overflow="refuse")
    assert result.spilled == 0
    assert result.refused == int((result.pop_load["requests"]
                                  - result.pop_load["served"]).sum())
    assert (result.pop_load["peak_served_per_segment"] <= 300).all()
    assert result.edge_hits + result.origin_cache_requests + result.refused == result.requests
    assert result.per_second["refused"].sum() == result.refused


def test_spilled_requests_are_slower() -> None:
    free = simulate_live(2_000, 10, pops=5, seed=1)
    limited = simulate_live(2_000, 10, pops=5, pop_capacity_rps=700, seed=1)
    assert limited.refused == 0 and limited.spilled > 0
    assert limited.latency.loc["all", "p90_ms"] > free.latency.loc["all", "p90_ms"]


def test_flash_crowd_time_series_grows() -> None:
    result = simulate_live(1_000, 20, pops=4, ramp_s=15.0)
    per_second = result.per_second["requests"]
    assert per_second.iloc[2] < per_second.iloc[10] < per_second.iloc[18]
    assert list(result.pop_demand.columns) == [0, 1, 2, 3]
    assert (result.pop_demand.sum(axis=1) == per_second).all()


def test_longer_segments_mean_fewer_requests() -> None:
    one = simulate_live(300, 12, segment_s=1.0, pops=4)
    three = simulate_live(300, 12, segment_s=3.0, pops=4)
    assert one.requests == 3 * three.requests


def test_progress_is_reported_per_segment() -> None:
    calls: list[tuple[int, int]] = []
    simulate_live(10, 3, pops=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError, match="progress must be callable"):
        simulate_live(10, 3, progress=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"viewers": -1}, "viewers must be at least 1"),
        ({"segment_s": 0.0}, "segment_s must be positive"),
        ({"duration_s": -3.0}, "duration_s must be positive"),
        ({"pops": 0}, "pops must be at least 1"),
        ({"pop_capacity_rps": -5.0}, "pop_capacity_rps must be positive"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {"viewers": 10, "duration_s": 5.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate_live(**args)  # type: ignore[arg-type]


def test_result_reads_well(popular: LiveResult) -> None:
    assert repr(popular) == (
        "LiveResult(viewers=1.1 K, segments=60, requests=66 K, edge_hit_ratio=98.182%, "
        "past_edge=1.818%, origin_server_requests=60)"
    )
    frame = popular.to_frame()
    assert frame.loc["edge_hit_ratio", "text"] == "98.182%"
    assert frame.loc["origin_server_requests_per_segment", "value"] == 1.0
    assert isinstance(popular.per_second, pd.DataFrame)
    assert popular.per_second.index.name == "second"
    assert popular.counters()["requests"] == 66_000
    assert popular.segments == 60
    with pytest.raises(ValueError, match="read-only"):
        popular.latency_histogram[0, 0] = 1


def test_result_refuses_inconsistent_counters(popular: LiveResult) -> None:
    fields = {name: getattr(popular, name) for name in popular.__dataclass_fields__}
    with pytest.raises(ValueError, match="must equal requests"):
        LiveResult(**{**fields, "edge_hits": popular.edge_hits - 1})
    with pytest.raises(ValueError, match="refused must not be negative"):
        LiveResult(**{**fields, "refused": -1})
    with pytest.raises(ValueError, match="subset of edge hits"):
        LiveResult(**{**fields, "edge_coalesced": popular.edge_hits + 1})
    with pytest.raises(ValueError, match="origin-cache miss"):
        LiveResult(**{**fields, "origin_server_requests": popular.origin_cache_requests + 1,
                      "latency_histogram": np.zeros((3, 1))})


def test_empty_layer_percentiles_are_nan() -> None:
    result = simulate_live(50, 2, pops=2, push=True)
    assert math.isnan(result.latency.loc["origin_server", "p50_ms"])


def test_origin_cache_check_expects_one_request_per_pop_and_hides_it() -> None:
    from chatdesign.live import check_origin_cache_requests_per_segment

    unanswered = check_origin_cache_requests_per_segment(None, 100_000)
    assert not unanswered and "not answered yet" in unanswered.explanation
    assert check_origin_cache_requests_per_segment(20, 100_000)
    uncoalesced_share = check_origin_cache_requests_per_segment(1_800, 100_000)
    assert not uncoalesced_share
    assert "before coalescing" in uncoalesced_share.explanation
    low = check_origin_cache_requests_per_segment(1, 100_000)
    assert not low and "too low" in low.explanation
    for verdict in (unanswered, uncoalesced_share, low):
        assert "20" not in verdict.explanation
    with pytest.raises(ValueError, match="viewers must be at least 1"):
        check_origin_cache_requests_per_segment(20, 0)


def test_playlist_requests_are_counted_as_in_notebook_07() -> None:
    from chatdesign.live import requests_per_viewer_s

    result = simulate_live(300, 6, segment_s=3.0, pops=3)
    assert result.playlist_requests == result.requests
    per_viewer_s = (result.requests + result.playlist_requests) / 300 / 6
    assert per_viewer_s == pytest.approx(requests_per_viewer_s(3.0))
    faster = simulate_live(300, 6, segment_s=3.0, pops=3, playlist_refresh_s=1.5)
    assert faster.playlist_requests == 2 * faster.requests
    assert (faster.requests + faster.playlist_requests) / 300 / 6 == pytest.approx(
        requests_per_viewer_s(3.0, playlist_refresh_s=1.5))
    assert faster.to_frame().loc["playlist_requests", "value"] == 2 * faster.requests


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=12), min_size=1, max_size=5), st.integers(-1, 40))
def test_spill_admission_takes_the_earliest_with_ties_in_pop_order(
    blocks: list[list[int]], room: int,
) -> None:
    """The cutoff admission of spilled blocks equals a stable sort of every offered time (the
    old algorithm): the earliest ``room`` get in, equal times in the order of their blocks."""
    from chatdesign.live.simulate import _admitted_per_block, _split_earliest

    values = [np.array(block, dtype=float) / 10 for block in blocks]
    admitted, _ = _admitted_per_block(values, room)
    offered = np.concatenate(values)
    owner = np.repeat(np.arange(len(values)), [len(v) for v in values])
    first = np.argsort(offered, kind="stable")[: max(room, 0)]
    np.testing.assert_array_equal(admitted, np.bincount(owner[first], minlength=len(values)))
    times = offered.copy()
    kept, over = _split_earliest(times, max(room, 0))
    assert sorted(kept.tolist()) == sorted(offered[first].tolist())
    assert sorted(over.tolist()) == sorted(np.delete(offered, first).tolist())
