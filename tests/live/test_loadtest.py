"""Load tests: shapes, injected failures, SLO reports and replay."""

from __future__ import annotations

import numpy as np
import pytest

from chatdesign.live.faults import SlowLink
from chatdesign.live.loadtest import DEFAULT_SLOW_LINK, Scenario, Slo, check_slos, replay_log, run_scenario


def test_a_steady_run_meets_generous_slos() -> None:
    phases = run_scenario(Scenario(5_000, 6.0))
    assert [p.name for p in phases] == ["whole run"]
    report = check_slos(phases, Slo(p99_ms=500.0))
    assert report.passed
    assert "all passed" in repr(report)


def test_a_capacity_cut_is_reported_with_its_seconds() -> None:
    # capacity that holds before the cut and not after it
    scenario = Scenario(5_000, 8.0, failure="capacity_cut", fail_at_s=4.0, pop_capacity_rps=3_000,
                        capacity_factor=0.2)
    phases = run_scenario(scenario)
    assert [p.start_s for p in phases] == [0.0, 4.0]
    report = check_slos(phases, Slo(p99_ms=500.0))
    table = report.table
    assert table.loc["refused (before failure)", "passed"]
    assert not table.loc["refused (after capacity_cut)", "passed"]
    assert min(table.loc["refused (after capacity_cut)", "when_s"]) >= 4
    assert not report.passed


def test_pop_down_and_origin_cache_down_run_on_a_smaller_network() -> None:
    down = run_scenario(Scenario(2_000, 6.0, failure="pop_down", fail_at_s=3.0))
    assert down[1].result.scenario.pops == 19
    origin = run_scenario(Scenario(2_000, 6.0, failure="origin_cache_down", fail_at_s=3.0, origin_caches=2))
    assert origin[1].result.scenario.origin_caches == 1
    # the origin server sees one request per segment per origin cache with coalescing
    assert origin[1].result.origin_server_requests_per_segment <= origin[0].result.origin_server_requests_per_segment


def test_a_slowed_link_moves_latency_percentiles_and_the_slo_catches_it() -> None:
    scenario = Scenario(3_000, 8.0, failure="link_slowed", fail_at_s=4.0)
    assert scenario.slow_link == DEFAULT_SLOW_LINK
    before, after = run_scenario(scenario)
    assert after.name == "after link_slowed" and after.result.scenario.slow_link == DEFAULT_SLOW_LINK
    assert before.result.scenario.slow_link is None
    misses = ["origin_cache", "origin_server"]
    assert (after.result.latency.loc[misses, "p50_ms"] > before.result.latency.loc[misses, "p50_ms"]).all()
    assert after.result.latency.loc["all", "p99_ms"] > before.result.latency.loc["all", "p99_ms"]
    # a miss limit between the two phases' p99: only the slowed phase violates it, from fail_at_s
    rows = ["p99 miss latency (before failure)", "p99 miss latency (after link_slowed)"]
    measured = check_slos([before, after], Slo(p99_ms=1_000.0, miss_p99_ms=1e9)).table.loc[rows, "value"]
    assert measured.iloc[1] > measured.iloc[0]
    report = check_slos([before, after], Slo(p99_ms=1_000.0, miss_p99_ms=float(measured.mean())))
    table = report.table
    assert table.loc[rows[0], "passed"]
    assert not table.loc[rows[1], "passed"]
    assert table.loc[rows[1], "when_s"] == [4]
    assert "violated: p99 miss latency (after link_slowed)" in repr(report)
    # without the miss limit the default report has no such rows
    assert not any("miss" in row for row in check_slos([before, after]).table.index)


def test_a_slowed_link_at_some_pops_only() -> None:
    link = SlowLink("edge_origin", pops=(0,), delay_factor=10.0)
    before, after = run_scenario(Scenario(2_000, 6.0, failure="link_slowed", fail_at_s=3.0, pops=4, slow_link=link))
    first_ms = [phase.result.first_request_latency_ms for phase in (before, after)]
    assert first_ms[1] > first_ms[0]


def test_origin_load_slo() -> None:
    report = check_slos(run_scenario(Scenario(2_000, 5.0, origin_caches=3)), Slo(max_origin_server_rps=1.0))
    row = report.table.loc["origin server load (whole run)"]
    assert not row["passed"] and row["value"] > 1.0 and row["when_s"]


def test_replay_at_double_speed_halves_the_time() -> None:
    times = np.arange(0.0, 10.0, 0.01)  # 100 requests a second for 10 s
    normal, double = replay_log(times, 1.0, 150), replay_log(times, 2.0, 150)
    assert len(normal) == 10 and len(double) == 5
    assert int(double["requests"].sum()) == len(times)
    assert int(normal["over_capacity"].sum()) == 0
    assert int(double["over_capacity"].iloc[0]) == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "sine"}, "shape must be"),
        ({"failure": "meteor"}, "failure must be"),
        ({"failure": "pop_down", "fail_at_s": 0.5}, "at least 1 s before and after"),
        ({"failure": "capacity_cut", "fail_at_s": 2.0}, "needs a pop_capacity_rps"),
        ({"failure": "pop_down", "fail_at_s": 2.0, "pops": 2}, "at least 3 PoPs"),
        ({"failure": "link_slowed", "fail_at_s": 2.0, "slow_link": "edge_origin"}, "must be a SlowLink"),
        ({"failure": "link_slowed", "fail_at_s": 2.0, "pops": 3, "slow_link": SlowLink("edge_origin", pops=(4,))},
         "names PoP 4, but there are only 3"),
    ],
)
def test_bad_scenarios_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario(100, 5.0, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        replay_log(np.array([]), 1.0, 1.0)
    with pytest.raises(ValueError, match="miss_p99_ms must be positive"):
        Slo(miss_p99_ms=0.0)
