"""Presence ("online notification"): heartbeats, importance tiers, batching, TTL stores.

The seed notes ask for presence that is not real-time and not stored permanently, kept in an
in-memory key-value store (Redis/memcached), robust to slow networks through heartbeats, pushed
only to online friends -- very important ones within seconds, the rest within minutes, in
batches -- and pulled on login for the most important friends first.

- :class:`PresenceService` -- the sans-I/O service: ``heartbeat``, ``status``, ``statuses``,
  ``initial_statuses``, ``record_interaction``, ``flush(now)``.
- :class:`PresencePolicy`, :class:`Tier` -- heartbeat/offline/away timings and tiers.
- :class:`PresenceState`, :class:`PresenceEvent`, :data:`TRANSITIONS` -- the state table.
- :class:`TTLStore`, :class:`MemoryTTLStore`, :class:`RedisTTLStore` -- where records live.
- :func:`heartbeat_times`, :func:`status_timeline` -- a slow network on a timeline.
- :class:`ChatPresenceChannel` -- batches delivered as messages in the chat stream.
- :func:`simulate_presence_cost` and friends -- the cost of naive, online-only and tiered +
  batched fan-out for N users (vectorised numpy), and the store writes heartbeats make
  (:func:`heartbeat_write_rate`, :func:`gateway_write_rate`).
- :func:`presence_shard`, :func:`shard_frame`, :func:`expected_shards_touched` -- presence
  partitioned by user id.

Taught in ``notebooks/05_presence.ipynb``.
"""

from chatdesign.clock import ManualClock
from chatdesign.presence.chat_channel import PRESENCE_ACCOUNT, ChatPresenceChannel
from chatdesign.presence.cost import (
    PresenceCostModel,
    PresenceCostResult,
    PresenceCostSimulation,
    batched_push_ceiling,
    check_online_only_answer,
    draw_friend_counts,
    gateway_write_rate,
    heartbeat_write_rate,
    naive_push_rate,
    online_only_push_rate,
    simulate_presence_cost,
    window_cost_table,
    window_sweep,
)
from chatdesign.presence.errors import (
    ClockWentBackwardsError,
    NotAFriendError,
    PresenceError,
    UnknownUserError,
)
from chatdesign.presence.partition import expected_shards_touched, presence_shard, shard_frame
from chatdesign.presence.policy import DEFAULT_TIERS, PresencePolicy, Tier
from chatdesign.presence.service import (
    FriendsGraph,
    InitialPull,
    PresenceBatch,
    PresenceChange,
    PresenceService,
    PresenceStatus,
)
from chatdesign.presence.states import (
    TRANSITIONS,
    PresenceEvent,
    PresenceState,
    derive_state,
    device_state_at,
    next_state,
    transition_table_frame,
)
from chatdesign.presence.store import MemoryTTLStore, RedisTTLStore, TTLStore
from chatdesign.presence.timeline import count_flaps, heartbeat_times, status_timeline

__all__ = [
    "DEFAULT_TIERS",
    "PRESENCE_ACCOUNT",
    "TRANSITIONS",
    "ChatPresenceChannel",
    "ClockWentBackwardsError",
    "FriendsGraph",
    "InitialPull",
    "ManualClock",
    "MemoryTTLStore",
    "NotAFriendError",
    "PresenceBatch",
    "PresenceChange",
    "PresenceCostModel",
    "PresenceCostResult",
    "PresenceCostSimulation",
    "PresenceError",
    "PresenceEvent",
    "PresencePolicy",
    "PresenceService",
    "PresenceState",
    "PresenceStatus",
    "RedisTTLStore",
    "TTLStore",
    "Tier",
    "UnknownUserError",
    "batched_push_ceiling",
    "check_online_only_answer",
    "count_flaps",
    "derive_state",
    "device_state_at",
    "draw_friend_counts",
    "expected_shards_touched",
    "gateway_write_rate",
    "heartbeat_times",
    "heartbeat_write_rate",
    "naive_push_rate",
    "next_state",
    "online_only_push_rate",
    "presence_shard",
    "shard_frame",
    "simulate_presence_cost",
    "status_timeline",
    "transition_table_frame",
    "window_cost_table",
    "window_sweep",
]
