"""PresenceService: heartbeats, states, tiers, batching and first-login pull, on both stores."""

from __future__ import annotations

import math

import pytest

from chatdesign.presence import (
    ClockWentBackwardsError,
    InitialPull,
    ManualClock,
    MemoryTTLStore,
    NotAFriendError,
    PresenceBatch,
    PresenceChange,
    PresenceError,
    PresencePolicy,
    PresenceService,
    PresenceState,
    PresenceStatus,
    Tier,
    UnknownUserError,
)

from .conftest import StoreKit

ON, AWAY, OFF = PresenceState.ONLINE, PresenceState.AWAY, PresenceState.OFFLINE

FRIENDS = {
    "alice": {"bob": 6.0, "carol": 1.0, "dave": 2.0},
    "bob": {"alice": 1.0},
    "carol": {"alice": 5.0},
    "dave": {"alice": 1.0},
}


def make(kit: StoreKit, policy: PresencePolicy | None = None) -> PresenceService:
    return PresenceService(kit.store, kit.clock, policy, friends=FRIENDS)


def at(kit: StoreKit, t: float) -> float:
    """Move the service clock to ``t`` seconds after the kit's start."""
    return kit.clock.set(1_000.0 + t)


# -- heartbeats and states ------------------------------------------------------------------


def test_unseen_user_is_offline_and_never_active(store_kit: StoreKit) -> None:
    status = make(store_kit).status("bob")
    assert status == PresenceStatus("bob", OFF, None, ())


def test_heartbeat_makes_online_then_offline_after_grace(store_kit: StoreKit) -> None:
    service = make(store_kit)
    assert service.heartbeat("bob", "phone").status is ON
    at(store_kit, 29.9)
    assert service.status("bob").status is ON
    at(store_kit, 30.0)
    status = service.status("bob")
    assert status.status is OFF
    assert status.last_active_ago_s == pytest.approx(30.0)
    assert status.online_devices == ()


def test_idle_device_keeps_user_connected_but_away(store_kit: StoreKit) -> None:
    service = make(store_kit, PresencePolicy(away_after_s=60))
    service.heartbeat("bob", "phone")
    for t in range(5, 100, 5):
        at(store_kit, t)
        expected = ON if t < 60 else AWAY
        assert service.heartbeat("bob", "phone", active=False).status is expected
    at(store_kit, 96)
    service.heartbeat("bob", "phone", active=True)
    assert service.status("bob").status is ON


