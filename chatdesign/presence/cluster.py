"""Presence shared by many server processes: live nodes, who owns which user, and heartbeats and
batches crossing nodes over Redis.

One :class:`~chatdesign.presence.PresenceService` per process keeps, for the users it *owns*,
the timers (when a user goes offline or away) and the pending batches for their viewers. With
several processes (nodes), each user needs exactly one owner, and every node must agree which:

- **Membership.** Each node writes itself into the Redis sorted set ``presence:nodes`` scored by
  the moment its entry expires (``now + ttl_s``), and refreshes it on every :meth:`tick`. Readers
  prune expired members, so a dead node leaves the set within ``ttl_s`` without anyone noticing
  the death -- the same expiry idea as the chat routing table (:mod:`chatdesign.chat.routing`).
- **Ownership: rendezvous (highest-random-weight) hashing.** :func:`owner_of` scores every live
  node for a user by a hash of ``(node, user)`` and picks the highest. Every node computes the
  same answer from the same member list, the users spread evenly, and when a node leaves only
  *its* users move (each to the node that scored second for them); when one joins it takes
  about ``1/N`` of the users and nobody else's move. A ``hash(user) mod N`` rule would move
  almost everyone when ``N`` changes.
- **Heartbeats go to the owner.** :meth:`PresenceRouter.heartbeat` applies a heartbeat for a user
  this node owns to its own service (whose records live in the shared :class:`RedisTTLStore`) and
  publishes any other on the owner's channel ``presence:node:<owner>``.
- **Batches go to the viewer's nodes.** After the owner's ``flush``, each viewer's batch is
  published to the nodes holding a connection of the viewer, found through the chat
  :class:`~chatdesign.chat.routing.RedisRouter`'s routing table (``nodes_of``: one round trip
  for all viewers), and handed to local sessions directly.
- **Failover.** When the member list changes, each node releases the users it no longer owns and
  *adopts* the ones it gained (:meth:`PresenceService.adopt`): it reads the record from the
  shared store, arms the timer and announces the recorded state, so a user held by a dead node
  goes offline when their grace period runs out (``offline_after_s`` after the last heartbeat
  the dead node wrote), told to each viewer within that viewer's tier bound -- provided the
  death is noticed in time: within ``ttl_s`` plus one tick. Keep ``ttl_s`` + tick below the
  grace period; a later adoption still announces the change, only late.

Guarantees across a node's death (and which do not hold):

- *Holds:* every user the dead node owned gets a new owner within ``ttl_s`` + one tick; a user
  whose connection died with it goes offline; online viewers connected to live nodes hear it;
  viewers that are offline (no live record in the store) are sent nothing.
- *Weakened:* a change can be announced **twice** to a viewer (the old owner pushed it, the new
  owner re-announces the adopted state): at-least-once, not exactly-once. Clients treat a
  ``presence_update`` as "the state is now X", which is idempotent.
- *Does not hold:* batches that were pending on the dead node are lost; the adoption's
  re-announcement replaces them only for the *current* state (a flap that ended before the
  adoption is never told). A viewer connected only to the dead node misses pushes until it
  reconnects and pulls. While the member lists of two nodes disagree (for up to one tick),
  a user can have two owners, and a change can again be announced twice. Viewers' pulls are
  reconciled only with the changes their own node owns, so a push the viewer's pull already
  showed can still arrive (harmless, same state). Batching is per owner: a viewer can get one
  batch per owning node per window instead of one.

Time is the membership's and the service's time (``clock``), so all nodes must share a clock
source (the wall clock in production; a :class:`~chatdesign.clock.ManualClock` in tests).
:class:`PresenceRouter` does no I/O beyond the ``redis`` client it is given.

Taught in ``notebooks/06_connections.ipynb`` ("many servers").
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import pandas as pd
import redis

from chatdesign.chat.routing import _NODE_ID, RedisRouter
from chatdesign.checks import check_number
from chatdesign.clock import Clock
from chatdesign.presence.errors import PresenceError, UnknownUserError
from chatdesign.presence.policy import PresencePolicy, Tier
from chatdesign.presence.service import PresenceBatch, PresenceChange, PresenceService
from chatdesign.presence.states import PresenceState

NODES_KEY: Final = "presence:nodes"
PRESENCE_CHANNEL_PREFIX: Final = "presence:node:"
DEFAULT_MEMBERSHIP_TTL_S: Final = 10.0
"""How long a node stays a member without refreshing: below the 30 s grace period, so the users of
a dead node are adopted before their grace period runs out."""

TEST_PRESENCE_POLICY: Final = PresencePolicy(
    heartbeat_interval_s=0.5, offline_after_s=4.0, away_after_s=300.0,
    tiers=(Tier("very important", 5.0, 1.0), Tier("others", -math.inf, 2.0)),
)
"""Short timings for tests of a running cluster (``serve --presence-test-timings``): beat every
0.5 s, offline 4 s after the last beat, told within 1 s (1:1 partners) or 2 s (group members)."""


def membership_ttl_s(policy: PresencePolicy, tick_s: float) -> float:
    """The membership expiry a node should use: a third of the grace period (capped at
    :data:`DEFAULT_MEMBERSHIP_TTL_S`), so a dead node's users are adopted before their grace
    runs out, but at least three ticks, so a live node never drops out between two refreshes."""
    tick = check_number(tick_s, "tick_s", positive=True, unit="seconds")
    return max(3 * tick, min(DEFAULT_MEMBERSHIP_TTL_S, policy.offline_after_s / 3))


DeliverBatch = Callable[[PresenceBatch], None]
"""Hands a batch to this node's sessions of ``batch.viewer_id``."""


