"""The presence service: heartbeats in, batches of status changes out, no I/O inside.

Theory of operation (sans-I/O, in the way h11 is): the service never reads the wall clock,
never sleeps and never sends. Devices call :meth:`PresenceService.heartbeat`; it stamps the
heartbeat with the injected ``clock`` and writes the user's record to a :class:`TTLStore`
(memory or Redis). A server calls :meth:`PresenceService.flush` about once a second with the
current time and sends what it returns.

- **Record.** One key per user, ``user:<id>``, holding JSON: each connected device's last
  heartbeat and last activity, plus the user's last activity ever. It expires after
  ``last_seen_ttl_s`` (a week) -- presence is not stored permanently. Whether a device is
  alive is judged from the timestamps with the injected clock, not from Redis's wall-clock
  expiry, so tests can travel in time and both stores behave alike.
- **Deadlines.** A device goes offline at ``heartbeat + offline_after_s`` and idle at
  ``activity + away_after_s``; its state at any moment is judged by comparing that moment with
  these two deadlines (:func:`~chatdesign.presence.states.device_state_at`), never by
  subtracting times, so a timer set for a deadline always finds the state changed when it fires,
  whatever the clock's magnitude. A clock so large that the shortest timeout is below its
  resolution is refused.
- **Timers.** Each user who is not offline has one timer at the next moment their state could
  change by itself (a device's grace period running out, or its activity growing stale). A
  heap orders them; :meth:`flush` pops the due ones and re-derives the state *at the timer's
  time*, so a change is dated when it happened (the moment the grace period ran out), not when
  the server noticed.
- **Changes.** When a user's state differs from the one the service last announced, each
  online (or away) viewer who has the user as a friend gets a pending change due at
  ``changed_at + tier.max_delay_s``; the tier comes from the viewer's importance score for
  that friend. Offline viewers get nothing: they pull on login (:meth:`initial_statuses`).
- **What each viewer last saw.** A later change of the same friend overwrites the pending one
  (keeping the earlier due time); if it returns the friend to the state *this viewer* last saw,
  it is dropped, so flaps inside a window never reach anyone. What a viewer saw is the last
  batch sent to them or the last pull they made (:meth:`statuses`, :meth:`initial_statuses`)
  while online: a pull that already shows a pending change cancels its push, and a pull that
  shows an intermediate state makes a later flip back news again. Only differences from the
  announced state are kept, so the memory is O(pending changes + divergent pulls).
- **Batches.** When any of a viewer's changes is due, the
  viewer gets one :class:`PresenceBatch` with the latest state of every friend pending for
  them -- the not-yet-due ones ride along, which never breaks a bound and saves a push.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import pandas as pd

from chatdesign.checks import check_number, check_whole
from chatdesign.presence.errors import (
    ClockWentBackwardsError,
    NotAFriendError,
    PresenceError,
    UnknownUserError,
)
from chatdesign.presence.policy import PresencePolicy
from chatdesign.presence.states import (
    STATE_RANK,
    PresenceEvent,
    PresenceState,
    device_state_at,
    next_state,
)
from chatdesign.presence.store import TTLStore

FriendsGraph = Mapping[str, Mapping[str, float]]
"""``{user_id: {friend_id: importance}}``; higher importance matters more (the caller's scale)."""


@dataclass(frozen=True)
class PresenceStatus:
    """A user's presence as seen now: ``status``, seconds since last use, connected devices.

    ``last_active_ago_s`` is ``None`` for a user never seen active (or forgotten after
    ``last_seen_ttl_s``), as Matrix omits ``last_active_ago``.
    """

    user_id: str
    status: PresenceState
    last_active_ago_s: float | None
    online_devices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.user_id, "user_id")
        if not isinstance(self.status, PresenceState):
            raise ValueError(f"status must be a PresenceState, got {self.status!r}")
        if self.last_active_ago_s is not None and not (
            isinstance(self.last_active_ago_s, int | float) and self.last_active_ago_s >= 0
        ):
            raise ValueError(f"last_active_ago_s must be ≥ 0 or None, got {self.last_active_ago_s!r}")
        if self.status is PresenceState.OFFLINE and self.online_devices:
            raise ValueError("an offline user has no online devices")

    def __repr__(self) -> str:
        ago = "never" if self.last_active_ago_s is None else f"{self.last_active_ago_s:g} s ago"
        devices = ", ".join(self.online_devices) or "none"
        return (
            f"PresenceStatus({self.user_id!r}: {self.status.value}, last active {ago}, "
            f"devices: {devices})"
        )


