"""Polling, long polling and WebSockets: the closed forms against hand counts and a simulation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from chatdesign.chat.transport_cost import (
    TRANSPORT_PANEL_DEFAULTS,
    TRANSPORTS,
    LoopbackLatencyModel,
    TransportScenario,
    compare_transports,
    delivery_latency_quantile_ms,
    transport_panel,
    transport_sweep,
    transport_table,
    websocket_frame_bytes,
)


@pytest.mark.parametrize(
    ("payload", "masked", "expected"),
    [(0, False, 2), (125, False, 127), (125, True, 131), (126, False, 130), (65_535, True, 65_543),
     (65_536, False, 65_546)],
)
def test_websocket_frame_sizes_follow_rfc_6455(payload: int, masked: bool, expected: int) -> None:
    assert websocket_frame_bytes(payload, masked) == expected


def test_polling_by_hand() -> None:
    s = TransportScenario(online_users=1_000, messages_per_user_per_hour=36, poll_interval_s=10, rtt_ms=50,
                          server_ms=2)
    polling = compare_transports(s)["polling"]
    assert polling.http_requests_per_s == pytest.approx(100)
    assert polling.empty_response_share == pytest.approx(math.exp(-0.01 * 10))
    per_poll = 400 + 200 + 2 * 40
    assert polling.bytes_per_s == pytest.approx(100 * per_poll + 1_000 * 0.01 * 100)
    assert polling.payload_bytes_per_s == pytest.approx(1_000)
    assert polling.messages_per_s == pytest.approx(10)
    assert polling.overhead_bytes_per_message == pytest.approx(100 * per_poll / 10)
    assert polling.latency_mean_ms == pytest.approx(52 + 5_000)
    assert polling.latency_p99_ms == pytest.approx(52 + 9_900)


def test_websockets_by_hand() -> None:
    s = TransportScenario(online_users=1_000, messages_per_user_per_hour=36, rtt_ms=50, server_ms=2)
    ws = compare_transports(s)["WebSockets"]
    handshakes, messages, pings = 1_000 / 3_600, 10.0, 1_000 / 20
    assert ws.http_requests_per_s == pytest.approx(handshakes)
    assert ws.exchanges_per_s == pytest.approx(handshakes + messages + pings)
    per_message = (2 + 100) + (2 + 4 + 60) + 2 * 40
    per_ping = (2 + 4) + (2 + 4 + 4) + 2 * 40
    assert ws.bytes_per_s == pytest.approx(handshakes * 680 + messages * per_message + pings * per_ping)
    assert ws.latency_mean_ms == ws.latency_p50_ms == ws.latency_p99_ms == pytest.approx(52)
    assert ws.empty_response_share == 0


def test_long_polling_without_messages_only_times_out() -> None:
    s = TransportScenario(online_users=1_000, messages_per_user_per_hour=0, long_poll_timeout_s=30, rtt_ms=100)
    lp = compare_transports(s)["long polling"]
    assert lp.http_requests_per_s == pytest.approx(1_000 / 30.1)
    assert lp.empty_response_share == pytest.approx(1.0)


def _simulate_long_polling(
    rate: float, rtt: float, timeout: float, messages: int, seed: int
) -> tuple[float, float, float]:
    """One device, event by event: requests per second, empty share, mean wait W (seconds)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, messages))
    t, i, requests, empty, waits = 0.0, 0, 0, 0, []  # t: a request reaches the server
    while i < messages:
        requests += 1
        if arrivals[i] <= t:  # messages came while no request was waiting: answer at once
            while i < messages and arrivals[i] <= t:
                waits.append(t - arrivals[i])
                i += 1
            answered = t
        elif arrivals[i] - t <= timeout:
            answered = arrivals[i]
            while i < messages and arrivals[i] <= answered:
                waits.append(0.0)
                i += 1
        else:
            answered = t + timeout
            empty += 1
        t = answered + rtt
    return requests / t, empty / requests, float(np.mean(waits))


def test_long_polling_closed_form_matches_a_simulation() -> None:
    rate, rtt, timeout = 0.1, 0.5, 5.0
    s = TransportScenario(online_users=1, messages_per_user_per_hour=rate * 3_600, rtt_ms=rtt * 1000,
                          long_poll_timeout_s=timeout, server_ms=0)
    lp = compare_transports(s)["long polling"]
    requests_per_s, empty_share, mean_wait_s = _simulate_long_polling(rate, rtt, timeout, 20_000, seed=7)
    assert lp.http_requests_per_s == pytest.approx(requests_per_s, rel=0.03)
    assert lp.empty_response_share == pytest.approx(empty_share, rel=0.05)
    assert lp.latency_mean_ms - rtt * 1000 == pytest.approx(mean_wait_s * 1000, rel=0.1)


