"""Regression tests for the presence defects of issue 15, and their siblings.

Each test failed before its fix. They run on the in-memory store (the defects are in the
service's logic, not in the store), except where the store itself is the subject.
"""

from __future__ import annotations

import math
import sys

import pytest

from chatdesign.presence import (
    ClockWentBackwardsError,
    InitialPull,
    ManualClock,
    MemoryTTLStore,
    PresenceBatch,
    PresenceChange,
    PresenceError,
    PresencePolicy,
    PresenceService,
    PresenceState,
    Tier,
    derive_state,
    heartbeat_times,
    status_timeline,
)
from chatdesign.presence.chat_channel import ChatPresenceChannel

ON, AWAY, OFF = PresenceState.ONLINE, PresenceState.AWAY, PresenceState.OFFLINE
FRIENDS = {"alice": {"bob": 1.0}, "bob": {"alice": 1.0}}
WALL_CLOCK_S = 1.7e9  # where a wall clock reads today: 1 ulp is 2.4e-7 s


def make(start_s: float = 0.0, policy: PresencePolicy | None = None) -> tuple[PresenceService, ManualClock]:
    clock = ManualClock(start_s)
    return PresenceService(MemoryTTLStore(clock), clock, policy, friends=FRIENDS), clock


def tick_until(service: PresenceService, clock: ManualClock, until_s: float) -> list[PresenceBatch]:
    """Flush once a second up to ``until_s``; every batch sent, in order."""
    sent: list[PresenceBatch] = []
    while clock() + 1 <= until_s:
        clock.advance(1.0)
        sent.extend(service.flush(clock()).values())
    return sent


def run(
    service: PresenceService, clock: ManualClock, until_s: float, beating: tuple[str, ...] = ("alice", "bob")
) -> list[PresenceBatch]:
    """Users in ``beating`` send a heartbeat every 5 s; flush once a second up to ``until_s``."""
    sent: list[PresenceBatch] = []
    while clock() < until_s:
        if clock() % 5 == 0:
            for user in beating:
                service.heartbeat(user, "phone")
        clock.advance(1.0)
        sent.extend(service.flush(clock()).values())
    return sent


def told(sent: list[PresenceBatch], viewer: str = "alice") -> list[tuple[str, PresenceState]]:
    return [(c.user_id, c.status) for b in sent if b.viewer_id == viewer for c in b]


# -- 1. timers that fire while the device still looks alive ----------------------------------


def test_the_rounding_that_caused_the_defect_happens_at_wall_clock_times() -> None:
    t = WALL_CLOCK_S
    assert (t + 30.3) - t < 30.3  # the trap: the deadline, measured back, is short of the grace
    assert (t + 300.3) - t < 300.3


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (PresencePolicy(offline_after_s=30.3), OFF),
        (PresencePolicy(away_after_s=300.3), AWAY),
    ],
    ids=["offline_after_s=30.3", "away_after_s=300.3"],
)
def test_timeouts_are_announced_at_wall_clock_times(policy: PresencePolicy, expected: PresenceState) -> None:
    service, clock = make(WALL_CLOCK_S, policy)
    service.heartbeat("bob", "phone")  # bob is online before alice: she is not told of that
    sent: list[PresenceBatch] = []
    while clock() < WALL_CLOCK_S + policy.away_after_s + 260:
        service.heartbeat("alice", "phone")
        if expected is AWAY:
            service.heartbeat("bob", "phone", active=False)  # connected, idle
        sent += tick_until(service, clock, clock() + 5)
    assert service.status("bob").status is expected
    told = [c.status for b in sent for c in b if b.viewer_id == "alice" and c.user_id == "bob"]
    assert told == [expected]


