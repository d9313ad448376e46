"""The PoP queue: exact FIFO D/c by running maxima, against a plain loop and M/D/1."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from chatdesign.live.queueing import (
    ProgressionHistogram,
    binned_fifo_starts,
    check_queue_bin,
    fifo_finish_times,
    md1_mean_wait_s,
)
from chatdesign.live.result import BINS_PER_S, latency_bins


def loop_finish_times(ready: np.ndarray, servers: int, service_s: float) -> np.ndarray:
    free = [0.0] * servers
    finish = []
    for time in ready:
        start = max(float(time), heapq.heappop(free))
        heapq.heappush(free, start + service_s)
        finish.append(start + service_s)
    return np.array(finish)


@pytest.mark.parametrize("servers", [1, 2, 7, 50])
def test_matches_a_plain_multi_server_loop(servers: int) -> None:
    rng = np.random.default_rng(servers)
    ready = np.sort(rng.random(2_000) * 0.3)
    fast = fifo_finish_times(ready, servers, 0.002)
    np.testing.assert_allclose(fast, loop_finish_times(ready, servers, 0.002), atol=1e-12)
    assert np.all(fast >= ready + 0.002 - 1e-15)


def test_mean_wait_matches_the_md1_formula() -> None:
    rng = np.random.default_rng(7)
    rate, service = 800.0, 0.001  # utilisation 0.8
    arrivals = np.cumsum(rng.exponential(1 / rate, 400_000))
    wait = fifo_finish_times(arrivals, 1, service) - service - arrivals
    assert wait.mean() == pytest.approx(md1_mean_wait_s(rate, service), rel=0.05)
    assert md1_mean_wait_s(rate, service) == pytest.approx(0.8 * 0.001 / (2 * 0.2))


def test_an_idle_queue_adds_only_the_service_time() -> None:
    ready = np.array([0.0, 1.0, 2.0])
    assert list(fifo_finish_times(ready, 1, 0.5)) == [0.5, 1.5, 2.5]
    assert len(fifo_finish_times(np.array([]), 3, 0.5)) == 0


@pytest.mark.parametrize(
    ("ready", "servers", "service", "message"),
    [
        (np.array([1.0, 0.0]), 1, 0.1, "must be sorted"),
        (np.array([0.0, np.nan]), 1, 0.1, "finite times"),
        (np.array([0.0]), 0, 0.1, "servers must be at least 1"),
        (np.array([0.0]), 1, -0.1, "service_s must not be negative"),
        (np.zeros((2, 2)), 1, 0.1, "one-dimensional"),
    ],
)
def test_bad_queues_are_refused(ready: np.ndarray, servers: int, service: float,
                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fifo_finish_times(ready, servers, service)


def test_unstable_md1_is_refused() -> None:
    with pytest.raises(ValueError, match="unstable"):
        md1_mean_wait_s(1_000.0, 0.001)


@pytest.mark.parametrize("servers", [1, 2, 7, 50])
@pytest.mark.parametrize("bin_s", [0.0005, 0.003])
def test_binned_starts_stay_within_the_bound_of_the_exact_queue(servers: int, bin_s: float) -> None:
    """Rounding up moves starts by [0, b]; the fluid batch adds at most (c - 1) s / c."""
    rng = np.random.default_rng(servers)
    service = 0.002
    for load in (0.3, 1.0, 3.0):  # light, critical, overloaded
        ready = np.sort(rng.random(3_000) * 3_000 * service / servers / load) + 5.0
        exact = fifo_finish_times(ready, servers, service) - service
        binned = binned_fifo_starts(ready, servers, service, bin_s)
        error = binned - exact
        assert error.min() >= -1e-9
        assert error.max() <= bin_s + (servers - 1) * service / servers + 1e-9
        if load > 1:  # the bound is not loose everywhere: queued requests do move
            assert error.max() > 0


def test_one_binned_server_is_the_exact_queue_of_the_rounded_times() -> None:
    rng = np.random.default_rng(3)
    ready = np.sort(rng.random(500) * 0.5)
    rounded = (np.floor(ready / 0.001) + 1) * 0.001
    np.testing.assert_allclose(binned_fifo_starts(ready, 1, 0.0015, 0.001),
                               fifo_finish_times(rounded, 1, 0.0015) - 0.0015, atol=1e-12)


def test_binned_mean_wait_matches_the_md1_formula() -> None:
    rng = np.random.default_rng(7)
    rate, service, bin_s = 800.0, 0.001, 0.01 / 16
    arrivals = np.cumsum(rng.exponential(1 / rate, 400_000))
    wait = binned_fifo_starts(arrivals, 1, service, bin_s) - arrivals
    formula = md1_mean_wait_s(rate, service)
    assert wait.mean() == pytest.approx(formula, rel=0.05, abs=bin_s)
    assert 0 <= wait.mean() - (fifo_finish_times(arrivals, 1, service) - service
                               - arrivals).mean() <= bin_s


def test_progression_histogram_matches_its_values_sorted_within_one_step_and_bin() -> None:
    rng = np.random.default_rng(11)
    low = rng.random(400) * 0.3
    count = rng.integers(0, 3_000, 400).astype(float)
    step = rng.choice([0.00002, 0.00005, 0.0003], 400)
    values = np.concatenate([a + np.arange(int(m)) * d for a, m, d in zip(low, count, step,
                                                                         strict=True)])
    histogram = ProgressionHistogram(20_000, 1 / BINS_PER_S)  # 2 s: above every value
    histogram.add(low[:200], count[:200], step[:200])
    histogram.add(low[200:], count[200:], step[200:])
    spread = histogram.counts()
    assert spread.min() >= 0 and spread.sum() == len(values)
    exact = np.bincount(latency_bins(values), minlength=20_000)
    reported = np.repeat(np.arange(20_000), spread)
    truth = np.sort(latency_bins(values))
    gap = reported - truth
    assert gap.min() >= -1 and gap.max() <= np.ceil(step.max() * BINS_PER_S) + 1
    assert not np.array_equal(spread, exact)  # it is a spread, not a recount


def test_queue_bins_are_zero_or_ten_ms_over_a_power_of_two() -> None:
    assert check_queue_bin(0.0) == 0.0
    assert check_queue_bin(0.01 / 16) == 0.000625
    for bad in (0.001, -0.01, 0.01 / 2**11):
        with pytest.raises(ValueError, match="queue_bin_s"):
            check_queue_bin(bad)
