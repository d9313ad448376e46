"""A generated, seeded chat workload: users, 1:1 and group conversations, days of messages.

:func:`populate` drives a real :class:`~chatdesign.chat.server.ChatServer` through its public
API (``register_user``, ``create_group``, ``send_message``, ``sync``) with a
:class:`~chatdesign.clock.ManualClock`, so storage sizes and retention policies can be
measured on a store that went through the same code as production traffic. Every phone syncs
at the end of each day; a share of users also has a second device that syncs only every few
days (what keeps messages on the server under the client-only policy).

Taught in ``notebooks/04_storage.ipynb``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from chatdesign.chat.server import ChatServer
from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.clock import ManualClock
from chatdesign.units import SECONDS_PER_DAY

_WORDS = (
    "the", "to", "and", "a", "of", "i", "you", "it", "is", "in", "that", "on", "for", "we", "me",
    "my", "can", "see", "are", "this", "at", "be", "with", "just",
    "what", "so", "do", "not", "have", "will", "was", "how", "time", "now", "get", "all", "about",
    "lunch", "later", "call", "home", "work",
    "today", "tomorrow", "tonight", "meeting", "sure", "thanks", "ok", "good", "great", "sounds",
    "like", "coming", "back", "soon",
    "photo", "trip", "weekend", "dinner", "coffee", "train", "late", "sorry", "yes", "no",
    "maybe", "next", "week", "plan", "send", "file",
)


@dataclass(frozen=True)
class ChatWorkload:
    """The shape of a generated workload.

    ``messages_per_conversation_per_day`` is the mean over conversations (each conversation's
    own rate is drawn around it, lognormally: a few busy chats, many quiet ones). Message text
    has on average ``mean_words`` words. ``second_device_fraction`` of users own a second
    device that syncs every ``second_device_sync_days`` days.
    """

    users: int = 40
    direct_conversations: int = 80
    groups: int = 4
    group_size: int = 8
    days: int = 60
    messages_per_conversation_per_day: float = 3.0
    mean_words: float = 10.0
    second_device_fraction: float = 0.25
    second_device_sync_days: int = 7
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("users", "direct_conversations", "groups", "group_size", "days",
                     "second_device_sync_days", "seed"):
            check_whole(getattr(self, name), name)
        if self.users < 2:
            raise ValueError(f"users must be >= 2, got {self.users}")
        if self.direct_conversations > self.users * (self.users - 1) // 2:
            raise ValueError(f"{self.users} users have fewer than {self.direct_conversations} pairs")
        if self.groups and not 2 <= self.group_size <= self.users:
            raise ValueError(f"group_size must be 2..users, got {self.group_size}")
        if self.days < 1 or self.second_device_sync_days < 1:
            raise ValueError("days and second_device_sync_days must be >= 1")
        check_number(self.messages_per_conversation_per_day, "messages_per_conversation_per_day", positive=True)
        check_number(self.mean_words, "mean_words", minimum=1)
        check_fraction(self.second_device_fraction, "second_device_fraction")


@dataclass(frozen=True)
class WorkloadSummary:
    """What :func:`populate` stored: counts, text bytes and messages per conversation."""

    workload: ChatWorkload
    messages: int
    content_bytes: int
    """Total UTF-8 bytes of message text."""
    messages_per_conversation: dict[str, int] = field(repr=False)

    def __post_init__(self) -> None:
        if self.messages != sum(self.messages_per_conversation.values()):
            raise ValueError("messages must equal the sum over conversations")

    @property
    def conversations(self) -> int:
        """Conversations that got at least one message."""
        return len(self.messages_per_conversation)

    @property
    def messages_per_day(self) -> float:
        """Messages stored per day, on average."""
        return self.messages / self.workload.days

    @property
    def mean_content_bytes(self) -> float:
        """Average text size of a message, in bytes."""
        return self.content_bytes / self.messages if self.messages else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row: users, conversations, days, messages, per day, mean text bytes."""
        return pd.DataFrame([{
            "users": self.workload.users,
            "conversations": self.conversations,
            "days": self.workload.days,
            "messages": self.messages,
            "messages_per_day": self.messages_per_day,
            "mean_content_bytes": self.mean_content_bytes,
        }])


def populate(server: ChatServer, clock: ManualClock, workload: ChatWorkload) -> WorkloadSummary:
    """Register the users, create the conversations and send ``workload.days`` days of
    messages through ``server``, moving ``clock`` (which must be the server's clock) forward.
    Returns what was stored. Deterministic for a given ``workload.seed``."""
    rng = np.random.default_rng(workload.seed)
    users = [f"u{i:03d}" for i in range(workload.users)]
    for user in users:
        server.register_user(user)
    pairs = list(itertools.combinations(users, 2))
    chosen = rng.choice(len(pairs), size=workload.direct_conversations, replace=False)
    # A conversation is (recipient used by senders, its members).
    conversations: list[tuple[str | None, tuple[str, ...]]] = [
        (None, pairs[int(i)]) for i in sorted(chosen)
    ]
    for g in range(workload.groups):
        picked = [users[int(i)] for i in rng.choice(workload.users, workload.group_size, replace=False)]
        group = server.create_group(picked[0], picked[1:], f"group {g}")
        conversations.append((group, tuple(picked)))
    rates = rng.lognormal(0.0, 0.75, size=len(conversations))
    rates *= workload.messages_per_conversation_per_day / rates.mean()
    second_devices = {u for u in users if rng.random() < workload.second_device_fraction}
    start = clock()
    per_conversation: dict[str, int] = {}
    content_bytes = sent = 0
    for day in range(workload.days):
        counts = rng.poisson(rates)
        events = [(float(rng.random()), index) for index, count in enumerate(counts)
                  for _ in range(int(count))]
        events.sort()
        for offset, index in events:
            recipient, members = conversations[index]
            sender = members[int(rng.integers(len(members)))]
            if recipient is None:
                recipient = members[1] if sender == members[0] else members[0]
            words = 1 + int(rng.poisson(workload.mean_words - 1))
            text = " ".join(_WORDS[int(i)] for i in rng.integers(len(_WORDS), size=words))
            target = start + (day + offset) * SECONDS_PER_DAY
            clock.advance(max(0.0, target - clock()))
            message = server.send_message(sender, recipient, text, f"w{sent}")
            per_conversation[message.conversation_id] = per_conversation.get(message.conversation_id, 0) + 1
            content_bytes += len(text.encode("utf-8"))
            sent += 1
        clock.advance(max(0.0, start + (day + 1) * SECONDS_PER_DAY - clock()))
        for user in users:
            _sync_and_ack(server, user, "phone")
            if user in second_devices and (day + 1) % workload.second_device_sync_days == 0:
                _sync_and_ack(server, user, "tablet")
    return WorkloadSummary(workload, sent, content_bytes, dict(sorted(per_conversation.items())))


def _sync_and_ack(server: ChatServer, user_id: str, device_id: str) -> None:
    """What a device does when it comes online: sync, keep the messages, acknowledge them."""
    result = server.sync(user_id, device_id, {})
    for conversation_id, messages in result.messages_by_conversation.items():
        server.ack_delivery(user_id, device_id, conversation_id, messages[-1].seq)