def test_a_silent_viewer_stops_receiving_at_wall_clock_times() -> None:
    service, clock = make(WALL_CLOCK_S, PresencePolicy(offline_after_s=30.3))
    service.heartbeat("alice", "phone")
    tick_until(service, clock, WALL_CLOCK_S + 60)  # alice silent since the start: offline
    service.heartbeat("bob", "phone")
    sent = tick_until(service, clock, clock() + 130)
    assert service.status("alice").status is OFF
    assert [b.viewer_id for b in sent] == []


def test_a_clock_too_coarse_for_the_grace_period_is_refused() -> None:
    service, clock = make(0.0)
    clock.set(1e18)  # one ulp is 128 s: 30 s later rounds back to now
    with pytest.raises(PresenceError, match="too large"):
        service.heartbeat("bob", "phone")
    assert service.pending_changes == 0


def test_the_state_rule_has_one_boundary_for_ago_and_for_deadlines() -> None:
    assert derive_state(30.0, 0.0, 30.0, 300.0) is OFF
    assert derive_state(math.nextafter(30.0, 0), 0.0, 30.0, 300.0) is ON
    with pytest.raises(ValueError, match="heartbeat_ago_s"):
        derive_state("5", 0.0, 30.0, 300.0)  # type: ignore[arg-type]


# -- 2. a pull is reconciled with pending pushes -----------------------------------------------


def test_a_pull_then_a_flip_back_is_told() -> None:
    service, clock = make()
    assert told(run(service, clock, 130)) == [("bob", ON)]
    sent = run(service, clock, 200, beating=("alice",))  # bob silent from 130: offline at 155
    assert sent == []  # that change is pending for alice until 275
    (seen,) = service.statuses("alice", ["bob"])
    assert seen.status is OFF  # alice's screen now shows bob offline
    sent = run(service, clock, 400)  # bob comes back before the change was pushed
    assert told(sent) == [("bob", ON)]


def test_a_pull_that_already_shows_the_pending_change_cancels_the_push() -> None:
    service, clock = make()
    service.heartbeat("alice", "phone")
    clock.set(2.0)
    service.heartbeat("bob", "phone")  # pending for alice, due at 122
    pull = service.initial_statuses("alice", limit=1)
    assert pull.statuses[0].status is ON
    assert service.pending_changes == 0  # the push it would have had is cancelled
    clock.set(5.0)
    assert told(run(service, clock, 200)) == []


def test_an_initial_pull_is_reconciled_too() -> None:
    service, clock = make()
    run(service, clock, 130)
    run(service, clock, 200, beating=("alice",))
    assert service.initial_statuses("alice", limit=5).statuses[0].status is OFF
    assert told(run(service, clock, 400)) == [("bob", ON)]


def test_a_pull_while_offline_is_not_tracked_and_a_new_session_starts_clean() -> None:
    service, clock = make()
    run(service, clock, 130)
    run(service, clock, 200, beating=())  # both offline
    assert service.statuses("alice", ["bob"])[0].status is OFF  # alice is offline: not tracked
    sent = run(service, clock, 400)
    assert told(sent) == [("bob", ON)]


# -- 3. record_interaction: overflow, and nothing half-written ---------------------------------


def test_interactions_cannot_overflow_to_infinity() -> None:
    service, _ = make()
    service.record_interaction("alice", "bob", messages=sys.float_info.max)
    with pytest.raises(PresenceError, match="too large"):
        service.record_interaction("alice", "bob", messages=sys.float_info.max)
    assert math.isfinite(service.importance("alice", "bob"))
    service.heartbeat("alice", "phone")
    assert service.heartbeat("bob", "phone").status is ON  # raised after writing, before the fix


def test_a_boost_that_overflows_with_the_weight_is_refused() -> None:
    service, _ = make(policy=PresencePolicy(interaction_weight=1e300))
    with pytest.raises(PresenceError, match="too large"):
        service.record_interaction("alice", "bob", messages=1e10)
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    assert service.pending_changes == 1


# -- 4. wrong types get a PresenceError, never a TypeError -------------------------------------