def rendezvous_weight(node_id: str, user_id: str) -> int:
    """The score of ``node_id`` for ``user_id``: the first 8 bytes of BLAKE2b(node, user)."""
    digest = hashlib.blake2b(f"{node_id}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(user_id: str, nodes: Sequence[str]) -> str:
    """The node that owns ``user_id``: the one with the highest :func:`rendezvous_weight`
    (ties, which need a 64-bit collision, go to the smaller node id). Pure and deterministic;
    raises ``ValueError`` for an empty node list or an empty user id."""
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
    if isinstance(nodes, str) or not nodes:
        raise ValueError(f"nodes must be a non-empty sequence of node ids, got {nodes!r}")
    return max(nodes, key=lambda node: (rendezvous_weight(node, user_id), _reverse(node)))


def _reverse(node: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in node)


def ownership_frame(user_ids: Sequence[str], nodes: Sequence[str]) -> pd.DataFrame:
    """One row per node: how many of ``user_ids`` it owns and its share (for notebook 06)."""
    owners = pd.Series([owner_of(user, nodes) for user in user_ids], dtype=object)
    counts = owners.value_counts().reindex(sorted(nodes), fill_value=0)
    return pd.DataFrame({"node": counts.index, "users": counts.to_numpy(),
                         "share": counts.to_numpy() / max(1, len(user_ids))})


class NodeMembership:
    """The live nodes: a Redis sorted set of node ids scored by expiry (see the module docstring)."""

    def __init__(self, client: redis.Redis, node_id: str, clock: Clock,
                 ttl_s: float = DEFAULT_MEMBERSHIP_TTL_S) -> None:
        if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
            raise ValueError(f"node_id must be 1-64 letters, digits, '_', '.' or '-', got {node_id!r}")
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds")
        self.ttl_s = check_number(ttl_s, "ttl_s", minimum=0.1, unit="seconds")
        self.client = client
        self.node_id = node_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"NodeMembership(node={self.node_id}, ttl={self.ttl_s:g} s)"

    def refresh(self) -> None:
        """Stay a member for ``ttl_s`` more seconds."""
        self.client.zadd(NODES_KEY, {self.node_id: self._clock() + self.ttl_s})

    def leave(self) -> None:
        """Stop being a member now (a clean shutdown; a dead node just expires)."""
        self.client.zrem(NODES_KEY, self.node_id)

    def live(self) -> tuple[str, ...]:
        """The live node ids, sorted (expired members are pruned on the way)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(NODES_KEY, "-inf", self._clock())
            pipe.zrange(NODES_KEY, 0, -1)
            _, members = pipe.execute()
        return tuple(sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members))


class PresenceRouter:
    """One node's share of presence (see the module docstring).

    ``service`` is this node's :class:`PresenceService` built with ``shared_viewers=True`` on the
    shared store (replace it with :meth:`replace_service` when the friends graph changes);
    ``router`` is the node's chat :class:`RedisRouter` (its routing table says where viewers are
    connected, and its client and node id are reused); ``deliver`` hands a batch to this node's
    sessions. Call :meth:`tick` about once a second, :meth:`handle` with each payload arriving
    on :attr:`channel`.
    """

    def __init__(self, service: PresenceService, router: RedisRouter, deliver: DeliverBatch, clock: Clock,
                 ttl_s: float = DEFAULT_MEMBERSHIP_TTL_S) -> None:
        if not isinstance(service, PresenceService):
            raise ValueError(f"service must be a PresenceService, got {type(service).__name__}")
        if not callable(deliver):
            raise ValueError("deliver must be a callable")
        self.router = router
        self.client = router.client
        self.node_id = router.node_id
        self.channel = f"{PRESENCE_CHANNEL_PREFIX}{self.node_id}"
        self.membership = NodeMembership(router.client, router.node_id, clock, ttl_s)
        self.service = service
        self._deliver = deliver
        self._clock = clock
        self.nodes: tuple[str, ...] = ()
        self.forwarded = 0
        """Heartbeats this node published to their owners."""
        self.published = 0
        """Batches this node published to viewers' nodes."""
        self.adopted = 0
        """Users this node took over after a membership change."""
        self.unknown_beats: dict[tuple[str, str], bool] = {}
        """Forwarded heartbeats of users this node's graph does not know yet, ``{(user, device):
        active}``: the server rebuilds the graph and applies them (nothing else reads them)."""

    def __repr__(self) -> str:
        return (f"PresenceRouter(node={self.node_id}, {len(self.nodes)} live nodes, "
                f"{len(self.owned())} users owned)")

    def owned(self) -> tuple[str, ...]:
        """The users of the service's graph this node owns under the current member list."""
        if not self.nodes:
            return ()
        return tuple(u for u in self.service.users if owner_of(u, self.nodes) == self.node_id)

    def owner(self, user_id: str) -> str:
        """Who owns ``user_id`` now (this node while it knows no member list yet)."""
        return owner_of(user_id, self.nodes) if self.nodes else self.node_id

    # --- input ----------------------------------------------------------------------------------

    def heartbeat(self, user_id: str, device_id: str, active: bool = True) -> str:
        """A heartbeat from a device connected here: applied locally if this node owns the user,
        else published to the owner. Returns the owner's node id. Raises the service's
        ``PresenceError`` family for a local heartbeat it refuses (nothing is changed)."""
        if not isinstance(user_id, str) or not user_id or not isinstance(device_id, str) or not device_id:
            raise PresenceError(f"user_id and device_id must be non-empty strings, got {user_id!r}, {device_id!r}")
        if not isinstance(active, bool):
            raise PresenceError(f"active must be True or False, got {active!r}")
        owner = self.owner(user_id)
        if owner == self.node_id:
            self.service.heartbeat(user_id, device_id, active)
        else:
            self.client.publish(f"{PRESENCE_CHANNEL_PREFIX}{owner}", json.dumps(
                {"kind": "heartbeat", "user_id": user_id, "device_id": device_id, "active": active}))
            self.forwarded += 1
        return owner

    def handle(self, payload: bytes | str) -> str:
        """A payload from :attr:`channel`: a forwarded heartbeat (applied to the service) or a
        batch for a viewer connected here (delivered). Returns its kind (``"unknown"`` for a
        heartbeat of a user the graph does not know: kept in :attr:`unknown_beats`). Raises ``ValueError``
        (or the service's ``PresenceError``, also a ``ValueError``) for a malformed payload or a
        heartbeat the service refuses; the subscriber logs it and carries on."""
        try:
            decoded = json.loads(payload)
            kind = str(decoded["kind"])
            if kind == "heartbeat":
                user_id, device_id, active = decoded["user_id"], decoded["device_id"], decoded["active"]
            elif kind == "batch":
                batch = _decode_batch(decoded["batch"])
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"malformed presence payload: {error}") from None
        if kind == "heartbeat":
            try:
                self.service.heartbeat(str(user_id), str(device_id), bool(active))
            except UnknownUserError:
                self.unknown_beats[(str(user_id), str(device_id))] = bool(active)
                return "unknown"
        else:
            self._deliver(batch)
        return kind

    def replace_service(self, service: PresenceService, since_s: float) -> None:
        """A rebuilt service (new friends graph): adopt every user this node owns from the store
        (see :meth:`PresenceService.adopt` for ``since_s``)."""
        self.service = service
        for user_id in self.owned():
            service.adopt(user_id, since_s)

    # --- the tick -------------------------------------------------------------------------------

    def tick(self, since_s: float | None = None) -> dict[str, PresenceBatch]:
        """Refresh membership, hand over users if the member list changed, flush the service and
        send each batch to its viewer's nodes. Returns the batches this node's service produced.

        ``since_s`` (default: now minus ``ttl_s`` minus the longest tier delay) bounds how far back
        an adopted user's going offline is re-announced.
        """
        now = self._clock()
        self.membership.refresh()
        live = self.membership.live()
        if live != self.nodes:
            before = set(self.owned())
            self.nodes = live
            after = set(self.owned())
            for user_id in sorted(before - after):
                self.service.release(user_id)
            if since_s is None:
                longest = max(tier.max_delay_s for tier in self.service.policy.tiers)
                since_s = now - self.membership.ttl_s - longest
            for user_id in sorted(after - before):
                self.service.adopt(user_id, since_s)
                self.adopted += 1
        batches = self.service.flush(now)
        if batches:
            self._send(batches)
        return batches

    def _send(self, batches: dict[str, PresenceBatch]) -> None:
        by_node = self.router.nodes_of(list(batches))
        for node, viewers in sorted(by_node.items()):
            for viewer in viewers:
                batch = batches[viewer]
                if node == self.node_id:
                    self._deliver(batch)
                    continue
                self.client.publish(f"{PRESENCE_CHANNEL_PREFIX}{node}", json.dumps(
                    {"kind": "batch", "batch": _encode_batch(batch)}))
                self.published += 1

    def leave(self) -> None:
        """A clean shutdown: leave the member list now, so others adopt at their next tick."""
        self.membership.leave()


def _encode_batch(batch: PresenceBatch) -> dict[str, Any]:
    return batch.to_event()


def _decode_batch(event: dict[str, Any]) -> PresenceBatch:
    """The inverse of :meth:`PresenceBatch.to_event`; ``ValueError`` for a malformed event."""
    changes = tuple(
        PresenceChange(str(c["user_id"]), PresenceState(c["status"]), float(c["changed_at_s"]))
        for c in event["changes"]
    )
    return PresenceBatch(str(event["viewer_id"]), float(event["sent_at_s"]), changes)
