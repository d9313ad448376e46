"""Model-based test: random operations on a real ``ChatServer`` (a SQLite file, closed and
reopened at random), each answer checked against a small reference model kept here.

The model is deliberately naive -- dicts and lists, no SQL, no paging tricks -- so that it is
obviously right; hypothesis's ``RuleBasedStateMachine`` drives both with the same operations
and shrinks any disagreement to a short sequence. Operations: register, send (new, retried
with the same content, reused key with other content), create groups, add and remove members,
page the conversation list with and without the pin while sends interleave, read history with
both cursors, mark seen, sync and acknowledge per device (with responses lost at random),
advance the clock or step it back, apply retention policies, close and reopen the database.

Every refused call must raise the exact :class:`ChatError` subclass the model predicts and
leave every stored row unchanged.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chatdesign.chat import (
    ArchiveAfterDays,
    ChatError,
    ChatServer,
    DeleteAfterDays,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    KeepLastN,
    ManualClock,
    Message,
    NotFound,
    RetentionPolicy,
)
from chatdesign.chat.core import preview
from chatdesign.chat.server import DEFAULT_IDEMPOTENCY_WINDOW_S

USERS = ("ann", "ben", "cat", "dan", "eve")
DEVICES = ("phone", "laptop")
CONTENTS = ("hi", "how are you?", "see you at 5")
KEYS = ("k0", "k1", "k2")
STEPS_S = (0.0, 0.001, 1.0, 90.0, 3_600.0, 2.5 * 86_400)
OPERATIONS_CHECKED: list[int] = []
"""Calls checked against the model in this process (read by the summary test at the end)."""


def dump(server: ChatServer) -> list[str]:
    """Every stored row of the hot and cold databases."""
    connection: sqlite3.Connection = server.store._connection  # type: ignore[attr-defined]
    rows: list[str] = []
    for schema in ("main", "cold"):
        tables = connection.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        for (table,) in tables:
            rows += [f"{table}:{row}" for row in connection.execute(f"SELECT * FROM {schema}.{table}")]
    return sorted(rows)


@dataclass
class ModelMessage:
    sender: str
    content: str
    key: str
    created_at: float
    message_id: int
    cold: bool = False


@dataclass
class ModelConversation:
    cid: str
    kind: str
    creator: str
    members: set[str]
    messages: dict[int, ModelMessage] = field(default_factory=dict)  # stored ones only
    last_seq: int = 0


@dataclass
class ModelKey:
    recipient: str
    content: str
    cid: str
    seq: int
    created_at: float


class ChatModel(RuleBasedStateMachine):
    """The state machine: ``self.server`` is the system, everything else is the model."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="chat-model-"))
        self.clock = ManualClock(1_750_000_000.0)
        self.server = ChatServer(self.directory / "chat.db", self.clock, synchronous="OFF")
        self.users: set[str] = set()
        self.conversations: dict[str, ModelConversation] = {}
        self.direct: dict[frozenset[str], str] = {}
        self.keys: dict[tuple[str, str], ModelKey] = {}
        self.seen: dict[tuple[str, str], int] = {}
        self.acked: dict[tuple[str, str, str], int] = {}  # the server's record per device
        self.device_has: dict[tuple[str, str], dict[str, int]] = {}  # the device's own record
        self.largest_id = -1
        self.checked = 0

    def teardown(self) -> None:
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        OPERATIONS_CHECKED.append(self.checked)

    # --- helpers --------------------------------------------------------------------------------

    def expect_error(self, error: type[ChatError], call: Callable[[], object]) -> None:
        """The call must raise exactly ``error`` and change no stored row."""
        before = dump(self.server)
        try:
            call()
        except ChatError as raised:
            assert type(raised) is error, f"expected {error.__name__}, got {raised!r}"
        else:
            raise AssertionError(f"expected {error.__name__}, the call succeeded")
        assert dump(self.server) == before, "a refused call changed stored state"
        self.checked += 1

    def pick(self, index: int) -> str:
        """A conversation id: one of the model's, or (index past the end) one that does not exist."""
        ids = sorted(self.conversations)
        return ids[index] if index < len(ids) else "g:123"

    def member_of(self, user: str) -> list[str]:
        return sorted(c.cid for c in self.conversations.values() if user in c.members)

    def new_id(self, number: int) -> None:
        assert number > self.largest_id, "an id was reused or went backwards"
        self.largest_id = number

    # --- users and groups -------------------------------------------------------------------------

    @initialize()
    def three_users_and_a_group(self) -> None:
        for user in USERS[:3]:
            self.server.register_user(user)
            self.users.add(user)
        self.create_group("ann", ["ben", "cat"], None)
        self.do_send("ann", sorted(self.conversations)[0], CONTENTS[0], "first")

    @rule(user=st.sampled_from(USERS))
    def register(self, user: str) -> None:
        if user in self.users:
            self.expect_error(InvalidRequest, lambda: self.server.register_user(user))
            return
        self.server.register_user(user)
        self.users.add(user)
        self.checked += 1

    @rule(creator=st.sampled_from(USERS[:3]), others=st.lists(st.sampled_from(USERS[:3]), max_size=3),
          stranger=st.sampled_from([None, *USERS[3:]]))
    def create_group(self, creator: str, others: list[str], stranger: str | None) -> None:
        if stranger is not None:  # maybe not registered yet: then NotFound
            others = [*others, stranger]
        if not {creator, *others} <= self.users:
            self.expect_error(NotFound, lambda: self.server.create_group(creator, others, "t"))
            return
        cid = self.server.create_group(creator, others, "t")
        assert cid.startswith("g:") and cid not in self.conversations
        self.new_id(int(cid[2:]))
        self.conversations[cid] = ModelConversation(cid, "group", creator, {creator, *others})
        assert set(self.server.members(cid)) == {creator, *others}
        self.checked += 1

    @rule(actor=st.sampled_from(USERS), index=st.integers(0, 4), user=st.sampled_from(USERS))
    def add_member(self, actor: str, index: int, user: str) -> None:
        cid = self.pick(index)
        call = lambda: self.server.add_member(actor, cid, user)  # noqa: E731
        conversation = self.conversations.get(cid)
        if actor not in self.users or user not in self.users or conversation is None:
            self.expect_error(NotFound, call)
        elif conversation.kind == "direct":
            self.expect_error(InvalidRequest, call)
        elif actor not in conversation.members:
            self.expect_error(Forbidden, call)
        elif user in conversation.members:
            self.expect_error(InvalidRequest, call)
        else:
            call()
            conversation.members.add(user)
            self.checked += 1

    @rule(actor=st.sampled_from(USERS), index=st.integers(0, 4), user=st.sampled_from(USERS))
    def remove_member(self, actor: str, index: int, user: str) -> None:
        cid = self.pick(index)
        call = lambda: self.server.remove_member(actor, cid, user)  # noqa: E731
        conversation = self.conversations.get(cid)
        if actor not in self.users or user not in self.users or conversation is None:
            self.expect_error(NotFound, call)
        elif conversation.kind == "direct":
            self.expect_error(InvalidRequest, call)
        elif actor != user and actor != conversation.creator:
            self.expect_error(Forbidden, call)
        elif user not in conversation.members:
            self.expect_error(InvalidRequest, call)
        else:
            call()
            conversation.members.discard(user)
            self.checked += 1

    @rule(index=st.integers(0, 4), member=st.integers(0, 4))
    def leave_and_rejoin(self, index: int, member: int) -> None:
        """A member leaves a group (traffic may go on without them) and the creator adds them
        back: receipts and device positions must resume where they were."""
        conversation = self.conversations.get(self.pick(index))
        if conversation is None or conversation.kind != "group":
            return
        others = sorted(conversation.members - {conversation.creator})
        if not others:
            return
        user = others[member % len(others)]
        self.server.remove_member(user, conversation.cid, user)
        conversation.members.discard(user)
        self.do_send(conversation.creator, conversation.cid, CONTENTS[0], f"while-away-{self.checked}")
        self.server.add_member(conversation.creator, conversation.cid, user)
        conversation.members.add(user)
        self.checked += 2

    # --- sending ----------------------------------------------------------------------------------

    @rule(sender=st.sampled_from(USERS), to_user=st.sampled_from(USERS), index=st.integers(0, 4),
          direct=st.booleans(), content=st.sampled_from(CONTENTS), key=st.sampled_from(KEYS))
    def send(self, sender: str, to_user: str, index: int, direct: bool, content: str,
             key: str) -> None:
        self.do_send(sender, to_user if direct else self.pick(index), content, key)

    def do_send(self, sender: str, recipient: str, content: str, key: str) -> None:
        call = lambda: self.server.send_message(sender, recipient, content, key)  # noqa: E731
        if sender not in self.users:
            self.expect_error(NotFound, call)
            return
        record = self.keys.get((sender, key))
        if record is not None:
            if (record.recipient, record.content) != (recipient, content):
                self.expect_error(IdempotencyConflict, call)
                return
            stored = self.conversations[record.cid].messages.get(record.seq)
            if stored is None:  # a retention policy removed the original
                self.expect_error(NotFound, call)
                return
            original = call()
            assert original == self.as_message(record.cid, record.seq, stored), "a retry differs"
            self.checked += 1
            return
        if recipient.startswith(("g:", "d:")):
            conversation = self.conversations.get(recipient)
            if conversation is None:
                self.expect_error(NotFound, call)
                return
            if sender not in conversation.members:
                self.expect_error(Forbidden, call)
                return
        elif recipient not in self.users:
            self.expect_error(NotFound, call)
            return
        elif recipient == sender:
            self.expect_error(InvalidRequest, call)
            return
        message = call()
        assert isinstance(message, Message)
        cid = message.conversation_id
        if not recipient.startswith(("g:", "d:")):
            pair = frozenset((sender, recipient))
            if pair not in self.direct:
                assert cid not in self.conversations
                self.new_id(int(cid[2:]))
                self.direct[pair] = cid
                self.conversations[cid] = ModelConversation(cid, "direct", sender, set(pair))
            assert cid == self.direct[pair]
        conversation = self.conversations[cid]
        previous = conversation.messages.get(conversation.last_seq)
        conversation.last_seq += 1
        assert message.seq == conversation.last_seq, "seq must grow by one, without gaps"
        assert (message.sender_id, message.content, message.client_message_id) == (sender, content, key)
        assert not message.cold
        if previous is not None:
            assert message.created_at >= previous.created_at, "time order must follow seq order"
        self.new_id(message.message_id)
        conversation.messages[message.seq] = ModelMessage(
            sender, content, key, message.created_at, message.message_id)
        self.keys[(sender, key)] = ModelKey(recipient, content, cid, message.seq, message.created_at)
        self.seen[(cid, sender)] = message.seq  # sending implies having seen
        self.checked += 1

    @staticmethod
    def as_message(cid: str, seq: int, m: ModelMessage) -> Message:
        return Message(m.message_id, cid, seq, m.sender, m.content, m.created_at, m.key, (), m.cold)

    # --- reading ----------------------------------------------------------------------------------

    def expected_summary(self, user: str, cid: str, last_seq: int) -> tuple[object, ...]:
        conversation = self.conversations[cid]
        last = conversation.messages.get(last_seq)
        unread = max(0, last_seq - self.seen.get((cid, user), 0))
        return (last_seq, None if last is None else last.sender,
                None if last is None else preview(last.content), unread)

    @rule(user=st.sampled_from(USERS), size=st.integers(1, 3),
          interleave=st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 4),
                                        st.sampled_from(CONTENTS)), max_size=4),
          pinned=st.booleans())
    def page_conversations(self, user: str, size: int,
                           interleave: list[tuple[str, int, str]], pinned: bool) -> None:
        if user not in self.users:
            self.expect_error(NotFound, lambda: self.server.fetch_conversations(user, 0, size))
            return
        first = self.server.fetch_conversations(user, 0, size)
        expected = self.member_of(user)
        last_seq_at_pin = {cid: self.conversations[cid].last_seq for cid in expected}
        pin = first.last_updated_timestamp
        items = list(first.items)
        page = first
        page_number = 0
        while page.has_more:
            if interleave:  # other traffic between two pages
                sender, index, content = interleave.pop()
                self.do_send(sender, self.pick(index), content, f"interleaved-{self.checked}")
            page_number += 1
            page = self.server.fetch_conversations(user, page_number, size, pin if pinned else None)
            if pinned:
                assert page.last_updated_timestamp == pin
                items += page.items
            else:
                items = []  # without the pin, pages may repeat and skip: only check one page
                break
        if not pinned:
            return
        ids = [i.conversation_id for i in items]
        assert sorted(ids) == expected, "a pinned listing must show each conversation exactly once"
        times = [i.updated_at for i in items]
        assert times == sorted(times, reverse=True), "most recent first"
        for item in items:
            got = (item.last_seq, item.last_sender_id, item.last_message_preview, item.unread_count)
            assert got[0] == last_seq_at_pin[item.conversation_id], "as it stood at the pin"
            assert got[:3] == self.expected_summary(user, item.conversation_id, got[0])[:3]
        self.checked += page_number + 1

    @rule(user=st.sampled_from(USERS), index=st.integers(0, 4), cursor=st.integers(0, 12),
          mode=st.sampled_from(["newest", "before", "after", "both"]), limit=st.integers(1, 5))
    def fetch_messages(self, user: str, index: int, cursor: int, mode: str, limit: int) -> None:
        cid = self.pick(index)
        kwargs: dict[str, int] = {"limit": limit}
        if mode in ("before", "both"):
            kwargs["before_seq"] = cursor + 1
        if mode in ("after", "both"):
            kwargs["after_seq"] = cursor
        call = lambda: self.server.fetch_messages(user, cid, **kwargs)  # type: ignore[arg-type]  # noqa: E731
        conversation = self.conversations.get(cid)
        if mode == "both":
            self.expect_error(InvalidRequest, call)
        elif user not in self.users or conversation is None:
            self.expect_error(NotFound, call)
        elif user not in conversation.members:
            self.expect_error(Forbidden, call)
        else:
            stored = sorted(conversation.messages)
            if mode == "after":
                seqs = [s for s in stored if s > cursor][:limit]
            else:
                upper = cursor + 1 if mode == "before" else 1 << 62
                seqs = [s for s in stored if s < upper][::-1][:limit]
            got = self.server.fetch_messages(user, cid, **kwargs)  # type: ignore[arg-type]
            assert got == [self.as_message(cid, s, conversation.messages[s]) for s in seqs]
            self.checked += 1

    # --- receipts and devices ---------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), index=st.integers(0, 4), up_to=st.integers(1, 12))
    def mark_seen(self, user: str, index: int, up_to: int) -> None:
        cid = self.pick(index)
        call = lambda: self.server.mark_seen(user, cid, up_to)  # noqa: E731
        conversation = self.conversations.get(cid)
        if user not in self.users or conversation is None:
            self.expect_error(NotFound, call)
        elif user not in conversation.members:
            self.expect_error(Forbidden, call)
        elif up_to > conversation.last_seq:
            self.expect_error(InvalidRequest, call)
        else:
            expected = max(self.seen.get((cid, user), 0), up_to)
            assert call() == expected, "seen receipts only move forward"
            self.seen[(cid, user)] = expected
            readers = sorted(u for u in conversation.members if self.seen.get((cid, u), 0) >= up_to)
            assert sorted(self.server.seen_by(cid, up_to)) == readers
            self.checked += 2

    @rule(user=st.sampled_from(USERS), device=st.sampled_from(DEVICES), present=st.booleans(),
          lost=st.booleans())
    def sync(self, user: str, device: str, present: bool, lost: bool) -> None:
        has = self.device_has.setdefault((user, device), {})
        presented = dict(has) if present else None
        call = lambda: self.server.sync(user, device, presented)  # noqa: E731
        if user not in self.users:
            self.expect_error(NotFound, call)
            return
        result = call()
        expected: dict[str, list[int]] = {}
        for cid in self.member_of(user):
            start = has.get(cid, 0) if present else self.acked.get((user, device, cid), 0)
            if present and cid not in has:
                start = self.acked.get((user, device, cid), 0)
            seqs = [s for s in sorted(self.conversations[cid].messages) if s > start]
            if seqs:
                expected[cid] = seqs
        got = {cid: [m.seq for m in ms] for cid, ms in result.messages_by_conversation.items()}
        assert got == expected, "a sync brings exactly what the device has not got"
        for cid, messages in result.messages_by_conversation.items():
            for m in messages:
                assert m == self.as_message(cid, m.seq, self.conversations[cid].messages[m.seq])
            if not lost:  # the device stores what arrived (a lost response stores nothing)
                has[cid] = max(has.get(cid, 0), messages[-1].seq)
        self.checked += 1

    @rule(user=st.sampled_from(USERS), device=st.sampled_from(DEVICES))
    def sync_and_ack(self, user: str, device: str) -> None:
        """What a well-behaved device does: sync from its own record, keep, acknowledge."""
        self.sync(user, device, present=True, lost=False)
        for cid in sorted(self.device_has.get((user, device), {})):
            if cid in self.member_of(user):
                self.ack(user, device, sorted(self.conversations).index(cid), beyond=False)

    @rule(user=st.sampled_from(USERS), device=st.sampled_from(DEVICES), index=st.integers(0, 4),
          beyond=st.booleans())
    def ack(self, user: str, device: str, index: int, beyond: bool) -> None:
        cid = self.pick(index)
        conversation = self.conversations.get(cid)
        has = self.device_has.get((user, device), {})
        up_to = (conversation.last_seq + 1) if (beyond and conversation) else has.get(cid, 1)
        call = lambda: self.server.ack_delivery(user, device, cid, up_to)  # noqa: E731
        if user not in self.users or conversation is None:
            self.expect_error(NotFound, call)
        elif user not in conversation.members:
            self.expect_error(Forbidden, call)
        elif up_to > conversation.last_seq:
            self.expect_error(InvalidRequest, call)
        else:
            key = (user, device, cid)
            expected = max(self.acked.get(key, 0), up_to)
            assert call() == expected, "an acknowledged position never moves backwards"
            self.acked[key] = expected
            self.checked += 1

    # --- time, retention, restarts ----------------------------------------------------------------

    @rule(step=st.sampled_from(STEPS_S), back=st.booleans())
    def move_clock(self, step: float, back: bool) -> None:
        if back:
            self.clock.step_back(min(step, 120.0))  # an NTP correction
        else:
            self.clock.advance(step)

    @rule(kind=st.sampled_from(["keep_last", "archive", "delete"]), n=st.integers(1, 4),
          days=st.sampled_from([0.5, 2.0, 5.0]))
    def apply_retention(self, kind: str, n: int, days: float) -> None:
        policy: RetentionPolicy
        if kind == "keep_last":
            policy = KeepLastN(n)
        elif kind == "archive":
            policy = ArchiveAfterDays(days)
        else:
            policy = DeleteAfterDays(days)
        now = self.server.now()
        deleted = archived = 0
        for conversation in self.conversations.values():
            for seq in sorted(conversation.messages):
                message = conversation.messages[seq]
                if isinstance(policy, KeepLastN):
                    due = seq <= conversation.last_seq - policy.n
                else:
                    due = message.created_at < policy.cutoff_time(now)
                if not due:
                    continue
                if policy.action == "archive":
                    archived += not message.cold
                    message.cold = True
                else:
                    del conversation.messages[seq]
                    deleted += 1
        expired = [k for k, r in self.keys.items() if r.created_at < now - DEFAULT_IDEMPOTENCY_WINDOW_S]
        for k in expired:
            del self.keys[k]
        report = self.server.apply_retention(policy)
        got = (report.deleted_messages, report.archived_messages, report.expired_idempotency_keys)
        assert got == (deleted, archived, len(expired))
        self.checked += 1

    @rule()
    def close_and_reopen(self) -> None:
        self.server.close()
        self.server = ChatServer(self.directory / "chat.db", self.clock, synchronous="OFF")

    @invariant()
    def memberships_receipts_and_positions_agree(self) -> None:
        for cid, conversation in self.conversations.items():
            assert set(self.server.members(cid)) == conversation.members
            if conversation.last_seq:
                readers = {u for u in conversation.members if self.seen.get((cid, u), 0) >= 1}
                assert set(self.server.seen_by(cid, 1)) == readers
        for user, device in self.device_has:
            if user in self.users:
                acked = {cid: seq for (u, d, cid), seq in self.acked.items() if (u, d) == (user, device)}
                assert self.server.delivered_positions(user, device) == acked


ChatModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChatModel = ChatModel.TestCase


def test_the_model_checked_many_operations() -> None:
    """Runs after the machine (same module, defined later): it must have checked thousands
    of calls, so a rule that silently stopped running would be noticed."""
    if OPERATIONS_CHECKED:
        print(f"model-based: {sum(OPERATIONS_CHECKED):,} calls checked in {len(OPERATIONS_CHECKED)} runs")
        assert sum(OPERATIONS_CHECKED) >= 1_000, sum(OPERATIONS_CHECKED)
