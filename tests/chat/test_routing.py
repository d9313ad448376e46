"""RedisRouter: the routing table with expiry and fan-out across nodes, on a real redis-server.

Two or three ChatServer objects on one database file stand for server processes here (the
process-level test with SIGKILL lives with the network server); each has its own router and
its own subscription to its node channel, exactly as a process would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chatdesign.chat import ChatServer, ManualClock
from chatdesign.chat.routing import ROUTE_PREFIX, RedisRouter, decode_message, encode_message
from chatdesign.services import RedisServer

pytestmark = pytest.mark.redis


class Node:
    """A ChatServer, its router and its subscription: one 'process'."""

    def __init__(self, name: str, db: Path, client: redis.Redis, clock: ManualClock) -> None:
        self.server = ChatServer(db, clock=clock, data_dir=db.parent / name)
        self.router = RedisRouter(client, name, self.server.local_fanout.publish, clock, ttl_s=15.0)
        self.server.fanout = self.router
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(self.router.channel)

    def pump(self, timeout_s: float = 1.0) -> int:
        """Handle what has arrived on this node's channel; returns how many payloads."""
        handled = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            item = self.pubsub.get_message(timeout=0.05)
            if item is None:
                if handled:
                    break
                continue
            self.router.handle(item["data"])
            handled += 1
        return handled

    def close(self) -> None:
        self.pubsub.close()
        self.server.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis(host=redis_server.host, port=redis_server.port)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def nodes(client: redis.Redis, tmp_path: Path) -> Iterator[tuple[Node, Node, Node, ManualClock]]:
    clock = ManualClock(1_750_000_000.0)
    db = tmp_path / "chat.db"
    a, b, c = (Node(name, db, client, clock) for name in ("a", "b", "c"))
    for user in ("alice", "bob", "carol", "dave"):
        a.server.register_user(user)
    yield a, b, c, clock
    for node in (a, b, c):
        node.close()


def test_a_message_sent_through_one_node_reaches_a_device_on_another_once(
    nodes: tuple[Node, Node, Node, ManualClock],
) -> None:
    a, b, c, _ = nodes
    alice_phone = a.server.connect("alice", "phone")
    a.router.register("alice")
    bob_laptop = b.server.connect("bob", "laptop")
    b.router.register("bob")
    sent = a.server.send_message("alice", "bob", "hi bob", "k1")
    assert b.pump() == 1 and c.pump(0.2) == 0  # c holds nobody: it is sent nothing
    assert bob_laptop.drain() == [sent]
    assert alice_phone.drain() == [sent]  # the sender's own device, delivered locally
    assert a.router.published == 1


def test_a_group_reaches_each_node_once_whatever_it_holds(nodes: tuple[Node, Node, Node, ManualClock]) -> None:
    a, b, c, _ = nodes
    group = a.server.create_group("alice", ["bob", "carol", "dave"], "team")
    sessions = {
        "bob": b.server.connect("bob", "phone"), "carol": b.server.connect("carol", "phone"),
        "dave": c.server.connect("dave", "phone"), "dave2": a.server.connect("dave", "tablet"),
    }
    for node, user in ((b, "bob"), (b, "carol"), (c, "dave"), (a, "dave")):
        node.router.register(user)
    sent = a.server.send_message("alice", group, "hello team", "k1")
    assert b.pump() == 1  # one publish carries both of b's users
    assert c.pump() == 1
    assert a.router.published == 2
    assert all(session.drain() == [sent] for session in sessions.values())


def test_routes_expire_when_a_node_stops_refreshing(
    nodes: tuple[Node, Node, Node, ManualClock], client: redis.Redis
) -> None:
    a, b, _, clock = nodes
    b.router.register("bob")
    assert a.router.nodes_of(["bob"]) == {"b": ["bob"]}
    clock.advance(10.0)
    b.router.refresh()  # alive: pushed 15 s further
    clock.advance(10.0)
    assert a.router.nodes_of(["bob"]) == {"b": ["bob"]}
    clock.advance(15.0)  # b died (no refresh): its entry is ignored and pruned
    assert a.router.nodes_of(["bob"]) == {}
    assert client.zcard(f"{ROUTE_PREFIX}bob") == 0


def test_the_route_goes_with_the_last_connection(nodes: tuple[Node, Node, Node, ManualClock]) -> None:
    a, b, _, _ = nodes
    b.router.register("bob")
    b.router.register("bob")  # a second device on the same node
    b.router.unregister("bob")
    assert a.router.nodes_of(["bob"]) == {"b": ["bob"]}
    b.router.unregister("bob")
    b.router.unregister("bob")  # more closes than opens: harmless
    assert a.router.nodes_of(["bob"]) == {}


def test_payloads_round_trip_and_garbage_is_refused(nodes: tuple[Node, Node, Node, ManualClock]) -> None:
    a, b, _, _ = nodes
    sent = a.server.send_message("alice", "bob", "héllo ✓", "k1")
    assert decode_message(json.loads(json.dumps(encode_message(sent)))) == sent
    for garbage in (b"not json", b"{}", json.dumps({"user_ids": ["bob"], "message": {"seq": 1}}).encode()):
        with pytest.raises(ValueError, match="malformed"):
            b.router.handle(garbage)


@pytest.mark.parametrize("node_id", ["", "a b", "x" * 65, "a\n"])
def test_bad_node_ids_are_refused(client: redis.Redis, node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        RedisRouter(client, node_id, lambda users, message: None, ManualClock(0.0))


def test_expected_nodes_reached() -> None:
    import numpy as np

    from chatdesign.chat.routing import expected_nodes_reached

    assert expected_nodes_reached(1, 10) == pytest.approx(1.0)
    assert expected_nodes_reached(0, 10) == 0.0
    assert expected_nodes_reached(2, 1) == pytest.approx(1.0)  # one server holds everyone
    assert expected_nodes_reached(1000, 10) == pytest.approx(10.0)  # a big group reaches every server
    # simulated: 100 members over 50 servers
    rng = np.random.default_rng(7)
    simulated = np.mean([len(set(rng.integers(50, size=100))) for _ in range(4000)])
    assert expected_nodes_reached(100, 50) == pytest.approx(simulated, rel=0.01)
    grid = expected_nodes_reached(np.array([2, 10]), np.array([10, 10]))
    assert grid.shape == (2,)  # type: ignore[union-attr]
    for bad in ((-1, 10), (5, 0), (float("nan"), 3)):
        with pytest.raises(ValueError):
            expected_nodes_reached(*bad)
