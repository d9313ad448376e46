"""Renditions: one stream at several bit rates, each its own cache key, and what egress costs.

Theory of operation. A live stream is encoded at every rung of a bitrate ladder; a player asks
for the rendition its adaptive-bitrate logic picks, and each rendition's segments are separate
objects in every cache. :func:`simulate_renditions` takes the ladder as ``renditions``, a
mapping of bit rate (kbps) to the *share of viewing time* spent on it -- exactly what an ABR
simulator reports -- assigns each viewer one rendition by that share (a seeded multinomial
draw), and runs :func:`~chatdesign.live.simulate.simulate_live` once per rendition over the same
topology (the topology ``seed``) with its own traffic seed. Since renditions share no cache key,
their cache outcomes are independent and add up. Limits: a viewer keeps one rendition for the
whole run (time shares are honoured on average, switches are not modelled), and PoP capacity and
queueing, which renditions would share, are not modelled: each rendition runs with no capacity
limit, and setting either is refused.

Egress is what the PoPs send to players (every request's segment bytes) and, separately, what
passes the edge (origin-cache requests' bytes); :func:`egress_cost_per_month` prices a steady
rate at a stated price per GB over a 30-day month.

Taught in ``notebooks/07_live_pipeline.ipynb`` (egress cost) and ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from chatdesign.checks import check_number, check_whole
from chatdesign.live.result import LiveResult
from chatdesign.live.simulate import simulate_live
from chatdesign.units import format_bitrate, format_count

SECONDS_PER_MONTH: Final = 30 * 86_400
"""A 30-day month, in seconds (egress is priced per month)."""

USD_PER_GB: Final = 0.02
"""Assumed CDN egress price, US dollars per GB (10^9 bytes): a stated input, not a quote; pass
your own to :func:`egress_cost_per_month`."""

PENSIEVE_LADDER_KBPS: Final = (300.0, 750.0, 1_200.0, 1_850.0, 2_850.0, 4_300.0)
"""The bitrate ladder of Pensieve (SIGCOMM 2017) and its baselines, in kbps."""


def egress_cost_per_month(gbps: float, usd_per_gb: float = USD_PER_GB) -> float:
    """US dollars a month for sending ``gbps`` steadily: ``gbps / 8 x 30 days x price per GB``."""
    rate = check_number(gbps, "gbps", minimum=0)
    price = check_number(usd_per_gb, "usd_per_gb", minimum=0)
    return rate / 8 * SECONDS_PER_MONTH * price


def _check_renditions(renditions: Mapping[float, float]) -> dict[float, float]:
    if not isinstance(renditions, Mapping) or not renditions:
        raise ValueError("renditions must be a non-empty mapping of bit rate (kbps) to share")
    checked = {check_number(kbps, "rendition bit rate (kbps)", positive=True):
               check_number(share, "rendition share", minimum=0)
               for kbps, share in renditions.items()}
    if not math.isclose(sum(checked.values()), 1.0, rel_tol=1e-6):
        raise ValueError(f"rendition shares must sum to 1, got {sum(checked.values()):.6g}")
    return dict(sorted(checked.items()))


@dataclass(frozen=True, eq=False)
class RenditionResult:
    """The outcome of :func:`simulate_renditions`: one :class:`LiveResult` per rendition.

    ``usd_per_gb`` is the egress price used for the cost columns of :meth:`to_frame`.
    """

    results: Mapping[float, LiveResult]
    usd_per_gb: float

    def __post_init__(self) -> None:
        if not self.results:
            raise ValueError("a rendition result needs at least one rendition")
        check_number(self.usd_per_gb, "usd_per_gb", minimum=0)

    def to_frame(self) -> pd.DataFrame:
        """One row per rendition (kbps) and a ``total`` row: viewers, requests, edge hit ratio,
        origin-cache and origin-server requests, egress to players and past the edge (Gbps,
        averaged over the run) and the players' egress cost per month."""
        rows = {}
        for kbps, result in self.results.items():
            duration = result.segments * result.scenario.segment_s
            to_players = result.requests * result.scenario.segment_bytes * 8 / duration / 1e9
            past_edge = (result.origin_cache_requests * result.scenario.segment_bytes * 8
                         / duration / 1e9)
            rows[f"{kbps:g} kbps"] = {
                "viewers": result.scenario.viewers, "requests": result.requests,
                "edge_hits": result.edge_hits,
                "origin_cache_requests": result.origin_cache_requests,
                "origin_server_requests": result.origin_server_requests,
                "egress_gbps": to_players, "past_edge_gbps": past_edge,
            }
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.loc["total"] = frame.sum()
        frame["edge_hit_ratio"] = frame["edge_hits"] / frame["requests"].where(frame["requests"] > 0)
        frame["usd_per_month"] = [egress_cost_per_month(g, self.usd_per_gb)
                                  for g in frame["egress_gbps"]]
        frame.index.name = "rendition"
        return frame

    def __repr__(self) -> str:
        total = self.to_frame().loc["total"].to_dict()
        viewers, hit_ratio, gbps = (float(total[column]) for column in
                                    ("viewers", "edge_hit_ratio", "egress_gbps"))
        return (f"RenditionResult({len(self.results)} renditions, {format_count(viewers)} viewers, "
                f"edge hit ratio {hit_ratio:.3%}, egress {format_bitrate(gbps * 1e9)})")


def simulate_renditions(viewers: int, duration_s: float, renditions: Mapping[float, float], *,
                        seed: int = 0, usd_per_gb: float = USD_PER_GB,
                        **options: Any) -> RenditionResult:
    """Simulate ``viewers`` of one stream spread over ``renditions`` (kbps → share of viewing
    time, summing to 1); ``options`` go to :func:`simulate_live` for every rendition.

    Raises ``ValueError`` for an empty or badly shared ladder, or for options the renditions
    would share (``pop_capacity_rps``, ``queueing``) or that the ladder sets (``bitrate_kbps``,
    ``traffic_seed``). Every rendition runs with no PoP capacity limit (``simulate_live``'s
    derived default would give each rendition the whole PoP), so the result counts no refusals.
    """
    check_whole(viewers, "viewers", minimum=1)
    ladder = _check_renditions(renditions)
    for shared in ("pop_capacity_rps", "queueing", "bitrate_kbps", "traffic_seed", "viewers"):
        if options.get(shared) not in (None, False):
            raise ValueError(f"{shared} cannot be set per rendition in simulate_renditions")
        options.pop(shared, None)
    check_whole(seed, "seed", minimum=0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    counts = rng.multinomial(viewers, list(ladder.values()))
    results = {
        kbps: simulate_live(int(count), duration_s, bitrate_kbps=kbps, seed=seed,
                            traffic_seed=seed * len(ladder) + rung, pop_capacity_rps=None,
                            **options)
        for rung, (kbps, count) in enumerate(zip(ladder, counts, strict=True)) if count > 0
    }
    return RenditionResult(results, usd_per_gb)
