"""Loopback measurements: they run, they are bounded, and the explanations follow the numbers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from chatdesign.chat import ChatError, ChatServer
from chatdesign.chat.loopback import (
    MAX_SAMPLES,
    LatencySummary,
    ServerProcess,
    explain_latency,
    explain_memory,
    issue_tokens,
    measure_echo_hop_ms,
    measure_idle_connection_memory,
    measure_send_ms,
    measure_send_to_delivery_ms,
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
    slow = explain_latency(prediction, LatencySummary.of([2.0] * 98 + [9.0, 9.0]), LatencySummary.of([1.5] * 10))
    assert "2.0x the model's" in slow and "delivery acknowledgement" in slow
    assert "drops to 1.5 ms" in slow and "The tail is" in slow
    unpaced = explain_latency(prediction, LatencySummary.of([2.0] * 100), LatencySummary.of([2.1] * 10))
    assert "median is 2.1 ms" in unpaced and "about the same" in unpaced and "drops" not in unpaced
    close = explain_latency(prediction, LatencySummary.of([1.1] * 100))
    assert "within 25 %" in close and "nothing stalled" in close
    fast = explain_latency(prediction, LatencySummary.of([0.5] * 100))
    assert "below the model's" in fast
    assert "3.0x Xu's 10 KB" in explain_memory(30_000)
    assert "lazily" in explain_memory(2_000)
    assert "close to the textbook" in explain_memory(10_500)
    with pytest.raises(ValueError, match="assumed_bytes must be positive"):
        explain_memory(1_000, assumed_bytes=0)


def test_issue_tokens_registers_users_and_refuses_bad_devices(tmp_path: Path) -> None:
    tokens = issue_tokens(tmp_path, [("alice", "phone"), ("alice", "laptop"), ("bob", "phone")])
    assert len(set(tokens)) == 3
    with ChatServer(tmp_path / "chat.db") as chat:
        assert chat.has_user("alice") and chat.has_user("bob")
    with pytest.raises(ChatError):
        issue_tokens(tmp_path, [("carol", "bad device id!")])
    with ChatServer(tmp_path / "chat.db") as chat:
        assert not chat.has_user("carol")  # refused before anything was stored
    with pytest.raises(ValueError, match="does not exist"):
        issue_tokens(tmp_path / "missing", [("a", "b")])


def test_real_server_process_latency_memory_and_clean_stop(tmp_path: Path) -> None:
    devices = [("alice", "phone"), ("bob", "phone"), ("alice", "laptop")] + [("idle", f"idle-{i}") for i in range(20)]
    tokens = issue_tokens(tmp_path, devices)
    with ServerProcess(tmp_path) as server:
        assert server.ws_url.startswith("ws://127.0.0.1:") and server.ws_url.endswith("/ws")
        times = asyncio.run(measure_send_to_delivery_ms(server.ws_url, tokens[2:3] + tokens[:1], tokens[1], "bob",
                                                        samples=12))
        assert times.shape == (12,) and np.all(times > 0)
        memory = asyncio.run(measure_idle_connection_memory(server.pid, server.ws_url, tokens[3:], settle_s=0.2))
        assert memory.connections == 20 and memory.rss_before_bytes > 0
        assert memory.per_connection_bytes == (memory.rss_after_bytes - memory.rss_before_bytes) / 20
        pid = server.pid
    assert server.returncode == 0  # SIGTERM is a clean shutdown
    with pytest.raises(ValueError, match="no process"):
        process_rss_bytes(pid)


def test_server_process_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ServerProcess(tmp_path / "missing").start()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = ServerProcess(tmp_path).pid
