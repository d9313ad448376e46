"""chatdesign.estimation against the published figures, and every calculator's bad input."""

import math

import numpy as np
import pandas as pd
import pytest

from chatdesign import estimation as est
from chatdesign.units import per_period


def test_xu_twitter_traffic() -> None:
    """Xu vol. 1: 300 M MAU, 50 % daily, 2 posts a day → ~3,500 QPS average, ~7,000 peak."""
    traffic = est.estimate_traffic(300e6 * 0.5, 2, peak_factor=2)
    assert traffic.average_rps == pytest.approx(3_472.2, abs=0.1)
    assert round(traffic.average_rps, -2) == 3_500
    assert round(traffic.peak_rps, -3) == 7_000
    assert traffic.per_day == 300e6


@pytest.mark.parametrize(("rps", "per_month"), [(1, 2.5e6), (40, 100e6), (400, 1e9)])
def test_primer_conversion_guide(rps: float, per_month: float) -> None:
    """The primer rounds a month to 2.5 M s; the exact mean month is 5.2 % longer."""
    exact = per_period(rps, "month")
    assert exact == pytest.approx(per_month * 2_629_746 / 2.5e6)
    assert exact == pytest.approx(per_month, rel=0.06)
    traffic = est.estimate_traffic(rps * 86_400, 1)
    assert traffic.per_month == pytest.approx(exact)


def test_xu_twitter_storage() -> None:
    """10 % of 300 M daily posts carry 1 MB → 30 TB/day, ~55 PB over 5 years of 365 days."""
    storage = est.estimate_storage(300e6, 0, 5 * 365, media_fraction=0.1, media_bytes=1e6)
    assert storage.per_day_bytes == pytest.approx(30e12)
    assert storage.total_bytes == pytest.approx(54.75e15)
    assert round(storage.total_bytes / 1e15) == 55


def test_storage_counts_text_replicas_and_media() -> None:
    storage = est.estimate_storage(1_000, 100, 10, replication_factor=3, media_fraction=0.5, media_bytes=1_000)
    assert storage.text_per_day_bytes == 100_000
    assert storage.media_per_day_bytes == 500_000
    assert storage.total_bytes == 600_000 * 10 * 3


def test_traffic_broadcasts_over_arrays() -> None:
    users = np.array([1e6, 2e6, 4e6])
    traffic = est.estimate_traffic(users, 10, reads_per_write=5)
    np.testing.assert_allclose(traffic.peak_rps, users * 10 / 86_400 * 2)
    np.testing.assert_allclose(traffic.read_peak_rps, traffic.peak_rps * 5)
    frame = traffic.to_frame()
    assert list(frame["daily_active_users"]) == list(users)
    assert len(frame) == 3
    assert "array(shape=(3,)" in repr(traffic)


def test_reprs_read_like_an_estimate() -> None:
    assert repr(est.estimate_traffic(150e6, 2)) == (
        "TrafficEstimate(per_day=300 M, average_rps=3.47 K, peak_rps=6.94 K, read_peak_rps=6.94 K)"
    )
    assert "30 TB" in repr(est.estimate_storage(300e6, 0, 1825, media_fraction=0.1, media_bytes=1e6))
    assert repr(est.estimate_connections(1e6)) == "ConnectionEstimate(connections=1 M, memory=10 GB, servers=1)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"daily_active_users": -1, "actions_per_user_per_day": 1}, "daily_active_users must not be negative"),
        ({"daily_active_users": math.nan, "actions_per_user_per_day": 1}, "finite"),
        ({"daily_active_users": "many", "actions_per_user_per_day": 1}, "must be a number"),
        ({"daily_active_users": 10, "actions_per_user_per_day": 1, "peak_factor": 0.5}, "at least 1"),
        ({"daily_active_users": 10, "actions_per_user_per_day": 1, "peak_factor": 0}, "positive"),
        ({"daily_active_users": [1, -2], "actions_per_user_per_day": 1}, "negative"),
    ],
)
def test_traffic_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        est.estimate_traffic(**kwargs)  # type: ignore[arg-type]


