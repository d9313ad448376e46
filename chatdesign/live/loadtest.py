"""Testing the live system: load shapes, injected failures, SLO checks and shadow-traffic replay.

Theory of operation. A :class:`Scenario` names a load shape and an optional failure; :func:`run_scenario`
turns it into calls of :func:`~chatdesign.live.simulate_live` through its public arguments only, and
:func:`check_slos` reads the result against :class:`Slo` limits, reporting each violation with the
seconds it happened in.

Load shapes: ``steady`` (everyone watching from the start), ``flash_crowd`` (everyone joins within
``ramp_s``, ``simulate_live``'s ``ramp_s``), ``linear_ramp`` (joins spread over the whole run).

Failures are injected by transforming the inputs, because ``simulate_live`` takes no topology
argument (its ``slow_link`` is the one failure it knows). The limits of each transformation:

- ``pop_down``: from ``fail_at_s`` the stream runs on ``pops - 1`` PoPs with the same viewers. The
  topology is rebuilt from the same seed with one PoP fewer, so PoP positions and shares change
  too (it is "the same audience on a smaller network", not the exact network minus one PoP).
- ``origin_cache_down``: from ``fail_at_s`` one origin-cache site fewer (at least one remains);
  the second phase starts with cold caches, which is what a failover to another site costs.
- ``capacity_cut``: from ``fail_at_s`` each PoP serves ``capacity_factor`` of its capacity (a
  slowed or half-failed PoP), overflow refused.
- ``link_slowed``: from ``fail_at_s`` the link named by ``slow_link`` (a
  :class:`~chatdesign.live.faults.SlowLink`; by default every edge → origin-cache link at 4x
  its delay) is slowed, through ``simulate_live``'s ``slow_link``. Every edge miss's round trip
  over that link takes ``2 x (factor - 1) x edge_origin_s`` longer (its latency exactly that
  much more when it is also the origin cache's first miss), the requests coalesced behind it
  wait for it, and hits do not change. Caught by the latency checks: ``p99 latency`` over all requests, and
  ``p99 miss latency`` (requests answered past the edge, :attr:`Slo.miss_p99_ms`), which moves
  even when misses are too few to reach the overall p99.

Each phase is one ``simulate_live`` run; the second phase's seconds are shifted by ``fail_at_s``
so a report's times are the stream's.

Replay (:func:`replay_log`): a recorded request log (send times in seconds) played at ``k`` x
speed, binned per second against a capacity: the shadow-traffic test that tells how much headroom
is left before the real crowd arrives.

Taught in ``notebooks/10_load_prediction_and_testing.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.live.faults import SlowLink
from chatdesign.live.result import LAYERS, LiveResult, percentile_ms
from chatdesign.live.simulate import simulate_live

__all__ = ["DEFAULT_SLOW_LINK", "FAILURES", "Scenario", "Slo", "SloReport", "check_slos", "replay_log",
           "run_scenario"]

Shape = Literal["steady", "flash_crowd", "linear_ramp"]
Failure = Literal["none", "pop_down", "origin_cache_down", "capacity_cut", "link_slowed"]
FAILURES: tuple[Failure, ...] = ("none", "pop_down", "origin_cache_down", "capacity_cut", "link_slowed")
"""The failures a :class:`Scenario` can inject."""
DEFAULT_SLOW_LINK: Final = SlowLink("edge_origin", delay_factor=4.0)
"""The ``link_slowed`` failure's link unless a scenario names one: every PoP's edge →
origin-cache link at 4x its delay (a congested or rerouted backbone path)."""


@dataclass(frozen=True)
class Scenario:
    """One load test: ``viewers`` for ``duration_s`` with a load ``shape`` and a ``failure`` at
    ``fail_at_s``. ``pop_capacity_rps`` (``None``: unlimited) and ``capacity_factor`` (for
    ``capacity_cut``) size the PoPs; ``slow_link`` is the link ``link_slowed`` slows
    (:data:`DEFAULT_SLOW_LINK` by default); other settings are ``simulate_live``'s defaults."""

    viewers: int
    duration_s: float
    shape: Shape = "steady"
    ramp_s: float = 5.0
    failure: Failure = "none"
    fail_at_s: float = 0.0
    pops: int = 20
    origin_caches: int = 2
    pop_capacity_rps: float | None = None
    capacity_factor: float = 0.5
    seed: int = 0
    slow_link: SlowLink = DEFAULT_SLOW_LINK

    def __post_init__(self) -> None:
        check_whole(self.viewers, "viewers", minimum=1)
        check_number(self.duration_s, "duration_s", positive=True)
        if self.shape not in ("steady", "flash_crowd", "linear_ramp"):
            raise ValueError(f"shape must be 'steady', 'flash_crowd' or 'linear_ramp', got {self.shape!r}")
        if self.failure not in FAILURES:
            raise ValueError(f"failure must be one of {', '.join(map(repr, FAILURES))}, got {self.failure!r}")
        check_number(self.ramp_s, "ramp_s", minimum=0)
        check_number(self.fail_at_s, "fail_at_s", minimum=0)
        check_whole(self.pops, "pops", minimum=1)
        check_whole(self.origin_caches, "origin_caches", minimum=1)
        check_fraction(self.capacity_factor, "capacity_factor")
        if self.failure != "none" and not 1.0 <= self.fail_at_s <= self.duration_s - 1.0:
            raise ValueError(f"fail_at_s must leave at least 1 s before and after it, got {self.fail_at_s!r}")
        if self.failure == "pop_down" and self.pops < 3:
            raise ValueError("pop_down needs at least 3 PoPs (2 remain, so overflow can spill)")
        if self.failure == "capacity_cut" and self.pop_capacity_rps is None:
            raise ValueError("capacity_cut needs a pop_capacity_rps to cut")
        if not isinstance(self.slow_link, SlowLink):
            raise ValueError(f"slow_link must be a SlowLink, got {self.slow_link!r}")
        self.slow_link.check_against(self.pops, self.origin_caches)


