"""Many connection servers, one chat service: which process holds whose connection, and
fan-out across processes over Redis pub/sub.

A WebSocket connection is state held by one process. With several processes behind a load
balancer, a message sent through process A must reach the devices connected to B and C. The
design every large chat service uses, in its smallest form:

- **A routing table with expiry.** Each process (a *node*) writes, for every user it holds a
  connection of, ``chat:route:<user>`` -> a sorted set of node ids scored by the time the entry
  expires. The node refreshes its entries every ``ttl_s / 3``; a node that dies stops
  refreshing, and readers ignore (and prune) expired members, so a dead node's entries vanish
  within ``ttl_s`` without anyone having to notice the death.
- **One channel per node.** ``publish`` delivers to this node's own sessions directly, looks up
  the other nodes holding any recipient (one round trip for all recipients), and publishes the
  message once per such node on ``chat:node:<node id>``, naming the recipients it holds. Each
  node's subscriber hands what arrives to its local sessions. A device connected to B receives
  a message sent through A exactly once *as a push*; a push lost with a dying node is recovered
  by the device's resync from its last ``seq`` when it reconnects (delivery stays at-least-once
  plus de-duplication by ``seq``, as in one process).

The cost this adds per message is one Redis read per send plus one publish per *other node*
holding a recipient, which is why big group fan-out is where cross-server delivery gets
expensive (notebook 06, "many servers").

:class:`RedisRouter` does no I/O of its own beyond the ``redis`` client it is given, and never
reads the clock: times come from ``clock``. Time is the *routing table's* time, so all nodes
should use the same clock source (the wall clock in production; :class:`ManualClock` in tests).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import redis

from chatdesign.chat.core import Message
from chatdesign.checks import check_number
from chatdesign.clock import Clock

ROUTE_PREFIX: Final = "chat:route:"
NODE_CHANNEL_PREFIX: Final = "chat:node:"
DEFAULT_ROUTE_TTL_S: Final = 15.0
"""How long a routing entry lives without a refresh: a dead node's users are unreachable through
it for at most this long (their devices reconnect elsewhere and resync meanwhile)."""

_NODE_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Deliver = Callable[[Sequence[str], Message], None]
"""Hands a message to this node's sessions of the given users (e.g. ``LocalFanout.publish``)."""


def encode_message(message: Message) -> dict[str, Any]:
    """A message as JSON-ready values (attachments as a list)."""
    fields = asdict(message)
    fields["attachments"] = list(message.attachments)
    return fields


def decode_message(fields: dict[str, Any]) -> Message:
    """The inverse of :func:`encode_message`; raises ``ValueError`` on a malformed payload."""
    try:
        return Message(
            message_id=int(fields["message_id"]), conversation_id=str(fields["conversation_id"]),
            seq=int(fields["seq"]), sender_id=str(fields["sender_id"]), content=str(fields["content"]),
            created_at=float(fields["created_at"]), client_message_id=str(fields["client_message_id"]),
            attachments=tuple(str(a) for a in fields.get("attachments", ())),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"not an encoded message: {error}") from None


