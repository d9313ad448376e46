"""The PoP queue: exact FIFO D/c by running maxima, against a plain loop and M/D/1."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from chatdesign.live.queueing import fifo_finish_times, md1_mean_wait_s


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