@dataclass(frozen=True, eq=False)
class Phase:
    """One ``simulate_live`` run of a scenario, starting at ``start_s`` of the stream."""

    name: str
    start_s: float
    result: LiveResult


def run_scenario(scenario: Scenario) -> list[Phase]:
    """Run ``scenario``: one phase without a failure, two (before, after) with one."""
    ramp = {"steady": 0.0, "flash_crowd": scenario.ramp_s, "linear_ramp": scenario.duration_s}[scenario.shape]
    overflow: Literal["spill", "refuse"] = "refuse"

    def run(duration_s: float, pops: int, origin_caches: int, capacity: float | None, ramp_s: float,
            slow_link: SlowLink | None = None) -> LiveResult:
        return simulate_live(scenario.viewers, duration_s, pops=pops, origin_caches=origin_caches,
                             pop_capacity_rps=capacity, seed=scenario.seed, overflow=overflow, ramp_s=ramp_s,
                             slow_link=slow_link)

    if scenario.failure == "none":
        return [Phase("whole run", 0.0, run(scenario.duration_s, scenario.pops, scenario.origin_caches,
                                            scenario.pop_capacity_rps, ramp))]
    before = run(scenario.fail_at_s, scenario.pops, scenario.origin_caches, scenario.pop_capacity_rps, ramp)
    pops, origins, capacity = scenario.pops, scenario.origin_caches, scenario.pop_capacity_rps
    slow_link = None
    if scenario.failure == "pop_down":
        pops -= 1
    elif scenario.failure == "origin_cache_down":
        origins = max(1, origins - 1)
    elif scenario.failure == "link_slowed":
        slow_link = scenario.slow_link
    else:
        assert capacity is not None
        capacity *= scenario.capacity_factor
    # viewers still joining after the failure keep joining over what is left of the ramp
    remaining_ramp = max(0.0, ramp - scenario.fail_at_s)
    after = run(scenario.duration_s - scenario.fail_at_s, pops, origins, capacity, remaining_ramp, slow_link)
    return [Phase("before failure", 0.0, before), Phase(f"after {scenario.failure}", scenario.fail_at_s, after)]


@dataclass(frozen=True)
class Slo:
    """Service-level objectives: latency percentile limits (ms), refused share, origin load.

    ``p99_ms`` limits the p99 latency of all requests; ``miss_p99_ms`` (``None``: not checked)
    the p99 of the requests answered past the edge (origin cache or origin server), which a
    slowed upstream link moves even when misses are too few to reach the overall p99."""

    p99_ms: float = 200.0
    max_refused_ratio: float = 0.0
    max_origin_server_rps: float | None = None
    miss_p99_ms: float | None = None

    def __post_init__(self) -> None:
        check_number(self.p99_ms, "p99_ms", positive=True)
        if self.miss_p99_ms is not None:
            check_number(self.miss_p99_ms, "miss_p99_ms", positive=True)
        check_fraction(self.max_refused_ratio, "max_refused_ratio")
        if self.max_origin_server_rps is not None:
            check_number(self.max_origin_server_rps, "max_origin_server_rps", minimum=0)


