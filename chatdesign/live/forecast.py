"""Predicting a live stream's audience before it arrives, and what the prediction is worth.

Theory of operation. Caches cannot be warmed ahead of a live stream, so the delivery network
must guess where the viewers will be. Three predictors, each a plain function:

- :func:`fit_growth`: from the first minutes of a stream, fit the saturating curve
  ``viewers(t) = peak x (1 - exp(-t / tau))`` (least squares; ``peak`` in closed form for each
  ``tau`` on a log grid) and read off the audience at any later time.
- :func:`history_forecast`: the broadcaster's past peaks (their median: robust to one viral day).
- :func:`blend_forecast`: the growth fit weighted by how much of the curve has been seen,
  the history for the rest.

:func:`synthetic_streams` makes seeded streams to test them on (a broadcaster's typical peak,
log-normal day-to-day variation, a growth time constant, Poisson-like noise);
:func:`evaluate_forecasts` measures each predictor's MAPE on held-out streams.

PoP load follows the day: :func:`diurnal_pop_load` makes seeded per-hour load with a daily cycle
and :func:`seasonal_forecast` predicts a day as the mean of the same hour on the previous days.

The decision: :func:`push_decision` picks the PoPs whose predicted viewers per segment reach a
threshold; :func:`push_cost` prices a decision against what really happened in a
:func:`~chatdesign.live.simulate_live` run without push: origin-cache requests avoided at the
PoPs pushed to (their first request per segment would have gone upstream) against bytes pushed
to PoPs nobody watched from. ``simulate_live`` pushes to all PoPs or to the watched ones only,
so a subset is priced from its per-PoP results rather than simulated directly.

Taught in ``notebooks/10_load_prediction_and_testing.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.exercises import CheckResult
from chatdesign.live.result import LiveResult

__all__ = [
    "GrowthFit",
    "blend_forecast",
    "check_peak_forecast",
    "diurnal_pop_load",
    "evaluate_forecasts",
    "fit_growth",
    "history_forecast",
    "mape",
    "push_cost",
    "push_decision",
    "seasonal_forecast",
    "synthetic_streams",
]


@dataclass(frozen=True)
class GrowthFit:
    """``viewers(t) = peak x (1 - exp(-t / tau_s))``, fitted to the first minutes."""

    peak: float
    tau_s: float
    rmse: float

    def predict(self, time_s: float | np.ndarray) -> np.ndarray:
        """Predicted concurrent viewers at ``time_s`` (seconds since the stream started)."""
        t = np.asarray(time_s, dtype=float)
        result: np.ndarray = self.peak * (1 - np.exp(-t / self.tau_s))
        return result


def fit_growth(times_s: Sequence[float] | np.ndarray, viewers: Sequence[float] | np.ndarray,
               tau_grid_s: np.ndarray | None = None) -> GrowthFit:
    """Least-squares fit of the saturating curve to observed ``viewers`` at ``times_s``.

    For each ``tau`` on ``tau_grid_s`` (default 200 values from 10 s to 3 h, log-spaced) the best
    ``peak`` is ``Σ y f / Σ f²`` with ``f = 1 - exp(-t / tau)``; the pair with the smallest error
    wins. Raises ``ValueError`` for fewer than two points, unequal lengths, negative counts or
    a time not after 0.
    """
    t = np.asarray(times_s, dtype=float)
    y = np.asarray(viewers, dtype=float)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError("times_s and viewers must be one-dimensional and of equal length")
    if len(t) < 2:
        raise ValueError("fit_growth needs at least two observations")
    if not (np.isfinite(t).all() and np.isfinite(y).all()) or (t <= 0).any() or (y < 0).any():
        raise ValueError("times must be positive and viewers not negative (finite numbers)")
    grid = np.geomspace(10.0, 3 * 3600.0, 200) if tau_grid_s is None else np.asarray(tau_grid_s, dtype=float)
    f = 1 - np.exp(-t[None, :] / grid[:, None])  # taus x points
    peak = (f * y[None, :]).sum(axis=1) / (f * f).sum(axis=1)
    error = np.sqrt(((peak[:, None] * f - y[None, :]) ** 2).mean(axis=1))
    best = int(np.argmin(error))
    return GrowthFit(float(peak[best]), float(grid[best]), float(error[best]))


def history_forecast(past_peaks: Sequence[float] | np.ndarray) -> float:
    """The broadcaster's typical peak: the median of past peaks. ``ValueError`` if none."""
    peaks = np.asarray(past_peaks, dtype=float)
    if peaks.ndim != 1 or len(peaks) == 0:
        raise ValueError("history_forecast needs at least one past peak")
    if not np.isfinite(peaks).all() or (peaks < 0).any():
        raise ValueError("past peaks must be finite and not negative")
    return float(np.median(peaks))