def test_storage_bad_input() -> None:
    with pytest.raises(ValueError, match="media_fraction"):
        est.estimate_storage(1, 1, 1, media_fraction=1.5)
    with pytest.raises(ValueError, match="replication_factor must be positive"):
        est.estimate_storage(1, 1, 1, replication_factor=0)
    with pytest.raises(ValueError, match="retention_days"):
        est.estimate_storage(1, 1, -5)


def test_history_placement_trade_offs() -> None:
    comparison = est.compare_history_placement(
        users=1e6, messages_per_user_per_day=40, bytes_per_message=100, history_days=365, keep_last_n=1_000
    )
    everything = comparison[est.HistoryPlacement.SERVER_KEEPS_ALL]
    last_n = comparison[est.HistoryPlacement.SERVER_KEEPS_LAST_N]
    client = comparison[est.HistoryPlacement.CLIENT_ONLY]
    assert everything.server_bytes == pytest.approx(1e6 * 40 * 365 * 100)
    # 1 M users x 20 conversations / 2 members = 10 M conversations; 1,460 messages each.
    assert comparison.messages_per_conversation == pytest.approx(1_460)
    assert last_n.server_bytes == pytest.approx(10e6 * 1_000 * 100)
    assert last_n.lost_messages_per_user == pytest.approx(460 * 20)
    assert everything.lost_messages_per_user == 0
    assert client.server_bytes < last_n.server_bytes < everything.server_bytes
    assert client.lost_messages_per_user == pytest.approx(2 * 40 * 365 * 20 / 20 * 0.5 / 365)
    assert client.new_device_messages_per_conversation < everything.new_device_messages_per_conversation
    frame = comparison.to_frame()
    assert list(frame.index) == [p.value for p in est.HistoryPlacement]


def test_history_placement_keeps_all_when_n_exceeds_history() -> None:
    comparison = est.compare_history_placement(1_000, 1, 100, 30, keep_last_n=10_000)
    last_n = comparison[est.HistoryPlacement.SERVER_KEEPS_LAST_N]
    assert last_n.server_bytes == pytest.approx(comparison[est.HistoryPlacement.SERVER_KEEPS_ALL].server_bytes)
    assert last_n.lost_messages_per_user == 0


@pytest.mark.parametrize("keep_last_n", [0, 2.5, True])
def test_history_placement_bad_n(keep_last_n: object) -> None:
    with pytest.raises(ValueError, match="keep_last_n"):
        est.compare_history_placement(10, 1, 1, 1, keep_last_n=keep_last_n)  # type: ignore[arg-type]


def test_retention_archive_and_delete() -> None:
    archive = est.estimate_retention(1e9, retain_days=90, horizon_days=365, cold_compression_ratio=4)
    assert archive.hot_bytes == 90e9
    assert archive.cold_bytes == pytest.approx(275e9 / 4)
    assert archive.deleted_bytes == 0
    delete = est.estimate_retention(1e9, 90, 365, action="delete")
    assert delete.cold_bytes == 0
    assert delete.deleted_bytes == 275e9
    young = est.estimate_retention(1e9, 90, 30)
    assert (young.hot_bytes, young.cold_bytes) == (30e9, 0)
    assert len(archive.to_frame()) == 1
    with pytest.raises(ValueError, match="unknown retention action"):
        est.estimate_retention(1, 1, 1, action="shred")
    with pytest.raises(ValueError, match="at least 1"):
        est.estimate_retention(1, 1, 1, cold_compression_ratio=0.5)


def test_read_share_is_a_distribution() -> None:
    assert est.read_share_by_age(0, 30, 7, 30) == pytest.approx(1)
    assert est.read_share_by_age(0, 7, 7, 1e9) == pytest.approx(0.5)
    shares = est.read_share_by_age(np.array([0, 7, 14]), np.array([7, 14, 21]), 7, 1e9)
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.125])


def test_hot_cold_plan() -> None:
    plan = est.plan_hot_cold(per_day_bytes=1e12, history_days=730, read_half_life_days=3)
    assert plan.total_bytes == pytest.approx(730e12)
    assert sum(plan.read_share_per_tier) == pytest.approx(1)
    memory, ssd, hdd, cold = plan.bytes_per_tier
    assert (memory, ssd, hdd, cold) == (1e12, 29e12, 335e12, 365e12)
    # The newest 1 % of the data (memory + SSD is 4 %) serves almost all reads.
    assert plan.read_share_per_tier[0] + plan.read_share_per_tier[1] > 0.99
    assert plan.monthly_cost < plan.single_tier_monthly_cost
    frame = plan.to_frame()
    assert list(frame.index) == ["memory", "ssd", "hdd", "object storage"]
    assert frame["monthly_cost_usd"].sum() == pytest.approx(plan.monthly_cost)
    assert "total $" in repr(plan)


