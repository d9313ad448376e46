"""Loopback measurements: they run, they are bounded, and the explanations follow the numbers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from chatdesign.chat.loopback import (
    MAX_SAMPLES,
    LatencySummary,
    explain_latency,
    explain_memory,
    measure_echo_hop_ms,
    measure_send_ms,
    process_rss_bytes,
)
from chatdesign.chat.transport_cost import LatencyPrediction


def test_summary_quantiles() -> None:
    summary = LatencySummary.of(np.arange(1, 101, dtype=float))
    assert summary.samples == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == 100
    with pytest.raises(ValueError, match="non-empty"):
        LatencySummary.of([])
    with pytest.raises(ValueError, match="finite and not negative"):
        LatencySummary.of([1.0, -2.0])


def test_echo_hops_are_measured_on_loopback() -> None:
    hops = asyncio.run(measure_echo_hop_ms(samples=20))
    assert hops.shape == (20,)
    assert np.all(hops > 0)
    assert np.median(hops) < 50  # a loopback hop, not a network


def test_send_calibration_stores_every_message(tmp_path: Path) -> None:
    times = measure_send_ms(tmp_path, samples=10)
    assert times.shape == (10,) and np.all(times > 0)
    assert (tmp_path / "send-calibration.db").exists()
    with pytest.raises(ValueError, match="does not exist"):
        measure_send_ms(tmp_path / "missing", samples=1)


def test_measurement_loops_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="samples must be between 1 and"):
        measure_send_ms(tmp_path, samples=MAX_SAMPLES + 1)
    with pytest.raises(ValueError, match="samples must be between 1 and"):
        asyncio.run(measure_echo_hop_ms(samples=0))


def test_rss_of_this_process() -> None:
    assert process_rss_bytes(os.getpid()) > 1_000_000
    with pytest.raises(ValueError, match="no process"):
        process_rss_bytes(2**22 + 12_345)


def test_explanations_follow_the_numbers() -> None:
    prediction = LatencyPrediction(mean_ms=1.0, p50_ms=1.0, p99_ms=1.5)
    slow = explain_latency(prediction, LatencySummary.of([2.0] * 98 + [9.0, 9.0]))
    assert "2.0x the model's" in slow and "tail" in slow
    close = explain_latency(prediction, LatencySummary.of([1.1] * 100))
    assert "within 25 %" in close and "nothing stalled" in close
    fast = explain_latency(prediction, LatencySummary.of([0.5] * 100))
    assert "below the model's" in fast
    assert "3.0x Xu's 10 kB" in explain_memory(30_000) or "3.0x Xu's 10 KB" in explain_memory(30_000)
    assert "lazily" in explain_memory(2_000)
    assert "close to the textbook" in explain_memory(10_500)
    with pytest.raises(ValueError, match="assumed_bytes must be positive"):
        explain_memory(1_000, assumed_bytes=0)
