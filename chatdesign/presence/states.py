"""Presence states and the events that move a user between them, as one table.

Three states, as in the Matrix client-server API (``online`` / ``unavailable`` / ``offline``):

- ``online``  -- at least one device sent a heartbeat recently *and* was used recently;
- ``away``    -- connected (a device still sends heartbeats) but idle;
- ``offline`` -- no heartbeat from any device for ``offline_after_s``.

:data:`TRANSITIONS` maps ``(state, event)`` to the next state, in the way h11's ``_state.py``
does: a missing entry is a transition that cannot happen (a timeout cannot fire for a user who
is already offline). :func:`next_state` looks it up and raises on a missing entry; the notebook
draws the same table as a graph. The service derives a user's state from the stored
timestamps (:func:`derive_state`); the tests check that every change it announces is an entry here.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import enum
from typing import Final

import pandas as pd

from chatdesign.checks import check_number


class PresenceState(enum.Enum):
    """A user's presence as others see it."""

    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"

    def __repr__(self) -> str:
        return f"PresenceState.{self.name}"


class PresenceEvent(enum.Enum):
    """What can happen to a user's presence."""

    ACTIVE_HEARTBEAT = "active heartbeat"
    """A device sent a heartbeat and the user did something on it (typed, opened a chat)."""
    IDLE_HEARTBEAT = "idle heartbeat"
    """A device sent a heartbeat but the user did nothing on it (app open in the background)."""
    IDLE_TIMEOUT = "idle timeout"
    """No connected device has been used for ``away_after_s``."""
    HEARTBEAT_TIMEOUT = "heartbeat timeout"
    """No device has sent a heartbeat for ``offline_after_s`` (the grace period ran out)."""

    def __repr__(self) -> str:
        return f"PresenceEvent.{self.name}"


_ON, _AWAY, _OFF = PresenceState.ONLINE, PresenceState.AWAY, PresenceState.OFFLINE
_ACTIVE, _IDLE = PresenceEvent.ACTIVE_HEARTBEAT, PresenceEvent.IDLE_HEARTBEAT
_IDLE_TO, _HB_TO = PresenceEvent.IDLE_TIMEOUT, PresenceEvent.HEARTBEAT_TIMEOUT

TRANSITIONS: Final[dict[tuple[PresenceState, PresenceEvent], PresenceState]] = {
    (_OFF, _ACTIVE): _ON,
    (_OFF, _IDLE): _AWAY,
    (_ON, _ACTIVE): _ON,
    (_ON, _IDLE): _ON,
    (_ON, _IDLE_TO): _AWAY,
    (_ON, _HB_TO): _OFF,
    (_AWAY, _ACTIVE): _ON,
    (_AWAY, _IDLE): _AWAY,
    (_AWAY, _HB_TO): _OFF,
}
"""``(state, event) -> next state``; a pair that is missing cannot happen."""


def next_state(state: PresenceState, event: PresenceEvent) -> PresenceState:
    """The state after ``event`` happens in ``state``.

    Raises ``ValueError`` for a pair that is not in :data:`TRANSITIONS` (say, a heartbeat
    timeout for a user who is already offline) or for arguments of the wrong type.
    """
    if not isinstance(state, PresenceState) or not isinstance(event, PresenceEvent):
        raise ValueError(f"expected a PresenceState and a PresenceEvent, got {state!r}, {event!r}")
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ValueError(f"{event.value!r} cannot happen to a user who is {state.value}") from None


def transition_table_frame() -> pd.DataFrame:
    """:data:`TRANSITIONS` as a table: one row per state, one column per event, '' if impossible."""
    rows = {
        state.value: {
            event.value: TRANSITIONS[(state, event)].value if (state, event) in TRANSITIONS else ""
            for event in PresenceEvent
        }
        for state in PresenceState
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "state \\ event"
    return frame


def device_state_at(at_s: float, offline_at_s: float | None, idle_at_s: float | None) -> PresenceState:
    """One device's state at ``at_s`` from the two moments that decide it (seconds).

    ``offline_at_s`` is when its grace period runs out (last heartbeat + ``offline_after_s``;
    ``None`` for a device never seen) and ``idle_at_s`` when it turns idle (last use +
    ``away_after_s``; ``None`` for one never used). Offline from ``offline_at_s`` on, online
    before ``idle_at_s``, away otherwise.

    This is the one rule, in the form the service's timers use: a timer set for a deadline and
    the state judged at that deadline compare the *same* float, so a timer never fires on a
    device that still looks alive. (Judging by "seconds since the heartbeat" instead fails:
    near a wall-clock time of 1.7e9 s, ``(t + 30.3) - t`` rounds to less than 30.3.)
    """
    if offline_at_s is None or at_s >= offline_at_s:
        return PresenceState.OFFLINE
    if idle_at_s is not None and at_s < idle_at_s:
        return PresenceState.ONLINE
    return PresenceState.AWAY


def derive_state(
    heartbeat_ago_s: float | None,
    active_ago_s: float | None,
    offline_after_s: float,
    away_after_s: float,
) -> PresenceState:
    """One device's state from how long ago it last sent a heartbeat and was last used.

    ``heartbeat_ago_s`` is ``None`` for a device never seen, ``active_ago_s`` ``None`` for one
    never used. A device is offline once ``heartbeat_ago_s >= offline_after_s``, online while
    also ``active_ago_s < away_after_s``, and away otherwise. A user is in the best state of
    their devices (online beats away beats offline). Times are in seconds. The same rule as
    :func:`device_state_at`, measured from now (``0 >= offline_after_s - ago`` exactly when
    ``ago >= offline_after_s``: float subtraction keeps the sign).
    """
    for value, what in ((offline_after_s, "offline_after_s"), (away_after_s, "away_after_s")):
        check_number(value, what, positive=True, unit="seconds")
    for ago, what in ((heartbeat_ago_s, "heartbeat_ago_s"), (active_ago_s, "active_ago_s")):
        if ago is not None:
            check_number(ago, what, unit="seconds")
    return device_state_at(
        0.0,
        None if heartbeat_ago_s is None else offline_after_s - heartbeat_ago_s,
        None if active_ago_s is None else away_after_s - active_ago_s,
    )


STATE_RANK: Final[dict[PresenceState, int]] = {_OFF: 0, _AWAY: 1, _ON: 2}
"""How 'present' each state is: a user shows the best state among their devices."""
