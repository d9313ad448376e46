"""The presence state table and the derivation rule."""

from __future__ import annotations

import pytest

from chatdesign.presence import (
    TRANSITIONS,
    PresenceEvent,
    PresenceState,
    derive_state,
    next_state,
    transition_table_frame,
)

ON, AWAY, OFF = PresenceState.ONLINE, PresenceState.AWAY, PresenceState.OFFLINE


def test_table_has_the_nine_possible_transitions() -> None:
    assert len(TRANSITIONS) == 9
    assert next_state(OFF, PresenceEvent.ACTIVE_HEARTBEAT) is ON
    assert next_state(OFF, PresenceEvent.IDLE_HEARTBEAT) is AWAY
    assert next_state(ON, PresenceEvent.IDLE_TIMEOUT) is AWAY
    assert next_state(AWAY, PresenceEvent.HEARTBEAT_TIMEOUT) is OFF


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (OFF, PresenceEvent.HEARTBEAT_TIMEOUT),
        (OFF, PresenceEvent.IDLE_TIMEOUT),
        (AWAY, PresenceEvent.IDLE_TIMEOUT),
    ],
)
def test_missing_entries_are_impossible_transitions(
    state: PresenceState, event: PresenceEvent
) -> None:
    with pytest.raises(ValueError, match="cannot happen to a user who is"):
        next_state(state, event)


def test_next_state_checks_types() -> None:
    with pytest.raises(ValueError, match="expected a PresenceState"):
        next_state("online", PresenceEvent.IDLE_TIMEOUT)  # type: ignore[arg-type]


def test_table_frame_shows_every_state_and_event() -> None:
    frame = transition_table_frame()
    assert list(frame.index) == ["online", "away", "offline"]
    assert frame.loc["offline", "idle heartbeat"] == "away"
    assert frame.loc["offline", "idle timeout"] == ""


@pytest.mark.parametrize(
    ("heartbeat_ago", "active_ago", "expected"),
    [
        (None, None, OFF),
        (30.0, 0.0, OFF),
        (29.9, 0.0, ON),
        (1.0, 299.9, ON),
        (1.0, 300.0, AWAY),
        (1.0, None, AWAY),
    ],
)
def test_derive_state_boundaries(
    heartbeat_ago: float | None, active_ago: float | None, expected: PresenceState
) -> None:
    assert derive_state(heartbeat_ago, active_ago, 30.0, 300.0) is expected


def test_derive_state_refuses_bad_limits() -> None:
    with pytest.raises(ValueError, match="offline_after_s must be positive"):
        derive_state(1.0, 1.0, 0.0, 300.0)
    assert repr(ON) == "PresenceState.ONLINE"
    assert repr(PresenceEvent.IDLE_TIMEOUT) == "PresenceEvent.IDLE_TIMEOUT"