def test_latency_order_and_quantiles() -> None:
    comparison = compare_transports()
    ws, lp, polling = comparison["WebSockets"], comparison["long polling"], comparison["polling"]
    assert ws.latency_p99_ms <= lp.latency_p99_ms < polling.latency_p99_ms
    assert ws.bytes_per_s < lp.bytes_per_s < polling.bytes_per_s
    assert ws.http_requests_per_s < lp.http_requests_per_s < polling.http_requests_per_s
    for transport in TRANSPORTS:
        quantiles = [delivery_latency_quantile_ms(comparison.scenario, transport, q) for q in (0, 0.5, 0.9, 0.99, 1)]
        assert quantiles == sorted(quantiles)


def test_long_polling_gap_reaches_the_tail_when_messages_are_frequent() -> None:
    busy = TransportScenario(messages_per_user_per_hour=3_600, rtt_ms=200, server_ms=0)
    p50 = delivery_latency_quantile_ms(busy, "long polling", 0.5)
    p99 = delivery_latency_quantile_ms(busy, "long polling", 0.99)
    assert p50 == pytest.approx(200)
    assert 200 < p99 <= 400


def test_table_panel_and_sweep() -> None:
    table = transport_table(**TRANSPORT_PANEL_DEFAULTS)
    assert list(table.index) == list(TRANSPORTS)
    assert table.loc["polling", "HTTP requests per second"] == "200 K"
    panel = transport_panel()
    assert panel.auto_display  # the table shows under the sliders, as with ``interact``
    labels = [child.description for child in panel.children[:-1]]
    assert "devices online" in labels and "polling interval (seconds)" in labels
    panel.children[2].value = 10.0  # poll every 10 s instead of 5
    panel.update()
    assert panel.result.loc["polling", "HTTP requests per second"] == "100 K"
    sweep = transport_sweep("poll_interval_s", [1, 5, 30])
    assert list(sweep.index) == [1, 5, 30]
    assert sweep["polling: requests/s"].is_monotonic_decreasing
    assert sweep["WebSockets: requests/s"].nunique() == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="online_users must be positive"):
        TransportScenario(online_users=0)
    with pytest.raises(ValueError, match="poll_interval_s must be positive"):
        replace(TransportScenario(), poll_interval_s=0)
    with pytest.raises(ValueError, match="message_bytes must be a whole number"):
        replace(TransportScenario(), message_bytes=1.5)
    with pytest.raises(ValueError, match="at most 125"):
        replace(TransportScenario(), ping_payload_bytes=200)
    with pytest.raises(ValueError, match="unknown transport 'smoke signals'"):
        delivery_latency_quantile_ms(TransportScenario(), "smoke signals", 0.5)
    with pytest.raises(KeyError, match="unknown transport"):
        compare_transports()["pigeons"]
    with pytest.raises(ValueError, match="q must be a fraction"):
        delivery_latency_quantile_ms(TransportScenario(), "polling", 1.5)
    with pytest.raises(ValueError, match="unknown parameter 'speed'"):
        transport_sweep("speed", [1])
    with pytest.raises(ValueError, match="payload_bytes must be at least 0"):
        websocket_frame_bytes(-1, False)


def test_loopback_model() -> None:
    model = LoopbackLatencyModel(hop_ms=0.1, send_ms=1.0, batch_wait_min_ms=0.0, batch_wait_max_ms=2.0)
    prediction = model.predict()
    assert prediction.p50_ms == pytest.approx(0.2 + 1.0 + 1.0)
    assert prediction.p99_ms == pytest.approx(0.2 + 1.0 + 1.98)
    assert model.quantile_ms(0) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="batch_wait_max_ms"):
        LoopbackLatencyModel(hop_ms=0.1, send_ms=1, batch_wait_min_ms=3, batch_wait_max_ms=1)
    with pytest.raises(ValueError, match="hop_ms must not be negative"):
        LoopbackLatencyModel(hop_ms=-1, send_ms=1)