@dataclass(frozen=True, eq=False)
class SloReport:
    """What was violated, and when: one row per check, with the stream seconds it failed in."""

    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return bool(self.table["passed"].all())

    def __repr__(self) -> str:
        failed = self.table.index[~self.table["passed"]].tolist()
        return f"SloReport({'all passed' if not failed else 'violated: ' + ', '.join(failed)})"


def check_slos(phases: list[Phase], slo: Slo | None = None) -> SloReport:
    """Check every phase of a run against ``slo`` (default :class:`Slo`).

    Rows: ``p99 latency`` (over all requests of a phase; its time is the phase), ``p99 miss
    latency`` (requests answered past the edge, when ``miss_p99_ms`` is set; a phase without
    misses passes), ``refused``
    (seconds in which requests were refused above the allowed share), ``origin server load``
    (seconds above ``max_origin_server_rps``). ``when_s`` lists stream seconds (first ten).
    """
    chosen = slo or Slo()
    if not phases:
        raise ValueError("check_slos needs at least one phase")
    rows = []
    for phase in phases:
        result, shift = phase.result, round(phase.start_s)
        p99 = percentile_ms(result.latency_histogram.sum(axis=0), 99.0)
        rows.append({"check": f"p99 latency ({phase.name})", "value": p99, "limit": chosen.p99_ms,
                     "passed": bool(p99 <= chosen.p99_ms), "when_s": [] if p99 <= chosen.p99_ms else [shift]})
        if chosen.miss_p99_ms is not None:
            past_edge = result.latency_histogram[LAYERS.index("edge") + 1:].sum(axis=0)
            miss_p99 = percentile_ms(past_edge, 99.0)
            ok = bool(past_edge.sum() == 0 or miss_p99 <= chosen.miss_p99_ms)
            rows.append({"check": f"p99 miss latency ({phase.name})", "value": miss_p99,
                         "limit": chosen.miss_p99_ms, "passed": ok, "when_s": [] if ok else [shift]})
        series = result.per_second
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(series["requests"] > 0, series["refused"] / series["requests"].clip(lower=1), 0.0)
        bad = np.flatnonzero(share > chosen.max_refused_ratio)
        refused = result.refused / result.requests if result.requests else 0.0
        rows.append({"check": f"refused ({phase.name})", "value": refused, "limit": chosen.max_refused_ratio,
                     "passed": len(bad) == 0, "when_s": [int(s) + shift for s in bad[:10]]})
        if chosen.max_origin_server_rps is not None:
            load = series["origin_server_requests"].to_numpy()
            over = np.flatnonzero(load > chosen.max_origin_server_rps)
            rows.append({"check": f"origin server load ({phase.name})", "value": float(load.max()),
                         "limit": chosen.max_origin_server_rps, "passed": len(over) == 0,
                         "when_s": [int(s) + shift for s in over[:10]]})
    return SloReport(pd.DataFrame(rows).set_index("check"))


def replay_log(send_times_s: np.ndarray, speed: float, capacity_rps: float) -> pd.DataFrame:
    """Replay a recorded request log at ``speed`` x (time divided by ``speed``), per second.

    Returns one row per second of the replay: ``requests``, ``over_capacity`` (requests beyond
    ``capacity_rps`` in that second, which a real system would queue or refuse).
    """
    times = np.asarray(send_times_s, dtype=float)
    check_number(speed, "speed", positive=True)
    check_number(capacity_rps, "capacity_rps", positive=True)
    if times.ndim != 1 or len(times) == 0 or not np.isfinite(times).all() or (times < 0).any():
        raise ValueError("send_times_s must be a non-empty array of times >= 0")
    seconds = np.floor((times - times.min()) / speed).astype(np.int64)
    counts = np.bincount(seconds)
    return pd.DataFrame({"requests": counts, "over_capacity": np.maximum(counts - capacity_rps, 0).astype(np.int64)},
                        index=pd.RangeIndex(len(counts), name="second"))
