"""The vectorised cost model, its formulas, the exercise check and the timeline helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatdesign.presence import (
    PresenceCostModel,
    PresenceCostResult,
    PresenceCostSimulation,
    batched_push_ceiling,
    check_online_only_answer,
    count_flaps,
    draw_friend_counts,
    gateway_write_rate,
    heartbeat_times,
    heartbeat_write_rate,
    naive_push_rate,
    online_only_push_rate,
    simulate_presence_cost,
    status_timeline,
    window_cost_table,
    window_sweep,
)
from chatdesign.units import format_count

SMALL = PresenceCostModel(users=3_000, duration_s=300, seed=7)


@pytest.fixture(scope="module")
def small_result() -> PresenceCostResult:
    return simulate_presence_cost(SMALL)


def test_strategies_are_ordered_and_batching_saves_ten_times(small_result: PresenceCostResult) -> None:
    r = small_result
    assert r.batched_pushes_per_s < r.online_only_pushes_per_s < r.naive_pushes_per_s
    assert r.naive_to_batched_ratio >= 10
    assert r.batched_bytes_per_s < r.online_only_bytes_per_s
    assert list(r.to_frame().index) == ["naive", "online-only", "tiered + batched"]


def test_simulation_agrees_with_the_formulas(small_result: PresenceCostResult) -> None:
    r = small_result
    churn = SMALL.changes_per_user_per_s
    assert r.changes_per_s == pytest.approx(SMALL.users * churn, rel=0.15)
    assert r.mean_online_users == pytest.approx(SMALL.users * SMALL.online_fraction, rel=0.15)
    expected_online = online_only_push_rate(SMALL.users, r.mean_friends, SMALL.online_fraction, churn)
    assert r.online_only_pushes_per_s == pytest.approx(expected_online, rel=0.3)


def test_staleness_stays_inside_each_tier_bound(small_result: PresenceCostResult) -> None:
    frame = small_result.staleness_frame()
    assert (frame["max_staleness_s"] <= frame["max_delay_s"]).all()
    assert (frame["mean_staleness_s"] > 0).all()


def test_same_seed_same_answer_and_naive_grows_with_users() -> None:
    a = simulate_presence_cost(PresenceCostModel(users=500, duration_s=60, seed=1))
    b = simulate_presence_cost(PresenceCostModel(users=500, duration_s=60, seed=1))
    assert a == b
    small = simulate_presence_cost(PresenceCostModel(users=2_000, duration_s=300, seed=1))
    big = simulate_presence_cost(PresenceCostModel(users=20_000, duration_s=300, seed=1))
    assert big.naive_pushes_per_s > 5 * small.naive_pushes_per_s
    assert "naive/batched" in repr(a)


def test_friend_counts_are_heavy_tailed_and_capped() -> None:
    model = PresenceCostModel(users=50_000, mean_friends=50, max_friends=5_000)
    counts = draw_friend_counts(model, np.random.default_rng(0))
    assert counts.min() >= 1 and counts.max() <= 5_000
    assert np.median(counts) < counts.mean()  # a long right tail
    assert counts.mean() == pytest.approx(50, rel=0.25)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"users": 0}, "at least 1"),
        ({"users": 2.5}, "users must be a whole number"),
        ({"online_fraction": 1.0}, "online_fraction"),
        ({"friends_tail_alpha": 1.0}, "friends_tail_alpha"),
        ({"very_important_delay_s": 300.0}, "may not wait longer"),
        ({"tick_s": 0}, "tick_s"),
        ({"mean_friends": 10_000}, "mean_friends"),
    ],
)
def test_bad_models_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PresenceCostModel(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a PresenceCostModel"):
        simulate_presence_cost({"users": 5})  # type: ignore[arg-type]


def test_results_refuse_impossible_numbers(small_result: PresenceCostResult) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="naive_pushes_per_s must not be negative"):
        replace(small_result, naive_pushes_per_s=-1.0)
    nothing_sent = replace(small_result, batched_pushes_per_s=0.0)
    assert nothing_sent.naive_to_batched_ratio == math.inf
    with pytest.raises(ValueError, match="mean_friends must be a finite number"):
        PresenceCostModel(mean_friends=math.nan)


def test_formulas() -> None:
    assert naive_push_rate(1e6, 100, 1e-4) == pytest.approx(10_000)
    assert online_only_push_rate(1e6, 100, 0.1, 1e-4) == pytest.approx(1_000)
    with pytest.raises(ValueError, match="online_fraction"):
        online_only_push_rate(1e6, 100, 1.5, 1e-4)
    with pytest.raises(ValueError, match="users"):
        naive_push_rate(-1, 100, 1e-4)


def test_exercise_check_names_the_usual_mistakes() -> None:
    args = {"users": 1e6, "mean_friends": 100, "online_fraction": 0.1, "logins_per_user_per_day": 4}
    expected = 1e6 * 8 / 86_400 * 100 * 0.1
    assert check_online_only_answer(expected, **args).passed
    naive = check_online_only_answer(expected * 10, **args)
    assert not naive.passed and "naive fan-out" in naive.explanation
    half = check_online_only_answer(expected / 2, **args)
    assert not half.passed and "two changes" in half.explanation
    other = check_online_only_answer(1.0, **args)
    assert not other.passed and "86,400" in other.explanation


def test_heartbeat_times_jitter_and_drops() -> None:
    exact = heartbeat_times(30, 5)
    assert exact.tolist() == [0, 5, 10, 15, 20, 25]
    late = heartbeat_times(30, 5, jitter_s=2, seed=3)
    assert ((late - exact >= 0) & (late - exact <= 2)).all()
    assert heartbeat_times(1000, 5, drop_probability=0.5, seed=3).size < 150
    with pytest.raises(ValueError, match="drop_probability"):
        heartbeat_times(30, 5, drop_probability=1.0)
    with pytest.raises(ValueError, match="interval_s must be positive"):
        heartbeat_times(30, 0)


def test_status_timeline_columns_and_errors() -> None:
    timeline = status_timeline([0.0, 5.0], until_s=40)
    assert list(timeline.columns) == ["time_s", "status", "level", "heartbeats"]
    assert timeline.loc[timeline["time_s"] == 34, "status"].item() == "online"
    assert timeline.loc[timeline["time_s"] == 35, "status"].item() == "offline"
    with pytest.raises(ValueError, match="finite and ≥ 0"):
        status_timeline([-1.0], until_s=10)
    with pytest.raises(ValueError, match="until_s"):
        status_timeline([1.0], until_s=math.nan)
    with pytest.raises(ValueError, match="expected a frame from status_timeline"):
        count_flaps(timeline.drop(columns="level"))


def test_simulation_steps_one_tick_at_a_time() -> None:
    model = PresenceCostModel(users=1_000, warmup_s=10, duration_s=200, seed=3)
    simulation = PresenceCostSimulation(model)
    with pytest.raises(ValueError, match="warm-up ticks"):
        simulation.result()
    pushed = sum(simulation.step() for _ in range(model.ticks))
    assert simulation.ticks_done == model.ticks == 210
    assert repr(simulation) == "PresenceCostSimulation(users=1000, tick=210)"
    assert simulation.result() == simulate_presence_cost(model)
    assert pushed >= simulation.result().batched_pushes_per_s * model.duration_s


def test_exercise_check_waits_for_an_answer_and_never_shows_the_expected_value() -> None:
    args = {"users": 1e6, "mean_friends": 100, "online_fraction": 0.1, "logins_per_user_per_day": 4}
    expected = 1e6 * 8 / 86_400 * 100 * 0.1
    unanswered = check_online_only_answer(None, **args)
    assert not unanswered.passed and "not answered yet" in unanswered.explanation and "hint" in unanswered.explanation
    per_day = check_online_only_answer(expected * 86_400, **args)
    assert not per_day.passed and "per day" in per_day.explanation
    for wrong in (expected * 10, expected / 2, expected * 86_400, 1.0, expected * 3):
        verdict = check_online_only_answer(wrong, **args)
        assert not verdict.passed
        assert format_count(expected) not in verdict.explanation.replace(format_count(wrong), "")


def test_heartbeat_writes_dwarf_pushes_and_the_gateway_design_cuts_them() -> None:
    assert heartbeat_write_rate(5e6, 5.0) == pytest.approx(1e6)  # issue 14: ≈ 1 M/s for 5 M connected
    assert gateway_write_rate(5e6, 10_000.0, 60.0) == pytest.approx(10_000 + 5e6 / 60)
    assert batched_push_ceiling(1_000, 5.0) == pytest.approx(200)
    with pytest.raises(ValueError, match="heartbeat_interval_s must be positive"):
        heartbeat_write_rate(1e6, 0)
    with pytest.raises(ValueError, match="refresh_s"):
        gateway_write_rate(1e6, 1.0, math.inf)
    with pytest.raises(ValueError, match="store_refresh_s must be at least"):
        PresenceCostModel(store_refresh_s=1.0)


def test_result_reports_writes_and_the_push_ceiling(small_result: PresenceCostResult) -> None:
    r = small_result
    assert r.heartbeat_writes_per_s == pytest.approx(r.mean_online_users / SMALL.heartbeat_interval_s)
    assert r.heartbeat_writes_per_s > r.batched_pushes_per_s
    assert r.gateway_writes_per_s < r.heartbeat_writes_per_s
    assert r.batched_pushes_per_s <= r.push_ceiling_per_s  # at most one push per viewer per shortest window
    assert r.others_push_ceiling_per_s < r.push_ceiling_per_s
    frame = r.writes_frame()
    assert list(frame.index) == ["every heartbeat writes", "connection server writes"]
    assert frame["store_writes_per_s"].iloc[0] > frame["store_writes_per_s"].iloc[1]


def test_batched_pushes_approach_the_ceiling_as_friend_lists_grow() -> None:
    few = simulate_presence_cost(PresenceCostModel(users=1_000, mean_friends=10, duration_s=200, seed=2))
    many = simulate_presence_cost(PresenceCostModel(users=1_000, mean_friends=400, duration_s=200, seed=2))
    assert many.naive_pushes_per_s > 20 * few.naive_pushes_per_s
    assert many.batched_pushes_per_s <= many.push_ceiling_per_s
    share_few = few.batched_pushes_per_s / few.others_push_ceiling_per_s
    share_many = many.batched_pushes_per_s / many.others_push_ceiling_per_s
    assert share_many > 2 * share_few


def test_window_panel_and_its_sweep_show_the_effect_of_each_control() -> None:
    table = window_cost_table(5.0, 120.0, seed=1)
    assert list(table.columns)[-1] == "mean_staleness_s"
    sweep = window_sweep(very_important_delays_s=(5.0,), others_delays_s=(30.0, 240.0), seed=1)
    ordinary = sweep.loc["ordinary window"]["batched pushes/s"]
    assert ordinary.iloc[0] > ordinary.iloc[1]  # a longer window, fewer pushes
    assert len(sweep) == 3
