"""Load prediction: the growth fit, history, seasonality, MAPE and the push decision."""

from __future__ import annotations

import numpy as np
import pytest

from chatdesign.live import simulate_live
from chatdesign.live.forecast import (
    GrowthFit,
    blend_forecast,
    diurnal_pop_load,
    evaluate_forecasts,
    fit_growth,
    history_forecast,
    mape,
    push_cost,
    push_decision,
    seasonal_forecast,
    synthetic_streams,
)


def test_growth_fit_recovers_a_noiseless_curve() -> None:
    truth = GrowthFit(peak=10_000, tau_s=300.0, rmse=0.0)
    times = np.arange(30.0, 301.0, 30.0)
    fit = fit_growth(times, truth.predict(times), tau_grid_s=np.array([100.0, 300.0, 900.0]))
    assert fit.tau_s == 300.0
    assert fit.peak == pytest.approx(10_000)
    assert float(fit.predict(3000.0)) == pytest.approx(10_000 * (1 - np.exp(-10)))


def test_history_blend_and_mape_by_hand() -> None:
    assert history_forecast([100, 300, 200]) == 200
    fit = GrowthFit(peak=1000.0, tau_s=100.0, rmse=0.0)
    seen = 1 - np.exp(-1.0)
    assert blend_forecast(fit, 400.0, 100.0) == pytest.approx(seen * 1000 + (1 - seen) * 400)
    assert mape([100, 200], [110, 180]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="above 0"):
        mape([0, 1], [1, 1])
    with pytest.raises(ValueError, match="at least one past peak"):
        history_forecast([])
    with pytest.raises(ValueError, match="at least two"):
        fit_growth([1.0], [1.0])


def test_on_held_out_streams_seeing_more_of_the_curve_helps() -> None:
    streams = synthetic_streams(30, seed=7)
    early = evaluate_forecasts(streams, observe_s=120)
    later = evaluate_forecasts(streams, observe_s=1200)
    assert later.loc["growth fit", "mape"] < early.loc["growth fit", "mape"]
    assert later.loc["growth fit", "mape"] < later.loc["history", "mape"]
    assert (early["mape"] > 0).all()
    # the same seed gives the same streams
    assert np.array_equal(streams.iloc[0]["viewers"], synthetic_streams(30, seed=7).iloc[0]["viewers"])


def test_seasonal_forecast_beats_a_flat_mean() -> None:
    load = diurnal_pop_load(pops=4, days=8, seed=3)
    predicted = seasonal_forecast(load)
    actual = load.iloc[-24:]
    flat = np.broadcast_to(load.iloc[:-24].mean().to_numpy(), actual.shape)
    assert mape(actual.to_numpy(), predicted.to_numpy()) < mape(actual.to_numpy(), flat)
    with pytest.raises(ValueError, match="need 8 days"):
        seasonal_forecast(load.iloc[:100])


def test_push_decision_and_its_cost_from_a_pull_run() -> None:
    run = simulate_live(30, 4.0, pops=20, seed=1)
    watched = run.pop_load["requests"].to_numpy() > 0
    assert not watched.all()  # 30 viewers over 20 Zipf-weighted PoPs leave some PoPs idle
    perfect = push_cost(run, watched)
    assert perfect["idle_push_bytes"] == 0
    assert perfect["missed_origin_requests"] == 0
    assert perfect["origin_requests_avoided"] == run.origin_cache_requests
    everywhere = push_cost(run, np.ones(20, dtype=bool))
    assert everywhere["idle_push_bytes"] == (~watched).sum() * run.segments * run.scenario.segment_bytes
    nowhere = push_cost(run, push_decision(np.zeros(20)))
    assert nowhere["missed_origin_requests"] == run.origin_cache_requests
    with pytest.raises(ValueError, match="without push"):
        push_cost(simulate_live(30, 2.0, push=True), watched)
    with pytest.raises(ValueError, match="one entry per PoP"):
        push_cost(run, watched[:5])


def test_peak_exercise_checker() -> None:
    from chatdesign.live.forecast import check_peak_forecast

    times = np.arange(60.0, 301.0, 60.0)
    viewers = GrowthFit(8_000, 400.0, 0.0).predict(times)
    assert "not answered yet" in check_peak_forecast(None, times, viewers).explanation
    assert check_peak_forecast(8_000, times, viewers).passed
    latest = check_peak_forecast(float(viewers[-1]), times, viewers)
    assert not latest.passed and "latest count" in latest.explanation
    assert "too high" in check_peak_forecast(40_000, times, viewers).explanation