@dataclass(frozen=True)
class PresenceChange:
    """One friend's new state and the moment it changed (seconds on the service's clock)."""

    user_id: str
    status: PresenceState
    changed_at_s: float

    def __post_init__(self) -> None:
        _check_id(self.user_id, "user_id")
        if not isinstance(self.status, PresenceState):
            raise ValueError(f"status must be a PresenceState, got {self.status!r}")
        check_number(self.changed_at_s, "changed_at_s", unit="seconds")

    def __repr__(self) -> str:
        return f"PresenceChange({self.user_id!r} → {self.status.value} at {self.changed_at_s:g} s)"


@dataclass(frozen=True)
class PresenceBatch(Sequence[PresenceChange]):
    """What one viewer is sent in one push: the changes, sorted by change time then user id.

    A sequence of :class:`PresenceChange`; :meth:`to_event` is the small dict a chat system
    event (or a WebSocket frame) can carry.
    """

    viewer_id: str
    sent_at_s: float
    changes: tuple[PresenceChange, ...]

    def __post_init__(self) -> None:
        _check_id(self.viewer_id, "viewer_id")
        check_number(self.sent_at_s, "sent_at_s", unit="seconds")
        if not isinstance(self.changes, tuple):
            raise ValueError(f"changes must be a tuple of PresenceChange, got {type(self.changes).__name__}")
        if not self.changes or not all(isinstance(c, PresenceChange) for c in self.changes):
            raise ValueError("a batch holds at least one PresenceChange and nothing else")
        if len({c.user_id for c in self.changes}) != len(self.changes):
            raise ValueError("a batch holds at most one change per friend (the latest)")
        if any(c.changed_at_s > self.sent_at_s for c in self.changes):
            raise ValueError("a batch cannot carry a change that happens after it is sent")

    @overload
    def __getitem__(self, index: int) -> PresenceChange: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PresenceChange]: ...

    def __getitem__(self, index: int | slice) -> PresenceChange | Sequence[PresenceChange]:
        return self.changes[index]

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[PresenceChange]:
        return iter(self.changes)

    def __repr__(self) -> str:
        inner = ", ".join(f"{c.user_id}→{c.status.value}" for c in self.changes)
        return f"PresenceBatch(to {self.viewer_id!r} at {self.sent_at_s:g} s: {inner})"

    def to_event(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) for a system message in the chat stream or a WS frame."""
        return {
            "type": "presence",
            "viewer_id": self.viewer_id,
            "sent_at_s": self.sent_at_s,
            "changes": [
                {"user_id": c.user_id, "status": c.status.value, "changed_at_s": c.changed_at_s}
                for c in self.changes
            ],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per change with its delay (``sent_at_s - changed_at_s``) in seconds."""
        return pd.DataFrame(
            {
                "viewer_id": [self.viewer_id] * len(self.changes),
                "user_id": [c.user_id for c in self.changes],
                "status": [c.status.value for c in self.changes],
                "changed_at_s": [c.changed_at_s for c in self.changes],
                "sent_at_s": [self.sent_at_s] * len(self.changes),
                "delay_s": [self.sent_at_s - c.changed_at_s for c in self.changes],
            }
        )


@dataclass(frozen=True)
class InitialPull:
    """What a user sees on login: the ``limit`` most important friends, most important first."""

    user_id: str
    statuses: tuple[PresenceStatus, ...]
    importances: tuple[float, ...]
    remaining: int

    def __post_init__(self) -> None:
        _check_id(self.user_id, "user_id")
        if not isinstance(self.statuses, tuple) or not all(isinstance(s, PresenceStatus) for s in self.statuses):
            raise ValueError(f"statuses must be a tuple of PresenceStatus, got {self.statuses!r}")
        if not isinstance(self.importances, tuple) or not all(
            isinstance(i, int | float) and not isinstance(i, bool) and not math.isnan(i) for i in self.importances
        ):
            raise ValueError(f"importances must be a tuple of numbers, got {self.importances!r}")
        if len(self.statuses) != len(self.importances):
            raise ValueError("statuses and importances must have the same length")
        if list(self.importances) != sorted(self.importances, reverse=True):
            raise ValueError("an initial pull is sorted by importance, highest first")
        if not isinstance(self.remaining, int) or self.remaining < 0:
            raise ValueError(f"remaining must be a count ≥ 0, got {self.remaining!r}")

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.user_id}={s.status.value}" for s in self.statuses)
        return f"InitialPull({self.user_id!r}: {shown}; {self.remaining} more on demand)"

    def to_frame(self) -> pd.DataFrame:
        """One row per friend: importance, status, seconds since last active."""
        return pd.DataFrame(
            {
                "friend_id": [s.user_id for s in self.statuses],
                "importance": list(self.importances),
                "status": [s.status.value for s in self.statuses],
                "last_active_ago_s": [s.last_active_ago_s for s in self.statuses],
            }
        )