@pytest.mark.parametrize("user_ids", [None, 5, 2.5, object(), b"bob"])
def test_statuses_refuses_a_non_sequence(user_ids: object) -> None:
    service, _ = make()
    with pytest.raises(PresenceError, match="user_ids must be"):
        service.statuses("alice", user_ids)  # type: ignore[arg-type]


def test_value_types_refuse_wrong_containers() -> None:
    with pytest.raises(ValueError, match="changes must be a tuple"):
        PresenceBatch("alice", 1.0, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="statuses must be a tuple"):
        InitialPull("alice", None, (), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="importances must be a tuple"):
        InitialPull("alice", (), None, 0)  # type: ignore[arg-type]
    assert len(PresenceBatch("alice", 1.0, (PresenceChange("bob", ON, 1.0),))) == 1


def test_store_refuses_a_non_sequence_of_keys() -> None:
    store = MemoryTTLStore(ManualClock())
    with pytest.raises(ValueError, match="keys must be a sequence"):
        store.get_many(None)  # type: ignore[arg-type]


def test_store_refuses_a_ttl_below_its_clock_resolution() -> None:
    store = MemoryTTLStore(ManualClock(WALL_CLOCK_S))
    with pytest.raises(ValueError, match="too small"):
        store.set("k", "v", 1e-9)  # before the fix: stored already expired, silently
    store.set("k", "v", 1e-3)
    assert store.get("k") == "v"


def test_store_refuses_a_clock_that_is_not_seconds() -> None:
    store = MemoryTTLStore(lambda: "noon")  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="clock"):
        store.set("k", "v", 5.0)


# -- 5. flush(now) far ahead, and misconfiguration checked up front ----------------------------


def test_flush_far_ahead_is_refused_and_the_service_keeps_working() -> None:
    service, clock = make(1_000.0)
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    with pytest.raises(PresenceError, match="ahead of the service's clock"):
        service.flush(1_000_000.0)  # milliseconds for seconds
    sent = run(service, clock, 1_130.0)  # before the fix: every call here went "backwards"
    assert told(sent) == [("bob", ON)]  # bob was offline when alice came: only she is told
    with pytest.raises(ClockWentBackwardsError):
        service.flush(1_000.0)


def test_flush_without_now_uses_the_clock() -> None:
    service, clock = make(0.0, PresencePolicy(tiers=(Tier("everyone", -math.inf, 10.0),)))
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    clock.set(9.0)
    assert service.flush() == {}
    clock.set(10.0)
    assert list(service.flush()) == ["alice"]


def test_a_clock_that_does_not_return_seconds_is_refused_when_built() -> None:
    clock = ManualClock()
    with pytest.raises(PresenceError, match="clock"):
        PresenceService(MemoryTTLStore(clock), lambda: "noon", friends=FRIENDS)  # type: ignore[arg-type, return-value]
    with pytest.raises(PresenceError, match="clock"):
        PresenceService(MemoryTTLStore(clock), lambda: math.nan, friends=FRIENDS)


def test_chat_channel_checks_its_collaborators() -> None:
    with pytest.raises(ValueError, match="chat must be a ChatServer"):
        ChatPresenceChannel(object())  # type: ignore[arg-type]
    from chatdesign.chat import ChatServer

    chat = ChatServer(clock=ManualClock(1.0))
    with pytest.raises(ValueError, match="account_id must be"):
        ChatPresenceChannel(chat, account_id="")
    channel = ChatPresenceChannel(chat)
    with pytest.raises(ValueError, match="batches must map"):
        channel.deliver(None)  # type: ignore[arg-type]


def test_timelines_refuse_unbounded_runs() -> None:
    with pytest.raises(ValueError, match="heartbeats"):
        heartbeat_times(1e12, 5.0)
    with pytest.raises(ValueError, match="samples"):
        status_timeline([0.0], until_s=1e9, step_s=1.0)