def test_hot_cold_bad_tiers() -> None:
    with pytest.raises(ValueError, match="ordered"):
        est.plan_hot_cold(1, 10, tiers=[est.StorageTier("a", 1, 10), est.StorageTier("b", 1, 5)])
    with pytest.raises(ValueError, match=r"math\.inf"):
        est.plan_hot_cold(1, 10, tiers=[est.StorageTier("a", 1, 10)])
    with pytest.raises(ValueError, match="empty"):
        est.plan_hot_cold(1, 10, tiers=[])
    with pytest.raises(ValueError, match="max_age_days"):
        est.StorageTier("a", 1, 0)
    with pytest.raises(ValueError, match="price_per_gb_month"):
        est.StorageTier("a", -1, 1)


def test_xu_connections() -> None:
    """Xu: 1 M concurrent connections x 10 KB of server memory each = 10 GB."""
    estimate = est.estimate_connections(1e6, memory_per_connection_bytes=10_000)
    assert estimate.memory_bytes == 10e9
    assert est.estimate_connections(2.5e6, connections_per_server=1e6, devices_per_user=2).servers == 5
    with pytest.raises(ValueError, match="connections_per_server must be positive"):
        est.estimate_connections(10, connections_per_server=0)


def test_bandwidth() -> None:
    estimate = est.estimate_bandwidth(1_000, 125, fanout=20)
    assert estimate.ingress_bps == 1e6
    assert estimate.egress_bps == 20e6
    assert repr(estimate) == "BandwidthEstimate(ingress=1 Mbps, egress=20 Mbps)"
    assert isinstance(estimate.to_frame(), pd.DataFrame)
    with pytest.raises(ValueError, match="single number"):
        est.estimate_bandwidth(np.array([1.0, 2.0]), 1)  # type: ignore[arg-type]


def test_messenger_estimate_ties_the_calculators_together() -> None:
    estimate = est.estimate_messenger(
        50e6, 40, bytes_per_message=100, receivers_per_message=5, media_fraction=0.1, media_bytes=10_000
    )
    assert estimate.traffic.per_day == 2e9
    assert estimate.storage.per_day_bytes == pytest.approx(2e9 * (100 + 1_000))
    assert estimate.connections.connections == 5e6
    assert estimate.bandwidth.egress_bps == pytest.approx(estimate.bandwidth.ingress_bps * 5)
    assert estimate.bandwidth.ingress_bps == pytest.approx(float(estimate.traffic.peak_rps) * 1_100 * 8)
    summary = estimate.summary()
    assert summary["messages per day"] == "2 B"
    assert "peak egress" in estimate.to_frame().index
    with pytest.raises(ValueError, match="online_share"):
        est.estimate_messenger(1, 1, online_share=2)


def test_placement_and_retention_reprs_are_readable() -> None:
    comparison = est.compare_history_placement(1e6, 40, 100, 365)
    text = repr(comparison)
    assert text.count("PlacementEstimate(") == 3
    assert "server keeps all: server 1.46 TB" in text
    assert repr(est.estimate_retention(1e9, 90, 365)) == (
        "RetentionEstimate(archive after 90 days, at day 365: hot 90 GB, cold 91.7 GB, deleted 0 B)"
    )


def test_connection_servers_with_headroom() -> None:
    full = est.estimate_connections(5e6)
    half = est.estimate_connections(5e6, target_utilisation=0.5)
    assert (full.servers, half.servers) == (5, 10)
    assert half.memory_bytes == full.memory_bytes
    with pytest.raises(ValueError, match="target_utilisation"):
        est.estimate_connections(5e6, target_utilisation=0)
    with pytest.raises(ValueError, match="target_utilisation"):
        est.estimate_connections(5e6, target_utilisation=1.5)
