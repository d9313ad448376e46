"""Result helpers: latency bins, histogram percentiles, push targets, path times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatdesign.live import LiveScenario, pop_name
from chatdesign.live.result import MAX_LATENCY_BINS, latency_bins, percentile_ms
from chatdesign.live.simulate import PathTimes, push_targets, scenario_paths


def test_latency_bins_are_tenths_of_a_millisecond_and_capped() -> None:
    bins = latency_bins(np.array([0.0, 0.00004, 0.0001, 0.0312, 99.0]))
    assert list(bins) == [0, 0, 1, 312, MAX_LATENCY_BINS - 1]


def test_percentile_is_the_upper_edge_of_its_bin() -> None:
    histogram = np.zeros(1_000, dtype=np.int64)
    histogram[100] = 90  # 10.0-10.1 ms
    histogram[500] = 10  # 50.0-50.1 ms
    assert percentile_ms(histogram, 50) == pytest.approx(10.1)
    assert percentile_ms(histogram, 90) == pytest.approx(10.1)
    assert percentile_ms(histogram, 91) == pytest.approx(50.1)
    assert percentile_ms(histogram, 100) == pytest.approx(50.1)
    assert math.isnan(percentile_ms(np.zeros(10, dtype=np.int64), 50))


def test_push_targets_follow_the_policy() -> None:
    pull = LiveScenario(viewers=10, duration_s=2, pops=3)
    assert not push_targets(pull, None).any()
    everyone = LiveScenario(viewers=10, duration_s=2, pops=3, push=True)
    assert push_targets(everyone, None).all()
    watched = LiveScenario(viewers=10, duration_s=2, pops=3, push=True, push_to="watched")
    assert not push_targets(watched, None).any()
    assert list(push_targets(watched, np.array([4, 0, 1]))) == [True, False, True]


def test_path_times_double_the_one_way_delays() -> None:
    scenario = LiveScenario(viewers=10, duration_s=2, pops=3, origin_caches=2)
    delays, times = scenario_paths(scenario)
    assert np.array_equal(times.player_edge_rtt_s, delays.player_edge_s * 2)
    assert np.array_equal(times.origin_server_rtt_s, delays.origin_server_s * 2)
    assert np.allclose(times.spill_rtt_s, 2 * (delays.player_edge_s + delays.neighbour_s))
    assert repr(times) == "PathTimes(pops=3, origin_caches=2)"
    assert isinstance(PathTimes.from_delays(delays), PathTimes)


def test_pop_names_sort_in_pop_order() -> None:
    assert pop_name(3) == "pop-03"
    assert sorted(pop_name(p) for p in (10, 2, 1)) == ["pop-01", "pop-02", "pop-10"]
