"""Presence across server processes (chatdesign/presence/cluster.py): rendezvous ownership,
adoption, and three in-process PresenceRouters on a real redis-server with a ManualClock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis

from chatdesign.chat.routing import RedisRouter
from chatdesign.presence import (
    ManualClock,
    MemoryTTLStore,
    PresenceBatch,
    PresenceError,
    PresencePolicy,
    PresenceService,
    PresenceState,
    RedisTTLStore,
    UnknownUserError,
)
from chatdesign.presence.cluster import (
    PresenceRouter,
    owner_of,
    ownership_frame,
    rendezvous_weight,
)

NODES = ("node-0", "node-1", "node-2")
ONLINE, OFFLINE = PresenceState.ONLINE, PresenceState.OFFLINE


# --- ownership: a pure function -------------------------------------------------------------------


def test_rendezvous_ownership_is_balanced() -> None:
    users = [f"user-{i}" for i in range(3000)]
    frame = ownership_frame(users, NODES)
    assert list(frame.node) == list(NODES)
    assert frame.users.sum() == 3000
    assert frame.share.between(0.30, 0.37).all(), frame


def test_when_a_node_leaves_only_its_users_move() -> None:
    users = [f"user-{i}" for i in range(2000)]
    before = {u: owner_of(u, NODES) for u in users}
    after = {u: owner_of(u, ("node-0", "node-2")) for u in users}
    moved = {u for u in users if before[u] != after[u]}
    assert moved == {u for u in users if before[u] == "node-1"}
    assert moved  # the dead node owned someone
    # a node joining takes users only for itself
    grown = {u: owner_of(u, (*NODES, "node-3")) for u in users}
    assert {grown[u] for u in users if grown[u] != before[u]} == {"node-3"}


def test_owner_is_deterministic_and_order_free() -> None:
    assert owner_of("alice", NODES) == owner_of("alice", tuple(reversed(NODES)))
    assert rendezvous_weight("node-0", "alice") == rendezvous_weight("node-0", "alice")
    with pytest.raises(ValueError, match="non-empty sequence"):
        owner_of("alice", ())
    with pytest.raises(ValueError, match="non-empty sequence"):
        owner_of("alice", "node-0")
    with pytest.raises(ValueError, match="user_id"):
        owner_of("", NODES)


# --- adopt and release on one service -------------------------------------------------------------

POLICY = PresencePolicy()  # beat every 5 s, offline after 30 s; score >= 5 within 5 s, others 2 min
FRIENDS = {"alice": {"bob": 9.0, "carol": 1.0}, "bob": {"alice": 9.0}, "carol": {"alice": 1.0}}


def test_adopt_arms_the_timer_and_announces_the_recorded_state() -> None:
    clock = ManualClock(1000.0)
    store = MemoryTTLStore(clock)
    old = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    old.heartbeat("alice", "phone")
    old.heartbeat("bob", "phone")  # bob is online: a viewer
    clock.advance(1)
    new = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)  # the old one "died"
    status = new.adopt("alice", since_s=clock() - 60)
    assert status.status is ONLINE
    clock.advance(5)
    (batch,) = new.flush().values()  # re-announced to bob (he may have heard it already)
    assert (batch.viewer_id, [(c.user_id, c.status) for c in batch]) == ("bob", [("alice", ONLINE)])
    # no heartbeat comes: alice goes offline at her last beat + 30 s, told to bob within 5 s
    clock.set(1020.0)
    PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True).heartbeat("bob", "phone")  # his owner
    clock.set(1030.0 + 5)
    bob_batches = new.flush()
    (change,) = bob_batches["bob"]
    assert (change.status, change.changed_at_s) == (OFFLINE, 1030.0)


def test_adopt_reannounces_a_recent_offline_only() -> None:
    clock = ManualClock(0.0)
    store = MemoryTTLStore(clock)
    service = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    service.heartbeat("alice", "phone")
    clock.set(40.0)
    service.heartbeat("bob", "phone")
    other = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    assert other.adopt("alice", since_s=35.0).status is OFFLINE  # offline at 30 < 35: old news
    clock.advance(10)
    assert other.flush() == {}
    assert other.adopt("alice", since_s=20.0).status is OFFLINE  # offline at 30 >= 20: told
    clock.advance(10)
    (change,) = other.flush()["bob"]
    assert (change.user_id, change.status, change.changed_at_s) == ("alice", OFFLINE, 30.0)


def test_release_forgets_the_timer_and_bad_input_changes_nothing() -> None:
    clock = ManualClock(0.0)
    store = MemoryTTLStore(clock)
    service = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    service.heartbeat("bob", "phone")
    service.heartbeat("alice", "phone")
    clock.advance(5)
    service.flush()
    service.release("alice")
    clock.set(100.0)
    service.heartbeat("bob", "phone")
    clock.advance(5)
    assert "bob" not in service.flush()  # alice's owner is elsewhere: no offline from here
    with pytest.raises(UnknownUserError):
        service.adopt("zoe", 0.0)
    with pytest.raises(PresenceError, match="since_s"):
        service.adopt("alice", float("nan"))
    with pytest.raises(ValueError, match="shared_viewers"):
        PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=1)  # type: ignore[arg-type]
    assert service.users == ("alice", "bob", "carol")


def test_shared_viewers_judges_viewers_by_the_store() -> None:
    clock = ManualClock(0.0)
    store = MemoryTTLStore(clock)
    owner_of_bob = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    owner_of_alice = PresenceService(store, clock, POLICY, FRIENDS, shared_viewers=True)
    owner_of_bob.heartbeat("bob", "phone")  # bob beats on another service
    owner_of_alice.heartbeat("alice", "phone")
    clock.advance(5)
    assert [c.user_id for c in owner_of_alice.flush()["bob"]] == ["alice"]
    # carol never beat: she is an offline viewer and gets nothing
    owner_of_bob.heartbeat("bob", "phone")
    clock.advance(200)
    assert "carol" not in owner_of_alice.flush()


# --- three PresenceRouters on a real Redis ---------------------------------------------------------

FAST = PresencePolicy()  # the defaults; the ManualClock makes them free
PEOPLE = [f"u{i:02d}" for i in range(12)]
IMPORTANT = 9.0  # >= 5: the 5 s tier
BOUND = 5.0


def graph() -> dict[str, dict[str, float]]:
    return {u: {v: IMPORTANT for v in PEOPLE if v != u} for u in PEOPLE}


@dataclass
class Node:
    """One in-process node: its chat router (routing table), presence router and inbox."""

    router: RedisRouter
    presence: PresenceRouter
    pubsub: redis.client.PubSub
    inbox: list[tuple[float, PresenceBatch]] = field(default_factory=list)
    alive: bool = True


def _inbox_appender(inbox: list[tuple[float, PresenceBatch]], clock: ManualClock) -> Callable[[PresenceBatch], None]:
    def deliver(batch: PresenceBatch) -> None:
        inbox.append((clock(), batch))
    return deliver


@pytest.fixture
def nodes(redis_client: redis.Redis) -> list[Node]:
    clock = ManualClock(10_000.0)
    store = RedisTTLStore(redis_client)
    made: list[Node] = []
    for node_id in NODES:
        inbox: list[tuple[float, PresenceBatch]] = []
        router = RedisRouter(redis_client, node_id, lambda users, message: None, clock)
        service = PresenceService(store, clock, FAST, graph(), shared_viewers=True)
        presence = PresenceRouter(service, router, _inbox_appender(inbox, clock), clock, ttl_s=10.0)
        pubsub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(presence.channel)
        made.append(Node(router, presence, pubsub, inbox))
    for node in made:
        node.presence.membership.refresh()  # all three are members before anyone ticks
    for node in made:
        node.presence.tick()
    return made


def pump(nodes: list[Node]) -> int:
    """Hand every published payload to its node (the dead ones' are dropped); returns how many."""
    handled = 0
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.05:
        for node in nodes:
            message = node.pubsub.get_message(timeout=0.005)
            if message is not None and message["type"] == "message":
                quiet_since = time.monotonic()
                if node.alive:
                    node.presence.handle(message["data"])
                    handled += 1
    return handled


def clock_of(nodes: list[Node]) -> ManualClock:
    clock = nodes[0].presence._clock
    assert isinstance(clock, ManualClock)
    return clock


def changes_seen(node: Node, viewer: str, friend: str) -> list[tuple[float, PresenceState, float]]:
    """(received at, state, changed at) of every change of ``friend`` pushed to ``viewer``."""
    return [(at, c.status, c.changed_at_s) for at, b in node.inbox if b.viewer_id == viewer
            for c in b if c.user_id == friend]


def run(nodes: list[Node], seconds: int, beating: dict[str, Node]) -> None:
    """Advance one second at a time: connected users beat every 5 s, every live node ticks."""
    clock = clock_of(nodes)
    for _ in range(seconds):
        clock.advance(1)
        if int(clock()) % 5 == 0:
            for node in nodes:
                if node.alive:
                    node.router.refresh()
            for user, node in beating.items():
                if node.alive:
                    node.presence.heartbeat(user, "phone")
            pump(nodes)
        for node in nodes:
            if node.alive:
                node.presence.tick()
        pump(nodes)


def test_a_friend_on_another_node_hears_a_change_within_the_tier_bound(nodes: list[Node]) -> None:
    live = nodes[0].presence.nodes
    assert live == NODES
    # a user owned by node-0 but connected to node-1, and a viewer connected to node-2
    alice = next(u for u in PEOPLE if owner_of(u, NODES) == "node-0")
    bob = next(u for u in PEOPLE if u != alice and owner_of(u, NODES) != "node-2")
    nodes[2].router.register(bob)
    nodes[2].presence.heartbeat(bob, "phone")
    pump(nodes)  # bob is online before alice comes
    nodes[1].router.register(alice)
    clock = clock_of(nodes)
    clock.advance(1)
    assert nodes[1].presence.heartbeat(alice, "phone") == "node-0"  # forwarded to the owner
    assert nodes[1].presence.forwarded == 1
    pump(nodes)
    changed_at = clock()
    run(nodes, int(BOUND), {alice: nodes[1], bob: nodes[2]})
    seen = changes_seen(nodes[2], bob, alice)
    assert [state for _, state, _ in seen] == [ONLINE]
    received_at, _, dated = seen[0]
    assert dated == changed_at and received_at - dated <= BOUND
    assert nodes[0].presence.published >= 1  # the owner published it to node-2
    # nobody else was told anything about alice: only bob is connected and online
    assert all(b.viewer_id == bob for node in nodes for _, b in node.inbox)


def test_a_dead_nodes_users_move_and_its_connected_users_go_offline(nodes: list[Node]) -> None:
    dead = nodes[1]
    carol = next(u for u in PEOPLE if owner_of(u, NODES) == "node-1")  # owned by and connected to node-1
    dave = next(u for u in PEOPLE if u != carol and owner_of(u, NODES) == "node-1")  # owned there, connected to node-0
    erin = next(u for u in PEOPLE if owner_of(u, NODES) == "node-2")  # a viewer on node-2
    frank = next(u for u in PEOPLE if owner_of(u, NODES) == "node-0")  # a viewer on node-0
    ghost = next(u for u in PEOPLE if u not in (carol, dave, erin, frank))  # connected, never beats
    nodes[0].router.register(ghost)
    connected = {carol: dead, dave: nodes[0], erin: nodes[2], frank: nodes[0]}
    for user, node in connected.items():
        node.router.register(user)
    clock = clock_of(nodes)
    clock.advance(4)  # beats start at the next multiple of 5 s
    for viewer in (erin, frank):  # the viewers are online before carol comes
        connected[viewer].presence.heartbeat(viewer, "phone")
    pump(nodes)
    run(nodes, 10, connected)
    assert [s for _, s, _ in changes_seen(nodes[2], erin, carol)] == [ONLINE]
    last_beat = max(t for t in range(10_000, int(clock()) + 1) if t % 5 == 0)

    adopted_before = nodes[0].presence.adopted + nodes[2].presence.adopted
    dead.alive = False  # SIGKILL: no more ticks, refreshes, heartbeats or handled payloads
    run(nodes, 60, connected)
    # the others noticed and split node-1's users between them
    assert nodes[0].presence.nodes == ("node-0", "node-2")
    assert nodes[0].presence.adopted + nodes[2].presence.adopted - adopted_before == len(
        [u for u in PEOPLE if owner_of(u, NODES) == "node-1"])
    grace = FAST.offline_after_s
    for viewer, node in ((erin, nodes[2]), (frank, nodes[0])):
        seen = changes_seen(node, viewer, carol)
        offline = [(at, dated) for at, state, dated in seen if state is OFFLINE]
        assert offline, seen
        received_at, dated = offline[0]
        assert dated == last_beat + grace
        assert received_at <= last_beat + grace + BOUND
        assert seen[-1][1] is OFFLINE
        # dave (owned by the dead node, connected to a live one) never went offline
        assert all(state is not OFFLINE for _, state, _ in changes_seen(node, viewer, dave))
    assert nodes[2].presence.service.status(dave).status is ONLINE
    # nothing was ever sent to the viewer who never beat
    assert all(b.viewer_id != ghost for node in nodes for _, b in node.inbox)


def test_malformed_payloads_are_refused(nodes: list[Node]) -> None:
    presence = nodes[0].presence
    for payload in (b"not json", json.dumps({"kind": "what"}), json.dumps({"kind": "batch", "batch": {}})):
        with pytest.raises(ValueError, match="malformed presence payload"):
            presence.handle(payload)
    assert repr(presence).startswith("PresenceRouter(node=node-0, 3 live nodes")