def blend_forecast(fit: GrowthFit, history_peak: float, observed_s: float) -> float:
    """Predicted peak: the fit's ``peak`` weighted by ``1 - exp(-observed / tau)`` (how much of
    the curve was seen), the history for the rest."""
    check_number(history_peak, "history_peak", minimum=0)
    check_number(observed_s, "observed_s", positive=True)
    seen = 1 - np.exp(-observed_s / fit.tau_s)
    return float(seen * fit.peak + (1 - seen) * history_peak)


def mape(actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error, as a fraction (0.1 = 10 %). Actual values must be > 0."""
    a, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if a.shape != p.shape or a.size == 0:
        raise ValueError("actual and predicted must be non-empty and of equal shape")
    if (a <= 0).any():
        raise ValueError("MAPE needs every actual value above 0")
    return float(np.mean(np.abs(p - a) / a))


def synthetic_streams(count: int, seed: int = 0, typical_peak: float = 20_000, spread: float = 0.5,
                      duration_s: int = 3600, step_s: int = 60, history: int = 10) -> pd.DataFrame:
    """Seeded streams of one broadcaster: one row per stream, with its ``peak``, ``tau_s``, the
    ``past_peaks`` before it (``history`` earlier streams) and its per-``step_s`` ``viewers``.

    A stream's peak is ``typical_peak x lognormal(0, spread)``; its growth time constant is
    uniform on 2-15 min; counts carry Poisson noise.
    """
    check_whole(count, "count", minimum=1)
    check_whole(seed, "seed", minimum=0)
    check_number(typical_peak, "typical_peak", positive=True)
    check_number(spread, "spread", minimum=0)
    check_whole(duration_s, "duration_s", minimum=1)
    check_whole(step_s, "step_s", minimum=1)
    check_whole(history, "history", minimum=1)
    rng = np.random.default_rng(seed)
    peaks = typical_peak * rng.lognormal(0.0, spread, count + history)
    times = np.arange(step_s, duration_s + 1, step_s, dtype=float)
    rows = []
    for i in range(count):
        peak, tau = peaks[history + i], rng.uniform(120, 900)
        mean = peak * (1 - np.exp(-times / tau))
        rows.append({"stream": i, "peak": float(peak), "tau_s": float(tau),
                     "past_peaks": peaks[i:history + i].copy(), "times_s": times,
                     "viewers": rng.poisson(mean).astype(float)})
    return pd.DataFrame(rows).set_index("stream")


def evaluate_forecasts(streams: pd.DataFrame, observe_s: float = 300.0, horizon_s: float = 3600.0) -> pd.DataFrame:
    """MAPE of each predictor of the audience at ``horizon_s``, having seen ``observe_s``.

    Rows: ``growth fit``, ``history`` (median of past peaks x the curve's shape is unknown, so
    the peak itself), ``blend``. The streams are held out: nothing is tuned on them.
    """
    check_number(observe_s, "observe_s", positive=True)
    check_number(horizon_s, "horizon_s", positive=True)
    actual, fitted, past, blended = [], [], [], []
    for row in streams.itertuples():
        times, viewers = np.asarray(row.times_s), np.asarray(row.viewers)
        seen = times <= observe_s
        if seen.sum() < 2:
            raise ValueError(f"observe_s ({observe_s:g}) must cover at least two samples")
        at = int(np.argmin(np.abs(times - horizon_s)))
        actual.append(viewers[at])
        fit = fit_growth(times[seen], viewers[seen])
        fitted.append(float(fit.predict(times[at])))
        history_peak = history_forecast(np.asarray(row.past_peaks, dtype=float))
        past.append(history_peak)
        blended.append(blend_forecast(fit, history_peak, observe_s))
    return pd.DataFrame({"mape": [mape(actual, p) for p in (fitted, past, blended)]},
                        index=pd.Index(["growth fit", "history", "blend"], name="predictor"))


def diurnal_pop_load(pops: int = 5, days: int = 8, seed: int = 0, peak_hour: float = 20.0,
                     depth: float = 0.7, noise: float = 0.1) -> pd.DataFrame:
    """Seeded hourly load (requests/s) per PoP over ``days``: a daily cosine peaking at
    ``peak_hour`` local time (each PoP its own time zone offset, 0-3 h), ``depth`` the trough's
    dip below the mean, times log-normal ``noise``. Index: hour since the start; columns: PoPs."""
    check_whole(pops, "pops", minimum=1)
    check_whole(days, "days", minimum=2)
    check_whole(seed, "seed", minimum=0)
    check_fraction(depth, "depth")
    check_number(noise, "noise", minimum=0)
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24)
    scale = rng.uniform(1_000, 20_000, pops)
    offset = rng.integers(0, 4, pops)
    phase = 2 * np.pi * ((hours[:, None] + offset[None, :]) % 24 - peak_hour) / 24
    load = scale[None, :] * (1 + depth * np.cos(phase)) * rng.lognormal(0, noise, (len(hours), pops))
    return pd.DataFrame(load, index=pd.RangeIndex(len(hours), name="hour"),
                        columns=pd.RangeIndex(pops, name="pop"))


def seasonal_forecast(load: pd.DataFrame, days_back: int = 7) -> pd.DataFrame:
    """Predict the last day of ``load`` (24 rows) as the mean of the same hour on the
    ``days_back`` days before it (a seasonal-naive forecast)."""
    check_whole(days_back, "days_back", minimum=1)
    if len(load) < 24 * (days_back + 1):
        raise ValueError(f"need {days_back + 1} days of hourly load, got {len(load)} hours")
    values = load.to_numpy()
    past = values[-24 * (days_back + 1):-24].reshape(days_back, 24, -1)
    return pd.DataFrame(past.mean(axis=0), index=load.index[-24:], columns=load.columns)


def push_decision(predicted_viewers_per_pop: Sequence[float] | np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Which PoPs to push segments to: those expected to have at least ``threshold`` viewers."""
    predicted = np.asarray(predicted_viewers_per_pop, dtype=float)
    check_number(threshold, "threshold", positive=True)
    if predicted.ndim != 1 or (predicted < 0).any() or not np.isfinite(predicted).all():
        raise ValueError("predicted viewers must be a one-dimensional array of counts >= 0")
    result: np.ndarray = predicted >= threshold
    return result


def push_cost(pull_run: LiveResult, pushed: Sequence[bool] | np.ndarray) -> dict[str, float]:
    """Price a push decision against a pull-only :func:`~chatdesign.live.simulate_live` run.

    ``origin_requests_avoided``: the origin-cache requests of the pushed PoPs in the pull run
    (each pushed segment arrives before the first request). ``idle_push_bytes``: segments x
    segment bytes for pushed PoPs that had no viewers. ``missed_origin_requests``: those of
    PoPs with viewers that were not pushed to. Raises ``ValueError`` if the run used push.
    """
    if pull_run.scenario.push:
        raise ValueError("push_cost needs a run without push (push=False) as its baseline")
    mask = np.asarray(pushed, dtype=bool)
    if mask.shape != (pull_run.scenario.pops,):
        raise ValueError(f"pushed must have one entry per PoP ({pull_run.scenario.pops})")
    requests = pull_run.pop_load["origin_cache_requests"].to_numpy()
    watched = pull_run.pop_load["requests"].to_numpy() > 0
    segment_bytes = pull_run.scenario.segment_bytes
    return {
        "origin_requests_avoided": float(requests[mask].sum()),
        "missed_origin_requests": float(requests[~mask & watched].sum()),
        "idle_push_bytes": float((mask & ~watched).sum() * pull_run.segments * segment_bytes),
        "pushed_bytes": float(mask.sum() * pull_run.segments * segment_bytes),
    }


def check_peak_forecast(answer: float | None, times_s: Sequence[float] | np.ndarray,
                        viewers: Sequence[float] | np.ndarray) -> CheckResult:
    """Self-check for notebook 10: the stream's eventual peak, from the first minutes shown.

    The reference is :func:`fit_growth`'s ``peak`` on the same points; passes within 15 %.
    An answer near the last observed count is told the audience is still growing.
    """
    if answer is None:
        return CheckResult("peak forecast", False, "not answered yet: look at how fast the growth slows "
                           "from minute to minute, and extrapolate to where it flattens")
    value = check_number(answer, "answer", minimum=0)
    fit = fit_growth(times_s, viewers)
    ratio = value / fit.peak
    if abs(ratio - 1) <= 0.15:
        return CheckResult("peak forecast", True, "within 15 % of the fitted saturation level")
    last = float(np.asarray(viewers, dtype=float)[-1])
    if abs(value - last) <= 0.1 * max(last, 1.0):
        return CheckResult("peak forecast", False, "that is about the latest count: the curve has not "
                           "flattened yet, so the peak is higher")
    return CheckResult("peak forecast", False, f"too {'high' if ratio > 1 else 'low'} by {ratio:.2g}x")
