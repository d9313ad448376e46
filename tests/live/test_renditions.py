"""Renditions: a ladder of bit rates, each its own cache key; egress in Gbps and dollars."""

from __future__ import annotations

import pytest

from chatdesign.live import (
    PENSIEVE_LADDER_KBPS,
    USD_PER_GB,
    egress_cost_per_month,
    simulate_live,
    simulate_renditions,
)

SHARES = dict(zip(PENSIEVE_LADDER_KBPS, (0.1, 0.2, 0.3, 0.2, 0.15, 0.05), strict=True))


def test_each_rendition_is_its_own_cache_key() -> None:
    result = simulate_renditions(20_000, 12, SHARES, segment_s=3.0)
    frame = result.to_frame()
    assert list(frame.index[:-1]) == [f"{kbps:g} kbps" for kbps in PENSIEVE_LADDER_KBPS]
    assert frame.loc["total", "viewers"] == 20_000
    assert frame.loc["total", "requests"] == 20_000 * 4
    # with coalescing, every rendition costs each watched PoP one fetch per segment
    for kbps, one in result.results.items():
        active = int((one.pop_load["viewers_peak"] > 0).sum())
        assert frame.loc[f"{kbps:g} kbps", "origin_cache_requests"] == active * 4
        assert frame.loc[f"{kbps:g} kbps", "origin_server_requests"] == 4
    single = simulate_live(20_000, 12, segment_s=3.0)
    assert frame.loc["total", "origin_cache_requests"] > 5 * single.origin_cache_requests
    assert frame.loc["total", "edge_hit_ratio"] < single.edge_hit_ratio


def test_viewers_follow_the_time_shares_and_egress_adds_up() -> None:
    result = simulate_renditions(50_000, 6, SHARES, seed=2)
    frame = result.to_frame()
    for kbps, share in SHARES.items():
        assert frame.loc[f"{kbps:g} kbps", "viewers"] / 50_000 == pytest.approx(share, abs=0.01)
    expected_gbps = sum(frame.loc[f"{k:g} kbps", "viewers"] * k for k in SHARES) * 1e3 / 1e9
    assert frame.loc["total", "egress_gbps"] == pytest.approx(expected_gbps)
    assert frame.loc["total", "usd_per_month"] == pytest.approx(
        egress_cost_per_month(expected_gbps))
    assert "6 renditions" in repr(result)


def test_egress_cost_is_gigabytes_times_the_stated_price() -> None:
    # 8 Gbps = 1 GB/s; a 30-day month is 2,592,000 s
    assert egress_cost_per_month(8.0, usd_per_gb=1.0) == pytest.approx(2_592_000)
    assert egress_cost_per_month(8.0) == pytest.approx(2_592_000 * USD_PER_GB)
    with pytest.raises(ValueError, match="gbps must not be negative"):
        egress_cost_per_month(-1)


@pytest.mark.parametrize(
    ("renditions", "options", "message"),
    [
        ({}, {}, "non-empty mapping"),
        ({300.0: 0.5, 750.0: 0.4}, {}, "must sum to 1"),
        ({0.0: 1.0}, {}, "bit rate \\(kbps\\) must be positive"),
        ({300.0: 1.0}, {"queueing": True}, "queueing cannot be set per rendition"),
        ({300.0: 1.0}, {"pop_capacity_rps": 100.0}, "pop_capacity_rps cannot be set"),
    ],
)
def test_bad_ladders_are_refused(renditions: dict[float, float], options: dict[str, object],
                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_renditions(100, 3, renditions, **options)