@dataclass
class _Pending:
    """A change waiting for one viewer (internal, mutable)."""

    state_before: PresenceState
    status: PresenceState
    changed_at_s: float
    due_at_s: float


@dataclass(frozen=True)
class _Device:
    heartbeat_at_s: float
    active_at_s: float | None

    def deadlines(self, policy: PresencePolicy) -> tuple[float, float | None]:
        """When this device goes offline, and when it turns idle (``None``: never used)."""
        offline_at = self.heartbeat_at_s + policy.offline_after_s
        idle_at = None if self.active_at_s is None else self.active_at_s + policy.away_after_s
        return offline_at, idle_at


@dataclass(frozen=True)
class _Record:
    devices: dict[str, _Device]
    last_active_at_s: float | None

    def encode(self) -> str:
        return json.dumps(
            {
                "devices": {d: [v.heartbeat_at_s, v.active_at_s] for d, v in self.devices.items()},
                "last_active_at_s": self.last_active_at_s,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str | None) -> _Record:
        if text is None:
            return cls({}, None)
        raw = json.loads(text)
        devices = {d: _Device(float(v[0]), _maybe_float(v[1])) for d, v in raw["devices"].items()}
        return cls(devices, _maybe_float(raw["last_active_at_s"]))


class PresenceService:
    """Heartbeats, statuses, importance tiers and batched change notifications.

    ``store`` keeps the records (:class:`MemoryTTLStore` or :class:`RedisTTLStore`), ``clock``
    returns seconds (never read elsewhere), ``policy`` holds the numbers (defaults: heartbeat
    every 5 s, offline after 30 s, away after 5 min, score ≥ 5 told within 5 s, others within
    2 min) and ``friends`` maps each user to ``{friend_id: importance}``. Every user id the
    service accepts appears in ``friends``, as a key or as a friend.

    ``shared_viewers=True`` is for one service of several sharing ``store``, each owning a part
    of the users (:mod:`chatdesign.presence.cluster`): a viewer owned by another service never
    beats here, so whether a viewer is online is judged from its record in the store (when a
    change is queued, and again when its batch is flushed) instead of from this service's own
    announcements. :meth:`adopt` and :meth:`release` move a user between such services.
    """

    def __init__(
        self,
        store: TTLStore,
        clock: Callable[[], float],
        policy: PresencePolicy | None = None,
        friends: FriendsGraph | None = None,
        *,
        shared_viewers: bool = False,
    ) -> None:
        if not isinstance(shared_viewers, bool):
            raise ValueError(f"shared_viewers must be True or False, got {shared_viewers!r}")
        if not isinstance(store, TTLStore):
            raise ValueError(f"store must implement TTLStore, got {type(store).__name__}")
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds, got {clock!r}")
        if policy is not None and not isinstance(policy, PresencePolicy):
            raise ValueError(f"policy must be a PresencePolicy, got {type(policy).__name__}")
        _presence_number(clock(), "clock()", unit="seconds")  # a misconfigured clock fails here, not later
        self._store = store
        self._clock = clock
        self._policy = policy if policy is not None else PresencePolicy()
        self._friends = _copy_friends(friends if friends is not None else {})
        viewers: dict[str, list[str]] = {user: [] for user in self._friends}
        for viewer, friend_importance in self._friends.items():
            for friend in friend_importance:
                viewers.setdefault(friend, []).append(viewer)
        self._viewers = {user: tuple(sorted(v)) for user, v in viewers.items()}
        self._latest_s = -math.inf
        self._announced: dict[str, PresenceState] = {}
        self._timer_at: dict[str, float] = {}  # the pending heap entry per user
        self._flip_at: dict[str, float] = {}  # when the user's state could next change by itself
        self._timers: list[tuple[float, str]] = []
        self._pending: dict[str, dict[str, _Pending]] = {}
        self._viewer_due: dict[str, float] = {}
        self._due: list[tuple[float, str]] = []
        self._interactions: dict[tuple[str, str], tuple[float, float]] = {}
        self._seen: dict[str, dict[str, PresenceState]] = {}  # viewer -> friend -> pulled state ≠ announced
        self._shared_viewers = shared_viewers

    def __repr__(self) -> str:
        return (
            f"PresenceService(users={len(self._viewers)}, store={self._store!r}, "
            f"pending_changes={self.pending_changes})"
        )

    @property
    def policy(self) -> PresencePolicy:
        """The rules this service applies."""
        return self._policy

    @property
    def users(self) -> tuple[str, ...]:
        """Every user id the service knows (the friends graph's), sorted."""
        return tuple(sorted(self._viewers))

    @property
    def pending_changes(self) -> int:
        """How many (viewer, friend) changes are waiting to be sent."""
        return sum(len(changes) for changes in self._pending.values())

    # -- input --------------------------------------------------------------------------

    def heartbeat(self, user_id: str, device_id: str, active: bool = True) -> PresenceStatus:
        """Record a heartbeat from ``device_id`` of ``user_id`` at ``clock()``; return the status.

        ``active=False`` means the device is connected but the user did nothing on it (an app in
        the background): it keeps the user from going offline, not from going away. Raises
        :class:`UnknownUserError` for a user outside the friends graph and ``PresenceError`` for
        an empty device id, a non-bool ``active`` or a clock that went backwards.
        """
        self._check_user(user_id)
        _check_id(device_id, "device_id")
        if not isinstance(active, bool):
            raise PresenceError(f"active must be True or False, got {active!r}")
        now = self._now()
        self._run_user_timers(user_id, now)
        record = self._read(user_id)
        alive_devices = {
            device: state
            for device, state in record.devices.items()
            if state.deadlines(self._policy)[0] > now
        }
        previous = alive_devices.get(device_id)
        active_at = now if active else (previous.active_at_s if previous else None)
        alive_devices[device_id] = _Device(now, active_at)
        last_active = now if active else record.last_active_at_s
        updated = _Record(alive_devices, last_active)
        self._store.set(_key(user_id), updated.encode(), self._policy.last_seen_ttl_s)
        event = PresenceEvent.ACTIVE_HEARTBEAT if active else PresenceEvent.IDLE_HEARTBEAT
        old = self._announced.get(user_id, PresenceState.OFFLINE)
        new = next_state(old, event)
        if new is not old:
            self._announce(user_id, old, new, now)
        self._arm_timer(user_id, updated, now)
        return self._status_from(user_id, updated, now)

    def record_interaction(self, user_a: str, user_b: str, messages: float = 1) -> float:
        """Count ``messages`` exchanged between two friends now; returns their decayed total.

        Raises the presence errors for unknown users, a user talking to themselves, users who
        are not friends either way, or a count of messages that is not positive.
        """
        self._check_user(user_a)
        self._check_user(user_b)
        if user_a == user_b:
            raise PresenceError(f"a user cannot interact with themselves: {user_a!r}")
        if user_b not in self._friends.get(user_a, {}) and user_a not in self._friends.get(
            user_b, {}
        ):
            raise NotAFriendError(f"{user_a!r} and {user_b!r} are not friends")
        count = _presence_number(messages, "messages", positive=True)
        now = self._now()
        pair = _pair(user_a, user_b)
        total = self._decayed_messages(pair, now) + count
        if not math.isfinite(total * self._policy.interaction_weight):
            raise PresenceError(
                f"messages={messages!r} makes the interaction total of {user_a!r} and {user_b!r} too large "
                f"to score (it overflows a float)"
            )
        self._interactions[pair] = (total, now)
        return total

    def adopt(self, user_id: str, since_s: float) -> PresenceStatus:
        """Take ``user_id`` over from another service sharing the store (whose owner died, or
        whose share of the users moved here): read the record, arm the timer so the user goes
        offline (or away) when the record says, and announce the recorded state to online
        viewers as news -- the old owner may have died before pushing it.

        A user who is offline now is announced offline only if that happened at or after
        ``since_s`` (seconds on the service's clock: how far back the old owner's unsent changes
        could reach), so a failover does not re-announce every long-gone user. A viewer may thus
        hear a change twice (once from the old owner, once here): at-least-once, not exactly-once.
        Raises :class:`UnknownUserError` for a user outside the graph and ``PresenceError`` for a
        bad ``since_s`` or a clock that went backwards (changing nothing).
        """
        self._check_user(user_id)
        since = _presence_number(since_s, "since_s", unit="seconds")
        now = self._now()
        record = self._read(user_id)
        state, _ = self._state_at(record, now)
        self._timer_at.pop(user_id, None)  # stale heap entries are skipped by flush
        self._flip_at.pop(user_id, None)
        if state is not PresenceState.OFFLINE:
            opposite = PresenceState.OFFLINE
            self._announce(user_id, self._announced.get(user_id, opposite), state, now, assumed_before=opposite)
            self._arm_timer(user_id, record, now)
        elif record.devices:
            went_offline = max(device.deadlines(self._policy)[0] for device in record.devices.values())
            if went_offline >= since:
                self._announce(user_id, self._announced.get(user_id, PresenceState.ONLINE), state,
                               went_offline, assumed_before=PresenceState.ONLINE)
        return self._status_from(user_id, record, now)

    def release(self, user_id: str) -> None:
        """Forget ``user_id``'s timer and announced state: another service owns the user now
        (the record in the store is untouched). Pending changes *for* the user as a viewer stay.
        Raises :class:`UnknownUserError` for a user outside the graph."""
        self._check_user(user_id)
        self._timer_at.pop(user_id, None)
        self._flip_at.pop(user_id, None)
        self._announced.pop(user_id, None)

    # -- questions ----------------------------------------------------------------------

    def status(self, user_id: str) -> PresenceStatus:
        """``user_id``'s presence now (online / away / offline, last active, devices)."""
        self._check_user(user_id)
        now = self._now()
        return self._status_from(user_id, self._read(user_id), now)

    def statuses(self, viewer_id: str, user_ids: Sequence[str]) -> tuple[PresenceStatus, ...]:
        """The presence of ``user_ids`` (each a friend of ``viewer_id``) in one store round trip.

        Raises :class:`NotAFriendError` if any of them is not the viewer's friend: presence is
        shown to friends only, and ``PresenceError`` if ``user_ids`` is not a sequence of ids.
        The order of the answer follows ``user_ids``. The answer is what the viewer now shows:
        a pending push it already contains is cancelled, and a later flip back is news again.
        Pull after the viewer's first heartbeat: a pull by an offline viewer is not tracked.
        """
        self._check_user(viewer_id)
        if isinstance(user_ids, str | bytes) or not isinstance(user_ids, Iterable):
            raise PresenceError(f"user_ids must be a sequence of ids (not a single string), got {user_ids!r}")
        ids = list(user_ids)
        friends = self._friends.get(viewer_id, {})
        for user_id in ids:
            _check_id(user_id, "user_id")
            if user_id not in friends:
                raise NotAFriendError(f"{user_id!r} is not a friend of {viewer_id!r}")
        answer = self._statuses_at(ids, self._now())
        self._reconcile_pull(viewer_id, answer)
        return answer

    def importance(self, viewer_id: str, friend_id: str) -> float:
        """The score of ``friend_id`` for ``viewer_id`` now: base importance + interactions."""
        self._check_friend(viewer_id, friend_id)
        return self._score(viewer_id, friend_id, self._now())

    def initial_statuses(self, user_id: str, limit: int) -> InitialPull:
        """On login: the ``limit`` most important friends' statuses, most important first.

        Ties go by friend id. The other friends are counted in ``remaining`` and fetched on
        demand with :meth:`statuses`. Raises ``PresenceError`` for a negative or non-int limit.
        Call it after the login's first heartbeat, so that the pull is reconciled with the
        pushes that follow (see :meth:`statuses`).
        """
        self._check_user(user_id)
        limit = _presence_count(limit, "limit")
        now = self._now()
        friends = self._friends.get(user_id, {})
        ranked = sorted((-self._score(user_id, f, now), f) for f in friends)[:limit]
        statuses = self._statuses_at([friend for _, friend in ranked], now)
        self._reconcile_pull(user_id, statuses)
        return InitialPull(
            user_id, statuses, tuple(-neg for neg, _ in ranked), len(friends) - len(ranked)
        )

    # -- output -------------------------------------------------------------------------

    def flush(self, now: float | None = None) -> dict[str, PresenceBatch]:
        """Everything due by ``now`` (seconds; the clock's time by default): ``{viewer_id: batch}``,
        viewers sorted by id.

        First the timers that ran out by ``now`` are applied (users going away or offline at
        the moment they did), then every online or away viewer with a change due by ``now``
        gets one batch. Call it about once a second. Raises :class:`ClockWentBackwardsError`
        if ``now`` is earlier than a time the service has already used, and ``PresenceError``
        if it is later than the service's clock (milliseconds passed for seconds, say): the
        service would otherwise refuse every later clock reading as going backwards.
        """
        current = _presence_number(self._clock(), "clock()", unit="seconds")
        if now is not None:
            asked = _presence_number(now, "now", unit="seconds")
            if asked > current:
                raise PresenceError(
                    f"flush(now={now!r}) is {asked - current:.6g} s ahead of the service's clock "
                    f"({current!r} s): pass the clock's time in seconds"
                )
            current = asked
        moment = self._advance_to(current)
        while self._timers and self._timers[0][0] <= moment:
            at, user_id = heapq.heappop(self._timers)
            if self._timer_at.get(user_id) == at:
                self._run_user_timers(user_id, moment)
        batches: dict[str, PresenceBatch] = {}
        while self._due and self._due[0][0] <= moment:
            due_at, viewer_id = heapq.heappop(self._due)
            if self._viewer_due.get(viewer_id) != due_at:
                continue
            del self._viewer_due[viewer_id]
            pending = self._pending.pop(viewer_id, {})
            changes = sorted(
                (PresenceChange(user, p.status, p.changed_at_s) for user, p in pending.items()),
                key=lambda c: (c.changed_at_s, c.user_id),
            )
            if changes:
                batches[viewer_id] = PresenceBatch(viewer_id, moment, tuple(changes))
        if self._shared_viewers and batches:
            online = self._online_viewers(list(batches), moment)
            batches = {viewer: batch for viewer, batch in batches.items() if viewer in online}
        return dict(sorted(batches.items()))

    # -- internals ----------------------------------------------------------------------

    def _now(self) -> float:
        return self._advance_to(self._clock())

    def _advance_to(self, now: float) -> float:
        now = _presence_number(now, "now", unit="seconds")
        if now < self._latest_s:
            raise ClockWentBackwardsError(
                f"time went backwards: {now!r} s is before {self._latest_s!r} s already used"
            )
        shortest = min(self._policy.offline_after_s, self._policy.away_after_s)
        if not now + shortest > now:
            raise PresenceError(
                f"now={now!r} s is too large for a float clock: {shortest:g} s later cannot be told "
                f"apart from it (seconds since the epoch fit; nanoseconds do not)"
            )
        self._latest_s = float(now)
        return self._latest_s

    def _check_user(self, user_id: str) -> None:
        _check_id(user_id, "user_id")
        if user_id not in self._viewers:
            raise UnknownUserError(f"unknown user {user_id!r}: not in the friends graph")

    def _check_friend(self, viewer_id: str, friend_id: str) -> None:
        self._check_user(viewer_id)
        self._check_user(friend_id)
        if friend_id not in self._friends.get(viewer_id, {}):
            raise NotAFriendError(f"{friend_id!r} is not a friend of {viewer_id!r}")

    def _read(self, user_id: str) -> _Record:
        return _Record.decode(self._store.get(_key(user_id)))

    def _statuses_at(self, user_ids: list[str], now: float) -> tuple[PresenceStatus, ...]:
        raw = self._store.get_many([_key(u) for u in user_ids])
        return tuple(
            self._status_from(user, _Record.decode(text), now)
            for user, text in zip(user_ids, raw, strict=True)
        )

    def _state_at(self, record: _Record, at: float) -> tuple[PresenceState, tuple[str, ...]]:
        best = PresenceState.OFFLINE
        alive: list[str] = []
        for device, state in record.devices.items():
            device_state = device_state_at(at, *state.deadlines(self._policy))
            if device_state is not PresenceState.OFFLINE:
                alive.append(device)
            if STATE_RANK[device_state] > STATE_RANK[best]:
                best = device_state
        return best, tuple(sorted(alive))

    def _status_from(self, user_id: str, record: _Record, now: float) -> PresenceStatus:
        state, devices = self._state_at(record, now)
        last = record.last_active_at_s
        ago = None if last is None else max(0.0, now - last)
        return PresenceStatus(user_id, state, ago, devices)

    def _next_flip(self, record: _Record, after: float) -> float | None:
        """The first moment after ``after`` at which some device's state changes by itself."""
        candidates: list[float] = []
        for state in record.devices.values():
            offline_at, idle_at = state.deadlines(self._policy)
            if offline_at > after:
                candidates.append(offline_at)
                if idle_at is not None and after < idle_at < offline_at:
                    candidates.append(idle_at)
        return min(candidates, default=None)

    def _arm_timer(self, user_id: str, record: _Record, after: float) -> None:
        """Remember ``user_id``'s next flip; schedule it unless an earlier timer is pending."""
        flip = self._next_flip(record, after)
        if flip is None:
            self._flip_at.pop(user_id, None)
            return
        self._flip_at[user_id] = flip
        current = self._timer_at.get(user_id)
        if current is None or flip < current:
            self._timer_at[user_id] = flip
            heapq.heappush(self._timers, (flip, user_id))

    def _run_user_timers(self, user_id: str, now: float) -> None:
        """Apply ``user_id``'s timers due by ``now``, each at its own time.

        A user who kept sending heartbeats has a later flip than the pending timer: the timer
        moves there without reading the store, so steady heartbeats cost one heap push per
        grace period, not a store read.
        """
        record: _Record | None = None
        while (at := self._timer_at.get(user_id)) is not None and at <= now:
            del self._timer_at[user_id]
            flip = self._flip_at.get(user_id)
            if flip is not None and flip > at:
                self._timer_at[user_id] = flip
                heapq.heappush(self._timers, (flip, user_id))
                continue
            record = record if record is not None else self._read(user_id)
            state, _ = self._state_at(record, at)
            old = self._announced.get(user_id, PresenceState.OFFLINE)
            if state is not old:
                event = (
                    PresenceEvent.HEARTBEAT_TIMEOUT
                    if state is PresenceState.OFFLINE
                    else PresenceEvent.IDLE_TIMEOUT
                )
                self._announce(user_id, old, next_state(old, event), at)
            self._arm_timer(user_id, record, at)

    def _online_viewers(self, viewers: Sequence[str], at: float) -> set[str]:
        """Which of ``viewers`` are online or away at ``at``: by this service's announcements,
        or (``shared_viewers``) by their records in the shared store."""
        if not self._shared_viewers:
            return {viewer for viewer in viewers if viewer in self._announced}
        raw = self._store.get_many([_key(viewer) for viewer in viewers])
        return {
            viewer for viewer, text in zip(viewers, raw, strict=True)
            if self._state_at(_Record.decode(text), at)[0] is not PresenceState.OFFLINE
        }

    def _announce(self, user_id: str, old: PresenceState, new: PresenceState, at: float,
                  assumed_before: PresenceState | None = None) -> None:
        """``user_id`` changed from ``old`` to ``new`` at ``at``: queue it for online viewers.

        Each viewer's change is compared with what *that viewer* last saw (a pending change's
        starting point, a divergent pull, or else the announced state ``old``; with
        ``assumed_before``, that state for every viewer without a pending change: an adopted
        user's news).
        """
        if new is PresenceState.OFFLINE:
            self._announced.pop(user_id, None)
            self._pending.pop(user_id, None)  # an offline viewer pulls on login instead
            self._viewer_due.pop(user_id, None)
            self._seen.pop(user_id, None)
        else:
            if old is PresenceState.OFFLINE:
                self._seen.pop(user_id, None)  # a new session starts from its own pull
            self._announced[user_id] = new
        online = self._online_viewers(self._viewers[user_id], max(at, self._latest_s))
        for viewer in self._viewers[user_id]:
            if viewer not in online:
                continue  # offline viewers receive nothing
            pending_for_viewer = self._pending.setdefault(viewer, {})
            pending = pending_for_viewer.get(user_id)
            if pending is not None:
                before = pending.state_before
            elif assumed_before is not None:
                before = assumed_before
            else:
                before = self._pop_seen(viewer, user_id, old)
            if new is before:
                if pending is not None:
                    del pending_for_viewer[user_id]  # a flap inside the window: nothing to say
                continue
            due = at + self._policy.tier_for(self._score(viewer, user_id, at)).max_delay_s
            if pending is None:
                pending_for_viewer[user_id] = _Pending(before, new, at, due)
            else:
                pending.status, pending.changed_at_s = new, at
                pending.due_at_s = min(pending.due_at_s, due)
                due = pending.due_at_s
            if due < self._viewer_due.get(viewer, math.inf):
                self._viewer_due[viewer] = due
                heapq.heappush(self._due, (due, viewer))

    def _pop_seen(self, viewer_id: str, friend_id: str, default: PresenceState) -> PresenceState:
        seen = self._seen.get(viewer_id)
        if not seen or friend_id not in seen:
            return default
        state = seen.pop(friend_id)
        if not seen:
            del self._seen[viewer_id]
        return state

    def _reconcile_pull(self, viewer_id: str, shown: Sequence[PresenceStatus]) -> None:
        """``viewer_id`` now shows ``shown``: cancel pushes it already has, remember divergences."""
        if viewer_id not in self._announced:
            return  # an offline viewer's pull is not tracked: a client pulls after its first heartbeat
        pending_for_viewer = self._pending.get(viewer_id, {})
        for status in shown:
            friend, state = status.user_id, status.status
            pending = pending_for_viewer.get(friend)
            if pending is not None:
                if state is pending.status:
                    del pending_for_viewer[friend]  # the viewer already shows the news
                else:
                    pending.state_before = state
                continue
            self._pop_seen(viewer_id, friend, default=state)
            if state is not self._announced.get(friend, PresenceState.OFFLINE):
                self._seen.setdefault(viewer_id, {})[friend] = state

    def _decayed_messages(self, pair: tuple[str, str], at: float) -> float:
        total, since = self._interactions.get(pair, (0.0, at))
        decay: float = 0.5 ** (max(0.0, at - since) / self._policy.interaction_half_life_s)
        return total * decay

    def _score(self, viewer_id: str, friend_id: str, at: float) -> float:
        base = self._friends[viewer_id][friend_id]
        pair = _pair(viewer_id, friend_id)
        if pair not in self._interactions:
            return base
        total, since = self._interactions[pair]
        return base + self._policy.interaction_boost(total, max(0.0, at - since))


def _key(user_id: str) -> str:
    return f"user:{user_id}"


def _pair(user_a: str, user_b: str) -> tuple[str, str]:
    return (user_a, user_b) if user_a < user_b else (user_b, user_a)


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _check_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise PresenceError(f"{what} must be a non-empty string, got {value!r}")


def _presence_number(value: object, name: str, *, positive: bool = False, unit: str = "") -> float:
    """:func:`check_number`, raising ``PresenceError`` instead: the service's callers catch that
    family (it is still a ``ValueError``), so the rule is shared and only the type differs."""
    try:
        return check_number(value, name, positive=positive, unit=unit)
    except ValueError as error:
        raise PresenceError(str(error)) from None


def _presence_count(value: object, name: str) -> int:
    """:func:`check_whole` (≥ 0), raising ``PresenceError`` for the same reason."""
    try:
        return check_whole(value, name)
    except ValueError as error:
        raise PresenceError(str(error)) from None


def _copy_friends(friends: FriendsGraph) -> dict[str, dict[str, float]]:
    if not isinstance(friends, Mapping):
        raise PresenceError(f"friends must map user ids to {{friend_id: importance}}, got {friends!r}")
    copied: dict[str, dict[str, float]] = {}
    for user, friend_importance in friends.items():
        _check_id(user, "user id in friends")
        if not isinstance(friend_importance, Mapping):
            raise PresenceError(f"friends[{user!r}] must map friend ids to importance")
        inner: dict[str, float] = {}
        for friend, importance in friend_importance.items():
            _check_id(friend, f"friend id of {user!r}")
            if friend == user:
                raise PresenceError(f"{user!r} cannot be their own friend")
            inner[friend] = _presence_number(importance, f"importance of {friend!r} for {user!r}")
        copied[user] = inner
    return copied
