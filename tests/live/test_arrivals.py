"""The shared arrival model: scenario validation, the herd, flash crowds, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from chatdesign.live import (
    HERD_SPREAD,
    LiveScenario,
    SegmentArrivals,
    exact_segments,
    path_delays,
    segment_arrivals,
)
from chatdesign.live.topology import build_topology


def arrivals_of(scenario: LiveScenario) -> list[SegmentArrivals]:
    delays = path_delays(build_topology(scenario.pops, seed=scenario.seed))
    return list(segment_arrivals(scenario, delays))


def test_every_viewer_asks_once_per_segment_after_publication() -> None:
    scenario = LiveScenario(viewers=500, duration_s=5, pops=4, seed=1)
    segments = arrivals_of(scenario)
    assert [a.segment for a in segments] == [0, 1, 2, 3, 4]
    for a in segments:
        assert len(a.send_s) == 500
        assert a.publish_s == (a.segment + 1) * 1.0
        assert a.send_s.min() >= a.publish_s
        assert a.send_s.max() < a.publish_s + scenario.herd_span_s
        assert np.all(np.diff(a.pop) >= 0)  # grouped by PoP
        assert list(np.bincount(a.pop, minlength=4)) == list(a.pop_counts)


def test_the_herd_spreads_over_a_share_of_the_playlist_refresh() -> None:
    scenario = LiveScenario(viewers=20_000, duration_s=3, segment_s=3.0, pops=2, jitter_s=0.0)
    assert scenario.refresh_s == 3.0
    assert scenario.herd_spread_s == pytest.approx(HERD_SPREAD * 3.0)
    delay = (lambda a: a.send_s - a.publish_s)(arrivals_of(scenario)[0])
    assert delay.max() < scenario.herd_spread_s
    # uniform over the spread: each fifth holds a fifth of the players
    fifths = np.histogram(delay, bins=5, range=(0, scenario.herd_spread_s))[0] / 20_000
    assert np.allclose(fifths, 0.2, atol=0.02)
    slower = LiveScenario(viewers=10, duration_s=3, segment_s=3.0, playlist_refresh_s=1.5)
    assert slower.herd_spread_s == pytest.approx(HERD_SPREAD * 1.5)
    assert LiveScenario(viewers=10, duration_s=3, herd_window_s=0.3).herd_spread_s == 0.3


def test_clock_offsets_widen_the_herd() -> None:
    plain = LiveScenario(viewers=5_000, duration_s=1, pops=2, jitter_s=0.0)
    offset = LiveScenario(viewers=5_000, duration_s=1, pops=2, jitter_s=0.0, clock_offset_s=0.5)
    spread = [np.ptp(arrivals_of(s)[0].send_s) for s in (plain, offset)]
    assert spread[0] < plain.herd_spread_s < 0.5 < spread[1] < offset.herd_span_s
    assert offset.playlist_requests_per_viewer_s == 1.0


def test_segments_are_counted_in_decimal_arithmetic() -> None:
    assert LiveScenario(viewers=10, duration_s=1.0, segment_s=0.1, jitter_s=0.0).segments == 10
    assert exact_segments(0.3, 0.1) == 3
    assert exact_segments(7.5, 2.0) == 3
    assert exact_segments(0.29, 0.1) == 2


def test_traffic_seed_keeps_the_map_and_redraws_the_traffic() -> None:
    base = LiveScenario(viewers=300, duration_s=2, pops=3, seed=4)
    same = arrivals_of(LiveScenario(viewers=300, duration_s=2, pops=3, seed=4, traffic_seed=4))
    other = arrivals_of(LiveScenario(viewers=300, duration_s=2, pops=3, seed=4, traffic_seed=5))
    assert np.array_equal(arrivals_of(base)[0].send_s, same[0].send_s)
    assert not np.array_equal(same[0].send_s, other[0].send_s)


def test_the_biggest_pop_gets_the_most_viewers() -> None:
    a = arrivals_of(LiveScenario(viewers=20_000, duration_s=1, pops=5))[0]
    assert int(np.argmax(a.pop_counts)) == 0
    assert a.pop_counts[0] / 20_000 == pytest.approx(1 / sum(1 / k for k in range(1, 6)), rel=0.05)


def test_a_flash_crowd_grows_segment_by_segment() -> None:
    segments = arrivals_of(LiveScenario(viewers=1_000, duration_s=10, pops=3, ramp_s=8.0))
    sizes = [len(a.send_s) for a in segments]
    assert sizes == sorted(sizes)
    assert sizes[0] < 200 and sizes[-1] == 1_000


def test_same_seed_same_arrivals_other_seed_differs() -> None:
    one = arrivals_of(LiveScenario(viewers=100, duration_s=2, pops=3, seed=4))
    two = arrivals_of(LiveScenario(viewers=100, duration_s=2, pops=3, seed=4))
    other = arrivals_of(LiveScenario(viewers=100, duration_s=2, pops=3, seed=5))
    assert all(np.array_equal(a.send_s, b.send_s) for a, b in zip(one, two, strict=True))
    assert not np.array_equal(one[0].send_s, other[0].send_s)


def test_scenario_derived_numbers() -> None:
    scenario = LiveScenario(viewers=10, duration_s=7.5, segment_s=2.0, pop_capacity_rps=101,
                            bitrate_kbps=800)
    assert scenario.segments == 3
    assert scenario.capacity_per_segment == 202
    assert scenario.segment_bytes == 200_000
    assert scenario.publish_s(0) == 2.0
    assert LiveScenario(viewers=1, duration_s=1).capacity_per_segment is None


def test_delays_for_another_topology_are_refused() -> None:
    scenario = LiveScenario(viewers=10, duration_s=1, pops=3)
    with pytest.raises(ValueError, match="delays describe 4 PoPs"):
        next(segment_arrivals(scenario, path_delays(build_topology(4))))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"viewers": -5}, "viewers must be at least 1"),
        ({"viewers": 0}, "viewers must be at least 1"),
        ({"viewers": 10.5}, "viewers must be a whole number"),
        ({"duration_s": 0}, "duration_s must be positive"),
        ({"duration_s": float("inf")}, "duration_s must be a finite number"),
        ({"segment_s": 0}, "segment_s must be positive"),
        ({"segment_s": 0.05, "herd_window_s": 0.01}, "segment_s must be at least 0.1"),
        ({"duration_s": 0.5}, "must hold at least one segment"),
        ({"pops": 0}, "pops must be at least 1"),
        ({"origin_caches": 0}, "origin_caches must be at least 1"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"coalescing": 1}, "coalescing must be True or False"),
        ({"push": "yes"}, "push must be True or False"),
        ({"pop_capacity_rps": 0}, "pop_capacity_rps must be positive"),
        ({"pop_capacity_rps": "lots"}, "'derived' or None"),
        ({"queueing": "yes"}, "queueing must be True or False"),
        ({"push_to": "some"}, "push_to must be 'all' or 'watched'"),
        ({"overflow": "drop"}, "overflow must be 'spill' or 'refuse'"),
        ({"herd_window_s": -0.1}, "herd_window_s must not be negative"),
        ({"herd_window_s": 0.99}, "must be shorter than segment_s"),
        ({"herd_spread": 1.5}, "herd_spread must be between 0 and 1"),
        ({"herd_spread": 0.5, "clock_offset_s": 0.5}, "must be shorter than segment_s"),
        ({"clock_offset_s": -1}, "clock_offset_s must not be negative"),
        ({"playlist_refresh_s": 0}, "playlist_refresh_s must be positive"),
        ({"playlist_refresh_s": 2.0}, "must not exceed segment_s"),
        ({"traffic_seed": -1}, "traffic_seed must be at least 0"),
        ({"duration_s": 0.3, "segment_s": 0.31, "jitter_s": 0.0}, "at least one segment"),
        ({"jitter_s": -1}, "jitter_s must not be negative"),
        ({"ramp_s": -1}, "ramp_s must not be negative"),
        ({"bitrate_kbps": 0}, "bitrate_kbps must be positive"),
        ({"zipf_exponent": -1}, "zipf_exponent must not be negative"),
    ],
)
def test_bad_scenarios_are_refused(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"viewers": 100, "duration_s": 10}
    with pytest.raises(ValueError, match=message):
        LiveScenario(**{**base, **kwargs})  # type: ignore[arg-type]


def test_arrival_batches_check_their_lengths() -> None:
    with pytest.raises(ValueError, match="disagree"):
        SegmentArrivals(0, 1.0, np.zeros(3), np.zeros(2, dtype=np.int64), np.array([3]))