class RedisRouter:
    """The routing table and cross-node fan-out of one node (see the module docstring).

    ``deliver`` hands a message to this node's own sessions; ``publish`` (the :class:`Fanout`
    method the chat server calls after each commit) uses it for local recipients and Redis for
    the rest. ``handle`` is what the node's subscriber calls with each payload that arrives on
    :attr:`channel`.
    """

    def __init__(
        self, client: redis.Redis, node_id: str, deliver: Deliver, clock: Clock,
        ttl_s: float = DEFAULT_ROUTE_TTL_S,
    ) -> None:
        if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
            raise ValueError(f"node_id must be 1-64 letters, digits, '_', '.' or '-', got {node_id!r}")
        if not callable(deliver) or not callable(clock):
            raise ValueError("deliver and clock must be callables")
        self.ttl_s = check_number(ttl_s, "ttl_s", minimum=0.1)
        self.client = client
        self.node_id = node_id
        self.channel = f"{NODE_CHANNEL_PREFIX}{node_id}"
        self._deliver = deliver
        self._clock = clock
        self._held: Counter[str] = Counter()
        self.published = 0
        """Messages this node published to other nodes (one per node per message)."""

    def __repr__(self) -> str:
        return f"RedisRouter(node={self.node_id}, {len(self._held)} users held, ttl={self.ttl_s:g} s)"

    # --- the routing table --------------------------------------------------------------------

    def register(self, user_id: str) -> None:
        """A connection of ``user_id`` opened on this node."""
        self._held[user_id] += 1
        if self._held[user_id] == 1:
            self.client.zadd(f"{ROUTE_PREFIX}{user_id}", {self.node_id: self._clock() + self.ttl_s})

    def unregister(self, user_id: str) -> None:
        """A connection of ``user_id`` closed on this node; the route goes with the last one."""
        if self._held[user_id] <= 0:
            return
        self._held[user_id] -= 1
        if self._held[user_id] == 0:
            del self._held[user_id]
            self.client.zrem(f"{ROUTE_PREFIX}{user_id}", self.node_id)

    def refresh(self) -> None:
        """Push every route this node holds ``ttl_s`` into the future (call every ``ttl_s / 3``)."""
        expires = self._clock() + self.ttl_s
        with self.client.pipeline(transaction=False) as pipe:
            for user_id in self._held:
                pipe.zadd(f"{ROUTE_PREFIX}{user_id}", {self.node_id: expires})
            pipe.execute()

    def nodes_of(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """``{node id: [users it holds]}`` for these users, live entries only (expired ones are
        pruned on the way); this node included."""
        now = self._clock()
        with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                key = f"{ROUTE_PREFIX}{user_id}"
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrange(key, 0, -1)
            replies = pipe.execute()
        routes: dict[str, list[str]] = {}
        for user_id, nodes in zip(user_ids, replies[1::2], strict=True):
            for node in nodes:
                routes.setdefault(node.decode() if isinstance(node, bytes) else str(node), []).append(user_id)
        return routes

    # --- fan-out ------------------------------------------------------------------------------

    def publish(self, user_ids: Sequence[str], message: Message) -> None:
        """Deliver ``message`` to every connected device of ``user_ids``, wherever it is: this
        node's sessions directly, each other node holding a recipient by one Redis publish."""
        self._deliver(user_ids, message)
        payload_message = encode_message(message)
        for node, users in sorted(self.nodes_of(user_ids).items()):
            if node == self.node_id:
                continue
            self.client.publish(f"{NODE_CHANNEL_PREFIX}{node}", json.dumps(
                {"from": self.node_id, "user_ids": users, "message": payload_message}, ensure_ascii=False))
            self.published += 1

    def handle(self, payload: bytes | str) -> Message:
        """A payload from :attr:`channel`: deliver it to this node's sessions; returns the message.
        Raises ``ValueError`` on a malformed payload (the subscriber logs it and carries on)."""
        try:
            decoded = json.loads(payload)
            user_ids = [str(u) for u in decoded["user_ids"]]
            message = decode_message(decoded["message"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"malformed routing payload: {error}") from None
        self._deliver(user_ids, message)
        return message


def expected_nodes_reached(
    members: float | npt.ArrayLike, nodes: float | npt.ArrayLike
) -> float | npt.NDArray[np.float64]:
    """How many distinct connection servers a message to ``members`` online recipients touches
    when connections are spread evenly at random over ``nodes`` servers:
    ``nodes x (1 - (1 - 1/nodes) ** members)``. Each one costs a publish, so a big group's message
    costs up to one publish per server, and a 1:1 at most one. Accepts numpy arrays too."""
    m = np.asarray(members, dtype=float)
    k = np.asarray(nodes, dtype=float)
    if np.any(~np.isfinite(m)) or np.any(m < 0):
        raise ValueError(f"members must be finite and >= 0, got {members!r}")
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError(f"nodes must be finite and >= 1, got {nodes!r}")
    reached = k * (1 - (1 - 1 / k) ** m)
    return float(reached) if reached.ndim == 0 else reached