def test_user_is_online_while_any_device_is(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("bob", "phone")
    at(store_kit, 20)
    status = service.heartbeat("bob", "laptop")
    assert status.online_devices == ("laptop", "phone")
    at(store_kit, 40)  # phone silent for 40 s, laptop for 20 s
    status = service.status("bob")
    assert status.status is ON
    assert status.online_devices == ("laptop",)


def test_first_idle_heartbeat_after_offline_is_away(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("bob", "phone")
    at(store_kit, 100)
    status = service.heartbeat("bob", "tablet", active=False)
    assert status.status is AWAY
    assert status.last_active_ago_s == pytest.approx(100)


# -- batching and tiers -------------------------------------------------------------------


def run(
    service: PresenceService, kit: StoreKit, users: tuple[str, ...], start: int, end: int
) -> dict[int, dict[str, PresenceBatch]]:
    """Seconds ``start`` to ``end``: ``users`` beat every 5 s, flush every second."""
    sent: dict[int, dict[str, PresenceBatch]] = {}
    for t in range(start, end + 1):
        at(kit, t)
        if t % 5 == 0:
            for user in users:
                service.heartbeat(user, "phone")
        batches = service.flush(kit.clock())
        if batches:
            sent[t] = batches
    return sent


def test_very_important_friend_is_told_within_five_seconds(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    at(store_kit, 1)
    service.heartbeat("bob", "phone")  # bob has score 6 for alice: very important
    assert service.flush(at(store_kit, 5.9)) == {}
    batches = service.flush(at(store_kit, 6))
    assert list(batches) == ["alice"]
    (change,) = batches["alice"]
    assert change == PresenceChange("bob", ON, 1_001.0)
    assert batches["alice"].sent_at_s == 1_006.0
    assert service.pending_changes == 0


def test_other_friends_wait_up_to_two_minutes(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("carol", "phone")  # score 1 for alice: others
    sent = run(service, store_kit, ("alice", "carol"), 1, 200)
    assert list(sent) == [120]
    batch = sent[120]["alice"]
    assert [(c.user_id, c.status) for c in batch] == [("carol", ON)]
    assert batch.to_frame()["delay_s"].tolist() == [120.0]


def test_changes_not_yet_due_ride_along_in_a_due_batch(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("carol", "phone")  # due at +120
    at(store_kit, 2)
    service.heartbeat("bob", "phone")  # very important, due at +7
    batch = service.flush(at(store_kit, 7))["alice"]
    assert [c.user_id for c in batch] == ["carol", "bob"]
    assert service.flush(at(store_kit, 200)) == {}


def test_offline_viewers_receive_nothing(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("bob", "phone")  # alice is offline: nobody to tell
    for t in range(0, 300, 5):
        at(store_kit, t)
        service.heartbeat("bob", "phone")
        assert "alice" not in service.flush(store_kit.clock())


def test_viewer_going_offline_drops_what_was_pending(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("carol", "phone")  # pending for alice, due at +120
    for t in range(5, 200, 5):
        at(store_kit, t)
        service.heartbeat("carol", "phone")
        assert "alice" not in service.flush(store_kit.clock())  # alice offline from +30
    assert service.pending_changes == 0


def test_flap_inside_the_window_reaches_nobody(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("carol", "phone")
    assert list(run(service, store_kit, ("alice", "carol"), 1, 150)) == [120]
    run(service, store_kit, ("alice",), 151, 190)  # carol silent 40 s: offline at 180
    assert service.pending_changes == 1
    run(service, store_kit, ("alice", "carol"), 191, 195)  # carol back at 195
    assert service.pending_changes == 0
    assert run(service, store_kit, ("alice", "carol"), 196, 400) == {}


def test_offline_change_is_dated_when_the_grace_ran_out(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    service.flush(at(store_kit, 5))
    for t in range(5, 60, 5):
        at(store_kit, t)
        service.heartbeat("alice", "phone")
    batches = service.flush(at(store_kit, 60))  # bob silent since 0: offline at 30, due 35
    assert batches["alice"].changes == (PresenceChange("bob", OFF, 1_030.0),)


def test_latest_state_wins_within_a_window(store_kit: StoreKit) -> None:
    service = make(store_kit, PresencePolicy(away_after_s=10))
    service.heartbeat("alice", "phone")
    service.heartbeat("dave", "phone")  # dave, score 2: others, due at +120
    for t in range(5, 125, 5):
        at(store_kit, t)
        service.heartbeat("alice", "phone")
        service.heartbeat("dave", "phone", active=False)  # dave idle from +10
    batch = service.flush(at(store_kit, 125))["alice"]
    assert [(c.user_id, c.status, c.changed_at_s) for c in batch] == [("dave", AWAY, 1_010.0)]


def test_interactions_promote_a_friend_to_the_fast_tier(store_kit: StoreKit) -> None:
    service = make(store_kit)
    assert service.importance("alice", "carol") == 1.0
    total = service.record_interaction("alice", "carol", messages=4)
    assert total == 4
    assert service.importance("alice", "carol") == pytest.approx(5.0)
    service.heartbeat("alice", "phone")
    service.heartbeat("carol", "phone")
    assert "alice" in service.flush(at(store_kit, 5))


def test_interactions_fade_with_their_half_life(store_kit: StoreKit) -> None:
    service = make(store_kit, PresencePolicy(interaction_half_life_s=100))
    service.record_interaction("carol", "alice", messages=8)
    at(store_kit, 200)
    assert service.importance("alice", "carol") == pytest.approx(1.0 + 2.0)
    assert service.record_interaction("alice", "carol") == pytest.approx(3.0)


def test_batch_to_event_is_a_plain_dict(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    batch = service.flush(at(store_kit, 5))["alice"]
    assert batch.to_event() == {
        "type": "presence",
        "viewer_id": "alice",
        "sent_at_s": 1_005.0,
        "changes": [{"user_id": "bob", "status": "online", "changed_at_s": 1_000.0}],
    }
    assert repr(batch) == "PresenceBatch(to 'alice' at 1005 s: bob→online)"


def test_flush_orders_viewers_by_id(store_kit: StoreKit) -> None:
    service = make(store_kit)
    for user in ("dave", "carol", "bob"):
        service.heartbeat(user, "phone")
    at(store_kit, 1)
    service.heartbeat("alice", "phone")
    sent = run(service, store_kit, ("alice", "bob", "carol", "dave"), 2, 130)
    assert {t: list(batches) for t, batches in sent.items()} == {6: ["carol"], 121: ["bob", "dave"]}


# -- questions ----------------------------------------------------------------------------


def test_initial_statuses_sorted_by_importance(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("bob", "phone")
    service.heartbeat("dave", "laptop", active=False)
    pull = service.initial_statuses("alice", limit=2)
    assert [s.user_id for s in pull.statuses] == ["bob", "dave"]
    assert pull.importances == (6.0, 2.0)
    assert [s.status for s in pull.statuses] == [ON, AWAY]
    assert pull.remaining == 1
    assert pull.to_frame()["friend_id"].tolist() == ["bob", "dave"]
    assert "1 more on demand" in repr(pull)
    assert service.initial_statuses("alice", limit=10).remaining == 0


def test_statuses_answers_in_the_order_asked(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("dave", "phone")
    answer = service.statuses("alice", ["dave", "bob"])
    assert [(s.user_id, s.status) for s in answer] == [("dave", ON), ("bob", OFF)]


def test_statuses_only_for_friends(store_kit: StoreKit) -> None:
    with pytest.raises(NotAFriendError, match="'dave' is not a friend of 'bob'"):
        make(store_kit).statuses("bob", ["alice", "dave"])


# -- refused calls change nothing ---------------------------------------------------------


def test_unknown_user_is_refused(store_kit: StoreKit) -> None:
    service = make(store_kit)
    with pytest.raises(UnknownUserError, match="unknown user 'mallory'"):
        service.heartbeat("mallory", "phone")
    with pytest.raises(UnknownUserError):
        service.status("mallory")
    with pytest.raises(UnknownUserError):
        service.initial_statuses("mallory", 3)


@pytest.mark.parametrize(
    ("device", "active", "match"),
    [("", True, "device_id must be a non-empty string"), ("phone", 1, "active must be True")],
)
def test_bad_heartbeat_writes_nothing(
    store_kit: StoreKit, device: str, active: bool, match: str
) -> None:
    service = make(store_kit)
    with pytest.raises(PresenceError, match=match):
        service.heartbeat("bob", device, active=active)
    assert service.status("bob").status is OFF


def test_clock_going_backwards_is_refused(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("bob", "phone")
    with pytest.raises(ClockWentBackwardsError, match="time went backwards"):
        service.flush(999.0)
    with pytest.raises(PresenceError, match="finite number"):
        service.flush(math.nan)


def test_other_bad_questions(store_kit: StoreKit) -> None:
    service = make(store_kit)
    with pytest.raises(PresenceError, match="limit must be at least 0"):
        service.initial_statuses("alice", -1)
    with pytest.raises(PresenceError, match="not a single string"):
        service.statuses("alice", "bob")
    with pytest.raises(NotAFriendError):
        service.importance("bob", "carol")
    with pytest.raises(NotAFriendError, match="are not friends"):
        service.record_interaction("bob", "carol")
    with pytest.raises(PresenceError, match="themselves"):
        service.record_interaction("bob", "bob")
    with pytest.raises(PresenceError, match="messages must be positive"):
        service.record_interaction("alice", "bob", messages=-2)
    assert service.importance("alice", "bob") == 6.0


@pytest.mark.parametrize(
    ("friends", "match"),
    [
        ([("a", "b")], "friends must map"),
        ({"a": ["b"]}, "must map friend ids"),
        ({"a": {"a": 1.0}}, "their own friend"),
        ({"a": {"b": math.inf}}, "finite number"),
        ({"a": {"": 1.0}}, "non-empty string"),
    ],
)
def test_bad_friend_graphs_are_refused(friends: object, match: str) -> None:
    clock = ManualClock()
    with pytest.raises(PresenceError, match=match):
        PresenceService(MemoryTTLStore(clock), clock, friends=friends)  # type: ignore[arg-type]


def test_constructor_checks_its_collaborators() -> None:
    clock = ManualClock()
    store = MemoryTTLStore(clock)
    with pytest.raises(ValueError, match="store must implement TTLStore"):
        PresenceService({}, clock)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clock must be a callable"):
        PresenceService(store, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="policy must be a PresencePolicy"):
        PresenceService(store, clock, policy={"offline_after_s": 30})  # type: ignore[arg-type]


# -- value types --------------------------------------------------------------------------


def test_value_types_validate_themselves() -> None:
    with pytest.raises(ValueError, match="an offline user has no online devices"):
        PresenceStatus("bob", OFF, 3.0, ("phone",))
    with pytest.raises(ValueError, match="last_active_ago_s"):
        PresenceStatus("bob", ON, -1.0)
    with pytest.raises(ValueError, match="status must be a PresenceState"):
        PresenceChange("bob", "online", 1.0)  # type: ignore[arg-type]
    change = PresenceChange("bob", ON, 5.0)
    with pytest.raises(ValueError, match="at least one PresenceChange"):
        PresenceBatch("alice", 6.0, ())
    with pytest.raises(ValueError, match="at most one change per friend"):
        PresenceBatch("alice", 6.0, (change, change))
    with pytest.raises(ValueError, match="after it is sent"):
        PresenceBatch("alice", 4.0, (change,))
    with pytest.raises(ValueError, match="sorted by importance"):
        InitialPull("alice", (PresenceStatus("a", OFF, None), PresenceStatus("b", OFF, None)),
                    (1.0, 2.0), 0)
    assert repr(change) == "PresenceChange('bob' → online at 5 s)"
    assert repr(PresenceStatus("bob", ON, 2.0, ("phone",))) == (
        "PresenceStatus('bob': online, last active 2 s ago, devices: phone)"
    )


def test_custom_tiers_apply(store_kit: StoreKit) -> None:
    policy = PresencePolicy(tiers=(Tier("close", 2.0, 1.0), Tier("rest", -math.inf, 30.0)))
    service = make(store_kit, policy)
    service.heartbeat("alice", "phone")
    service.heartbeat("dave", "phone")  # score 2 → close, 1 s
    assert service.flush(at(store_kit, 1))["alice"][0].user_id == "dave"


def test_batch_is_a_sequence_and_pull_checks_its_shape() -> None:
    first, second = PresenceChange("bob", ON, 1.0), PresenceChange("carol", OFF, 2.0)
    batch = PresenceBatch("alice", 3.0, (first, second))
    assert len(batch) == 2
    assert list(batch[0:1]) == [first]
    assert second in batch
    with pytest.raises(ValueError, match="status must be a PresenceState"):
        PresenceStatus("bob", "online", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same length"):
        InitialPull("alice", (PresenceStatus("bob", OFF, None),), (), 0)
    with pytest.raises(ValueError, match="remaining must be a count"):
        InitialPull("alice", (), (), -1)


def test_service_describes_itself(store_kit: StoreKit) -> None:
    policy = PresencePolicy(away_after_s=60)
    service = make(store_kit, policy)
    assert service.policy is policy
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    assert repr(service).startswith("PresenceService(users=4, store=")
    assert repr(service).endswith("pending_changes=1)")


def test_away_viewers_still_receive_batches(store_kit: StoreKit) -> None:
    service = make(store_kit, PresencePolicy(away_after_s=10))
    service.heartbeat("alice", "laptop", active=False)  # connected but idle: away
    assert service.status("alice").status is AWAY
    service.heartbeat("bob", "phone")
    batch = service.flush(at(store_kit, 5))["alice"]
    assert batch.changes == (PresenceChange("bob", ON, 1_000.0),)


def test_refused_flush_keeps_what_is_pending(store_kit: StoreKit) -> None:
    service = make(store_kit)
    service.heartbeat("alice", "phone")
    service.heartbeat("bob", "phone")
    with pytest.raises(ClockWentBackwardsError):
        service.flush(1.0)
    assert service.pending_changes == 1
    assert list(service.flush(at(store_kit, 5))) == ["alice"]
