"""PresencePolicy, tiers, and the manual clock."""

from __future__ import annotations

import math

import pytest

from chatdesign.presence import DEFAULT_TIERS, ManualClock, PresencePolicy, Tier


def test_defaults_follow_xu_and_the_issue() -> None:
    policy = PresencePolicy()
    assert (policy.heartbeat_interval_s, policy.offline_after_s) == (5.0, 30.0)
    assert policy.heartbeats_before_offline == 6
    assert policy.tier_for(5.0).name == "very important"
    assert policy.tier_for(4.99).max_delay_s == 120.0
    assert policy.tier_for(-1e9).name == "others"
    assert policy.tiers == DEFAULT_TIERS
    assert policy.to_frame()["max_delay"].tolist() == ["5 s", "2 min"]
    assert repr(DEFAULT_TIERS[0]) == "Tier('very important', score ≥ 5, within 5 s)"


def test_interaction_boost_halves_every_half_life() -> None:
    policy = PresencePolicy(interaction_weight=2.0, interaction_half_life_s=60)
    assert policy.interaction_boost(3, 0) == 6.0
    assert policy.interaction_boost(3, 120) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="messages must not be negative"):
        policy.interaction_boost(-1, 0)
    with pytest.raises(ValueError, match="ago_s must not be negative"):
        policy.interaction_boost(1, -5)
    with pytest.raises(ValueError, match="score must be a number"):
        policy.tier_for(math.nan)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"offline_after_s": 5.0}, "must be longer than the heartbeat interval"),
        ({"heartbeat_interval_s": 0}, "heartbeat_interval_s must be positive"),
        ({"away_after_s": math.inf}, "away_after_s must be a finite number"),
        ({"last_seen_ttl_s": 10.0}, "last_seen_ttl_s"),
        ({"interaction_weight": -1.0}, "interaction_weight must not be negative"),
        ({"tiers": ()}, "non-empty tuple"),
        ({"tiers": (Tier("a", 1.0, 5.0),)}, "must catch every score"),
        ({"tiers": (Tier("a", -math.inf, 5.0), Tier("b", 1.0, 9.0))}, "highest min_score down"),
        ({"tiers": (Tier("a", 1.0, 60.0), Tier("b", -math.inf, 9.0))}, "may not wait longer"),
        ({"tiers": (Tier("a", 1.0, 6.0), Tier("a", -math.inf, 9.0))}, "unique"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PresencePolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "match"),
    [(("", 1.0, 5.0), "non-empty name"), (("a", math.nan, 5.0), "min_score"),
     (("a", 1.0, 0.0), "max_delay_s must be positive")],
)
def test_bad_tiers_are_refused(args: tuple[str, float, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Tier(*args)


def test_manual_clock_moves_forward_only() -> None:
    clock = ManualClock(10)
    assert clock() == 10.0
    assert clock.advance(2.5) == 12.5
    assert clock.set(20) == 20.0 == clock.now_s
    assert repr(clock) == "ManualClock(now_s=20.0)"
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.set(19)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="finite number of seconds"):
        ManualClock(math.inf)


def test_policy_type_errors_are_readable() -> None:
    with pytest.raises(ValueError, match="min_score must be a number"):
        Tier("a", "high", 5.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interaction_weight must be a number"):
        PresencePolicy(interaction_weight=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="every tier must be a Tier"):
        PresencePolicy(tiers=(("a", -math.inf, 5.0),))  # type: ignore[arg-type]
    policy = PresencePolicy()
    with pytest.raises(ValueError, match="messages must be a number"):
        policy.interaction_boost("3", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ago_s must be a number of seconds"):
        policy.interaction_boost(3, None)  # type: ignore[arg-type]
