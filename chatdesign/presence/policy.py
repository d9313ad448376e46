"""How often devices beat, when a user counts as away or offline, and who hears about it how fast.

Not all friends are equal (seed notes): a change in a *very important* friend's presence should
show within seconds, everyone else's within minutes. :class:`PresencePolicy` holds those numbers:

- heartbeats every ``heartbeat_interval_s`` (5 s), offline after ``offline_after_s`` (30 s)
  without one, as in Xu's chat chapter -- six missed beats, so a slow network that delays or
  drops a few does not make a user flap;
- away after ``away_after_s`` (5 min) without use;
- importance tiers: a score (base importance plus recent interactions) maps to the first
  :class:`Tier` whose ``min_score`` it reaches; the tier's ``max_delay_s`` bounds how long a
  change may wait before it is pushed (5 s for score ≥ 5, 2 min for everyone else);
- interactions: each message exchanged adds ``interaction_weight`` to the score, halving every
  ``interaction_half_life_s`` (a day), so people you talk to now rise and old chats fade.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from chatdesign.checks import check_number
from chatdesign.units import format_duration


@dataclass(frozen=True)
class Tier:
    """One importance tier: scores ≥ ``min_score`` are told of a change within ``max_delay_s``."""

    name: str
    min_score: float
    max_delay_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a tier needs a non-empty name, got {self.name!r}")
        # Not check_number: the last tier's min_score is -inf by design, so only NaN and +inf are out.
        if isinstance(self.min_score, bool) or not isinstance(self.min_score, int | float):
            raise ValueError(f"min_score must be a number, got {self.min_score!r}")
        if math.isnan(self.min_score) or self.min_score == math.inf:
            raise ValueError(f"min_score must be a number or -inf, got {self.min_score!r}")
        check_number(self.max_delay_s, "max_delay_s", positive=True, unit="seconds")

    def __repr__(self) -> str:
        return (
            f"Tier({self.name!r}, score ≥ {self.min_score:g}, "
            f"within {format_duration(self.max_delay_s)})"
        )


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("very important", 5.0, 5.0),
    Tier("others", -math.inf, 120.0),
)
"""The defaults: score ≥ 5 within 5 s, everyone else within 2 min."""


@dataclass(frozen=True)
class PresencePolicy:
    """The presence rules' numbers (all durations in seconds); validated when built.

    ``tiers`` go from the highest ``min_score`` down, the last one catching every score
    (``min_score=-inf``), and a more important tier may not wait longer than a less important one.
    """

    heartbeat_interval_s: float = 5.0
    offline_after_s: float = 30.0
    away_after_s: float = 300.0
    tiers: tuple[Tier, ...] = field(default=DEFAULT_TIERS)
    interaction_weight: float = 1.0
    interaction_half_life_s: float = 86_400.0
    last_seen_ttl_s: float = 7 * 86_400.0

    def __post_init__(self) -> None:
        for what in (
            "heartbeat_interval_s",
            "offline_after_s",
            "away_after_s",
            "interaction_half_life_s",
            "last_seen_ttl_s",
        ):
            check_number(getattr(self, what), what, positive=True, unit="seconds")
        check_number(self.interaction_weight, "interaction_weight", minimum=0)
        if self.offline_after_s <= self.heartbeat_interval_s:
            raise ValueError(
                f"offline_after_s ({self.offline_after_s:g} s) must be longer than the heartbeat "
                f"interval ({self.heartbeat_interval_s:g} s), or every late beat is a flap"
            )
        if self.last_seen_ttl_s < self.offline_after_s:
            raise ValueError(
                f"last_seen_ttl_s ({self.last_seen_ttl_s:g} s) must be at least offline_after_s "
                f"({self.offline_after_s:g} s), or a record vanishes while its user is online"
            )
        self._check_tiers()

    def _check_tiers(self) -> None:
        if not isinstance(self.tiers, tuple) or not self.tiers:
            raise ValueError("tiers must be a non-empty tuple of Tier")
        if not all(isinstance(tier, Tier) for tier in self.tiers):
            raise ValueError(f"every tier must be a Tier, got {self.tiers!r}")
        names = [tier.name for tier in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        for higher, lower in zip(self.tiers, self.tiers[1:], strict=False):
            if not higher.min_score > lower.min_score:
                raise ValueError(
                    f"tiers must go from the highest min_score down: {higher.name!r} "
                    f"({higher.min_score:g}) before {lower.name!r} ({lower.min_score:g})"
                )
            if higher.max_delay_s > lower.max_delay_s:
                raise ValueError(
                    f"tier {higher.name!r} may not wait longer ({higher.max_delay_s:g} s) than "
                    f"the less important {lower.name!r} ({lower.max_delay_s:g} s)"
                )
        if self.tiers[-1].min_score != -math.inf:
            raise ValueError(
                f"the last tier ({self.tiers[-1].name!r}) must catch every score: min_score=-inf"
            )

    @property
    def heartbeats_before_offline(self) -> float:
        """How many heartbeat intervals fit in the grace period (30 s / 5 s = 6)."""
        return self.offline_after_s / self.heartbeat_interval_s

    def tier_for(self, score: float) -> Tier:
        """The tier an importance score falls in (the first whose ``min_score`` it reaches)."""
        # Not check_number: a score may be ±inf (an infinitely important friend); only NaN is out.
        if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
            raise ValueError(f"score must be a number, got {score!r}")
        return next(tier for tier in self.tiers if score >= tier.min_score)

    def interaction_boost(self, messages: float, ago_s: float) -> float:
        """What ``messages`` exchanged ``ago_s`` seconds ago add to a score now (halving decay)."""
        count = check_number(messages, "messages", minimum=0)
        ago = check_number(ago_s, "ago_s", minimum=0, unit="seconds")
        decay: float = 0.5 ** (ago / self.interaction_half_life_s)
        return self.interaction_weight * count * decay

    def to_frame(self) -> pd.DataFrame:
        """The tiers as a table: name, minimum score, maximum delay in seconds."""
        return pd.DataFrame(
            {
                "min_score": [tier.min_score for tier in self.tiers],
                "max_delay_s": [tier.max_delay_s for tier in self.tiers],
                "max_delay": [format_duration(tier.max_delay_s) for tier in self.tiers],
            },
            index=pd.Index([tier.name for tier in self.tiers], name="tier"),
        )
