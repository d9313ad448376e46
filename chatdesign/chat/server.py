"""The in-process chat server: the rules of :mod:`~chatdesign.chat.core` on a store, a clock
and a delivery hook.

Each public method validates its arguments, then runs inside one store transaction: it reads
what the rules need, asks the core for a decision, and writes the result. Any error raised on
the way rolls the transaction back, so a refused call changes nothing stored. Delivery to
connected devices happens only after the transaction commits, through a :class:`Fanout`: the
default :class:`LocalFanout` puts messages on the queues of this process's sessions; a
network server can publish to other processes (Redis pub/sub) behind the same one method.

Delivery is at-least-once with acknowledgements: a device presents its own last received
``seq`` per conversation when it syncs (or starts from what it last acknowledged), a sync or a
push records nothing, and only :meth:`ChatServer.ack_delivery` advances the server's record of
a device. A response lost on the way therefore loses nothing; the device drops repeats by
``seq``, so each message is shown once.

Not thread-safe: one server object belongs to one thread (a network layer serialises calls).

Taught in ``notebooks/02_chat_api.ipynb`` and ``notebooks/03_consistency.ipynb``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

from chatdesign.chat.attachments import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    Attachment,
    AttachmentFiles,
    check_upload,
)
from chatdesign.chat.core import (
    DEFAULT_MAX_GROUP_SIZE,
    Conversation,
    ConversationPage,
    ConversationSummary,
    Message,
    SnowflakeGenerator,
    SyncResult,
    advance_receipt,
    check_can_add_member,
    check_can_remove_member,
    conversation_id_for,
    direct_pair,
    group_members,
    history_window,
    is_conversation_id,
    is_retry,
    message_time,
    page_request,
    preview,
    require_time,
    send_fingerprint,
    sync_start,
    validate_attachment_ids,
    validate_client_message_id,
    validate_content,
    validate_device_id,
    validate_display_name,
    validate_int,
    validate_positions,
    validate_title,
    validate_user_id,
)
from chatdesign.chat.errors import ChatError, Forbidden, InvalidRequest, NotFound
from chatdesign.chat.retention import (
    RETENTION_POLICY_TYPES,
    ArchiveAfterDays,
    ClientOnly,
    DeleteAfterDays,
    KeepAll,
    KeepLastN,
    RetentionPolicy,
    RetentionReport,
    StorageStats,
)
from chatdesign.chat.store import ChatStore, SQLiteStore, Synchronous
from chatdesign.clock import Clock
from chatdesign.units import SECONDS_PER_DAY

DEFAULT_IDEMPOTENCY_WINDOW_S = 7 * SECONDS_PER_DAY
"""How long a (sender, client_message_id) key is remembered: far longer than any retry."""


class Fanout(Protocol):
    """Where committed messages go: ``publish`` hands a message to every connected device of
    the given users (in this process, or through a broker to others).

    A multi-process deployment passes its own fanout (e.g. one that publishes to Redis); each
    process's subscriber then calls ``server.local_fanout.publish`` for the sessions it holds.
    """

    def publish(self, user_ids: Sequence[str], message: Message) -> None:
        """Deliver ``message`` to the connected devices of ``user_ids``."""
        ...


class DeviceSession:
    """One connected device. New messages of the user's conversations arrive on its queue;
    :meth:`drain` takes them and :meth:`ack` tells the server which ones the device kept."""

    def __init__(self, server: ChatServer, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.queue: deque[Message] = deque()
        self.closed = False
        self._server = server

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.queue)} queued"
        return f"DeviceSession({self.user_id}/{self.device_id}, {state})"

    def drain(self) -> list[Message]:
        """Everything queued, oldest first. Taking messages off the queue records nothing:
        the device acknowledges what it has kept with :meth:`ack` (at-least-once delivery)."""
        messages = list(self.queue)
        self.queue.clear()
        return messages

    def ack(self, conversation_id: str, up_to_seq: int) -> int:
        """Acknowledge every message of ``conversation_id`` up to and including ``up_to_seq``
        for this device (see :meth:`ChatServer.ack_delivery`)."""
        return self._server.ack_delivery(self.user_id, self.device_id, conversation_id, up_to_seq)

    def close(self) -> None:
        """Disconnect: no more messages arrive (idempotent)."""
        if not self.closed:
            self.closed = True
            self._server.local_fanout.unregister(self)


class LocalFanout:
    """The in-process fan-out: sessions by user, each message appended to their queues."""

    def __init__(self) -> None:
        self._sessions: dict[str, list[DeviceSession]] = {}

    def __repr__(self) -> str:
        return f"LocalFanout({sum(len(s) for s in self._sessions.values())} sessions)"

    def register(self, session: DeviceSession) -> None:
        """Start delivering to a session."""
        self._sessions.setdefault(session.user_id, []).append(session)

    def unregister(self, session: DeviceSession) -> None:
        """Stop delivering to a session."""
        sessions = self._sessions.get(session.user_id, [])
        if session in sessions:
            sessions.remove(session)

    def publish(self, user_ids: Sequence[str], message: Message) -> None:
        """Append the message to the queue of every session of these users."""
        for user_id in user_ids:
            for session in self._sessions.get(user_id, []):
                session.queue.append(message)


SendRequest = tuple[str, str, str, str, tuple[str, ...]]
"""One send of a batch: ``(sender_id, recipient_id, content, client_message_id, attachments)``."""


class _CollectingFanout:
    """Holds what a batch publishes until the batch has committed."""

    def __init__(self) -> None:
        self.published: list[tuple[Sequence[str], Message]] = []

    def publish(self, user_ids: Sequence[str], message: Message) -> None:
        self.published.append((user_ids, message))


class ChatServer:
    """The chat service in one process (see the module docstring).

    ``path=None`` keeps the database in memory; a file path is durable and a new server on the
    same file sees everything. ``clock`` returns seconds (default: wall time). Attachments are
    files under ``data_dir``: by default ``<path>.files/`` next to a database file, or, in
    memory, a temporary directory the server owns and removes on :meth:`close`.
    ``fanout`` receives committed messages (default: this server's :class:`LocalFanout`).
    Idempotency keys are kept for ``idempotency_window_s`` (default 7 days): a retry within
    that window is recognised; :meth:`apply_retention` forgets older keys.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        clock: Clock | None = None,
        *,
        data_dir: str | Path | None = None,
        worker_id: int = 0,
        max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
        max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
        synchronous: Synchronous = "FULL",
        fanout: Fanout | None = None,
        idempotency_window_s: float = DEFAULT_IDEMPOTENCY_WINDOW_S,
    ) -> None:
        if clock is not None and not callable(clock):
            raise ValueError("clock must be a callable returning seconds")
        for name, value in (("max_group_size", max_group_size),
                            ("max_attachment_bytes", max_attachment_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be a whole number >= 2, got {value!r}")
        if (isinstance(idempotency_window_s, bool)
                or not isinstance(idempotency_window_s, int | float)
                or not math.isfinite(idempotency_window_s) or idempotency_window_s <= 0):
            raise ValueError(
                f"idempotency_window_s must be a positive number of seconds, got {idempotency_window_s!r}"
            )
        self.idempotency_window_s = float(idempotency_window_s)
        self._clock: Clock = clock if clock is not None else time.time
        self.max_group_size = max_group_size
        self.max_attachment_bytes = max_attachment_bytes
        self.store: ChatStore = SQLiteStore(path, synchronous=synchronous)
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is not None:
            directory = Path(data_dir)
        elif path is not None:
            directory = Path(f"{path}.files")
        else:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="chatdesign-")
            directory = Path(self._temp_dir.name)
        self.files = AttachmentFiles(directory / "attachments")
        self._ids = SnowflakeGenerator(worker_id, self.store.last_message_id())
        self._latest_s = self.store.latest_activity_time() or 0.0
        self.local_fanout = LocalFanout()
        self.fanout: Fanout = fanout if fanout is not None else self.local_fanout
        self._known_users: set[str] = set()
        self._direct_cache: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"ChatServer({self.store!r}, max_group_size={self.max_group_size})"

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and remove a temporary data directory (idempotent)."""
        self.store.close()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def now(self) -> float:
        """The server's time in seconds: the clock, but never earlier than a time this server
        (or the database it opened) has already used, so a clock stepping back cannot make
        new activity older than old activity."""
        self._latest_s = max(self._latest_s, require_time(self._clock(), "clock()"))
        return self._latest_s

    # --- helpers ------------------------------------------------------------------------------

    def _require_user(self, user_id: object, name: str = "user_id") -> str:
        return self._require_registered(validate_user_id(user_id, name))

    def _require_registered(self, checked: str) -> str:
        """An already validated user id, if registered (else :class:`NotFound`)."""
        if checked not in self._known_users:  # users are never deleted: cache positive answers
            if not self.store.has_user(checked):
                raise NotFound(f"no user {checked!r} (register_user first)")
            self._known_users.add(checked)
        return checked

    def _require_conversation(self, conversation_id: object) -> Conversation:
        if not isinstance(conversation_id, str) or not is_conversation_id(conversation_id):
            raise InvalidRequest(f"{conversation_id!r} is not a conversation id ('d:…' or 'g:…')")
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id!r}")
        return conversation

    def _require_member(self, user_id: str, conversation_id: object) -> Conversation:
        conversation = self._require_conversation(conversation_id)
        if not self.store.is_member(conversation.conversation_id, user_id):
            raise Forbidden(f"{user_id} is not a member of {conversation.conversation_id}")
        return conversation

    # --- users and groups ---------------------------------------------------------------------

    def register_user(self, user_id: str, display_name: str | None = None) -> None:
        """Register a user; ``InvalidRequest`` if the id is malformed or already taken."""
        checked = validate_user_id(user_id)
        name = validate_display_name(display_name, checked)
        now = self.now()
        with self.store.transaction():
            if self.store.has_user(checked):
                raise InvalidRequest(f"user {checked!r} is already registered")
            self.store.add_user(checked, name, now)

    def has_user(self, user_id: str) -> bool:
        """Whether ``user_id`` is registered; ``InvalidRequest`` if the id is malformed."""
        checked = validate_user_id(user_id)
        with self.store.transaction():
            return self.store.has_user(checked)

    def create_group(self, creator_id: str, member_ids: Sequence[str], title: str) -> str:
        """Create a group with the creator and ``member_ids`` (at most ``max_group_size`` in
        all); returns its conversation id (``g:<n>``)."""
        creator = validate_user_id(creator_id, "creator_id")
        checked_title = validate_title(title)
        members = group_members(creator, member_ids, self.max_group_size)
        now = self.now()
        with self.store.transaction():
            missing = [m for m in members if not self.store.has_user(m)]
            if missing:
                raise NotFound(f"no such users: {', '.join(missing)}")
            conversation_id = conversation_id_for("group", self._ids.next_id(now))
            conversation = Conversation(
                conversation_id, "group", checked_title, creator, now, 0, now
            )
            self.store.add_conversation(conversation, members, None)
        return conversation_id

    def add_member(self, actor_id: str, conversation_id: str, user_id: str) -> None:
        """A current member (``actor_id``) adds ``user_id`` to a group below its size limit."""
        actor = self._require_user(actor_id, "actor_id")
        new_member = self._require_user(user_id)
        now = self.now()
        with self.store.transaction():
            conversation = self._require_conversation(conversation_id)
            cid = conversation.conversation_id
            check_can_add_member(
                conversation,
                actor_is_member=self.store.is_member(cid, actor),
                already_member=self.store.is_member(cid, new_member),
                member_count=len(self.store.member_ids(cid)),
                max_group_size=self.max_group_size,
            )
            self.store.add_member(cid, new_member, now)

    def remove_member(self, actor_id: str, conversation_id: str, user_id: str) -> None:
        """Remove ``user_id`` from a group: themselves (leaving) or by the group's creator.
        From then on they can neither read nor post in it."""
        actor = self._require_user(actor_id, "actor_id")
        member = self._require_user(user_id)
        with self.store.transaction():
            conversation = self._require_conversation(conversation_id)
            check_can_remove_member(
                conversation, actor, member,
                self.store.is_member(conversation.conversation_id, member),
            )
            self.store.remove_member(conversation.conversation_id, member)

    def members(self, conversation_id: str) -> tuple[str, ...]:
        """A conversation's current members, in the order they joined."""
        conversation = self._require_conversation(conversation_id)
        return self.store.member_ids(conversation.conversation_id)

    # --- sending ------------------------------------------------------------------------------

    def send_message(
        self,
        sender_id: str,
        recipient_id: str,
        content: str,
        client_message_id: str,
        attachments: Sequence[str] = (),
    ) -> Message:
        """Send ``content`` from ``sender_id`` to a user (1:1; the conversation is found or
        created) or to a conversation id the sender belongs to.

        Idempotent on (sender_id, client_message_id): a retry returns the original message and
        stores nothing; the same key with different recipient, content or attachments raises
        :class:`IdempotencyConflict`. The message's ``seq`` is the conversation's previous
        ``seq`` + 1.
        """
        sender = validate_user_id(sender_id, "sender_id")
        if not isinstance(recipient_id, str):
            raise InvalidRequest(f"recipient_id must be a user id or conversation id, got {recipient_id!r}")
        client_id = validate_client_message_id(client_message_id)
        files = validate_attachment_ids(attachments)
        text = validate_content(content, files)
        fingerprint = send_fingerprint(recipient_id, text, files)
        now = self.now()
        created: list[tuple[tuple[str, str], str]] = []
        with self.store.transaction():
            self._require_registered(sender)
            record = self.store.find_idempotency(sender, client_id)
            if is_retry(record, fingerprint):
                assert record is not None
                original = self.store.get_message(record.conversation_id, record.seq)
                if original is None:
                    raise NotFound(
                        f"client_message_id {client_id!r} was sent as {record.conversation_id}"
                        f"#{record.seq}, which a retention policy has since removed"
                    )
                return original
            conversation_id, direct_members = self._conversation_to_send_to(
                sender, recipient_id, now, created
            )
            for attachment_id in files:
                if self.store.get_attachment(attachment_id) is None:
                    raise NotFound(f"no attachment {attachment_id} (upload it first)")
                if not (self.store.is_uploader(attachment_id, sender)
                        or self.store.can_read_attachment(attachment_id, sender)):
                    raise Forbidden(f"{sender} has neither uploaded nor received {attachment_id}")
            seq, previous_time = self.store.claim_seq(conversation_id, now)
            message = Message(
                message_id=self._ids.next_id(now),
                conversation_id=conversation_id,
                seq=seq,
                sender_id=sender,
                content=text,
                created_at=message_time(now, previous_time),
                client_message_id=client_id,
                attachments=files,
            )
            self.store.insert_message(message, fingerprint)
            self.store.set_seen(conversation_id, sender, seq)  # sending implies having seen
            recipients = direct_members or self.store.member_ids(conversation_id)
        self._direct_cache.update(created)  # committed now: safe to remember
        self.fanout.publish(recipients, message)
        return message

    def send_batch(self, sends: Sequence[SendRequest]) -> list[Message | ChatError]:
        """Group commit: every send of ``sends`` in one transaction (one fsync), each as if by
        :meth:`send_message` -- same idempotency and ``seq`` rules -- in its own savepoint, so
        a refused send (its :class:`ChatError` is returned in its place) leaves the others
        alone. Messages are published only after the batch has committed; if the commit
        fails, the error propagates and nothing of the batch is stored or published.

        Taught in ``notebooks/06_connections.ipynb``; used by :mod:`chatdesign.chat.ws`.
        """
        collected = _CollectingFanout()
        fanout, self.fanout = self.fanout, collected
        results: list[Message | ChatError] = []
        try:
            with self.store.transaction():
                for send in sends:
                    try:
                        results.append(self.send_message(*send))
                    except ChatError as error:
                        results.append(error)
        except BaseException:
            self._direct_cache.clear()  # it may name a conversation the rollback removed
            raise
        finally:
            self.fanout = fanout
        for user_ids, message in collected.published:
            self.fanout.publish(user_ids, message)
        return results

    def _conversation_to_send_to(
        self, sender: str, recipient_id: str, now: float,
        created: list[tuple[tuple[str, str], str]],
    ) -> tuple[str, tuple[str, str] | None]:
        """The conversation a send goes to, and its two members if it is a 1:1 (which never
        change, so the caller need not read them). A 1:1 created here is appended to
        ``created``: the caller remembers it once the transaction has committed."""
        if is_conversation_id(recipient_id):
            return self._require_member(sender, recipient_id).conversation_id, None
        recipient = self._require_user(recipient_id, "recipient_id")
        pair = direct_pair(sender, recipient)
        cached = self._direct_cache.get(pair)
        if cached is not None:
            return cached, pair
        found = self.store.find_direct(pair)
        if found is None:
            found = conversation_id_for("direct", self._ids.next_id(now))
            title = f"{pair[0]} & {pair[1]}"
            self.store.add_conversation(
                Conversation(found, "direct", title, sender, now, 0, now), pair, pair
            )
            created.append((pair, found))
        else:  # a 1:1 pair never changes: safe to remember once committed
            self._direct_cache[pair] = found
        return found, pair

    # --- reading ------------------------------------------------------------------------------

    def fetch_conversations(
        self,
        user_id: str,
        page_number: int,
        page_size: int,
        last_updated_timestamp: float | None = None,
    ) -> ConversationPage:
        """The user's conversations, most recent first, ``page_size`` per page from page 0.

        Without ``last_updated_timestamp`` the ranking is the current one and the page reports
        the current time as its ``last_updated_timestamp``; pass that back for the next pages
        and they rank conversations as they stood then, so each conversation active at or
        before it appears exactly once however many messages arrive meanwhile.
        """
        user = self._require_user(user_id)
        offset, size, as_of = page_request(
            page_number, page_size, last_updated_timestamp, self.now()
        )
        rows = self.store.conversations_as_of(user, as_of, offset, size + 1)
        items = []
        for conversation_id, kind, title, seq, updated_at in rows[:size]:
            last = self.store.get_message(conversation_id, seq) if seq else None
            seen = self.store.get_seen(conversation_id, user)
            items.append(
                ConversationSummary(
                    conversation_id=conversation_id,
                    kind=kind,
                    title=title,
                    updated_at=updated_at,
                    last_seq=seq,
                    last_sender_id=None if last is None else last.sender_id,
                    last_message_preview=None if last is None else preview(last.content),
                    unread_count=max(0, seq - seen),
                )
            )
        return ConversationPage(tuple(items), offset // size, size, len(rows) > size, as_of)

    def fetch_messages(
        self,
        user_id: str,
        conversation_id: str,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages of a conversation the user belongs to.

        Default and ``before_seq``: the newest ``limit`` messages (older than ``before_seq``),
        newest first -- scroll back by passing the last one's ``seq``. ``after_seq``: the
        oldest ``limit`` messages after it, oldest first -- catching up. Archived messages come
        back with ``cold=True``. ``limit`` is 1..100.
        """
        window = history_window(before_seq, after_seq, limit)
        user = self._require_user(user_id)
        conversation = self._require_member(user, conversation_id)
        return self.store.messages(conversation.conversation_id, window)

    # --- receipts -----------------------------------------------------------------------------

    def mark_seen(self, user_id: str, conversation_id: str, up_to_seq: int) -> int:
        """Record that the user has seen every message up to and including ``up_to_seq``.
        The receipt never moves backwards; returns the receipt's seq afterwards."""
        user = self._require_user(user_id)
        validate_int(up_to_seq, "up_to_seq", 1)
        with self.store.transaction():
            conversation = self._require_member(user, conversation_id)
            cid = conversation.conversation_id
            current = self.store.get_seen(cid, user)
            updated = advance_receipt(current, up_to_seq, conversation.last_seq)
            if updated != current:
                self.store.set_seen(cid, user, updated)
        return updated

    def seen_positions(self, user_id: str, conversation_id: str) -> dict[str, int]:
        """``{member_id: seen seq}`` for every current member of a conversation ``user_id``
        belongs to (0: nothing seen yet) -- what a client draws "seen" ticks from."""
        user = self._require_user(user_id)
        with self.store.transaction():
            conversation = self._require_member(user, conversation_id)
            cid = conversation.conversation_id
            return {m: self.store.get_seen(cid, m) for m in self.store.member_ids(cid)}

    def seen_by(self, conversation_id: str, seq: int) -> tuple[str, ...]:
        """The current members who have seen message ``seq`` (senders have seen their own)."""
        conversation = self._require_conversation(conversation_id)
        if conversation.last_seq == 0:
            raise InvalidRequest(f"{conversation.conversation_id} has no messages yet")
        validate_int(seq, "seq", 1, conversation.last_seq)
        return self.store.seen_by(conversation.conversation_id, seq)

    # --- devices ------------------------------------------------------------------------------

    def sync(
        self, user_id: str, device_id: str, last_seq_by_conversation: dict[str, int] | None = None
    ) -> SyncResult:
        """Everything this device has not received, per conversation, oldest first.

        For each of the user's conversations the sync starts after the seq the device presents
        in ``last_seq_by_conversation`` (the device's own record, the seed's "client apps store
        last received msg id for each conversation"), or, for conversations it does not
        mention, after the position this device last *acknowledged* (0 for a new device).
        A sync records nothing: a response lost on the way loses no message, because the next
        sync starts from the same place. The device calls :meth:`ack_delivery` for what it
        kept. A presented position beyond a conversation's last message is refused
        (:class:`InvalidRequest`); conversations the user no longer belongs to are skipped.
        """
        user = self._require_user(user_id)
        device = validate_device_id(device_id)
        positions = validate_positions({} if last_seq_by_conversation is None
                                       else last_seq_by_conversation)
        delivered: dict[str, tuple[Message, ...]] = {}
        with self.store.transaction():
            self.store.add_device(user, device)
            remembered = self.store.delivered_positions(user, device)
            for conversation_id in self.store.conversation_ids_of(user):
                presented = positions.get(conversation_id)
                if presented is not None:
                    conversation = self._require_conversation(conversation_id)
                    if presented > conversation.last_seq:
                        raise InvalidRequest(
                            f"last seq of {conversation_id} is {presented}, beyond the "
                            f"conversation's last message ({conversation.last_seq})"
                        )
                start = sync_start(presented, remembered.get(conversation_id, 0))
                found = self._everything_after(conversation_id, start)
                if found:
                    delivered[conversation_id] = tuple(found)
        return SyncResult(user, device, delivered)

    def ack_delivery(
        self, user_id: str, device_id: str, conversation_id: str, up_to_seq: int
    ) -> int:
        """A device acknowledges that it holds every message of ``conversation_id`` up to and
        including ``up_to_seq``; returns the device's acknowledged position afterwards.

        Only acknowledgements move the server's record of a device (which the next sync without
        a presented position, "delivered" receipts (:meth:`delivered_to`), offline decisions
        and the client-only retention policy use). The position never moves backwards: an ack
        below it is a harmless no-op (acks can arrive late or twice). An ack beyond the
        conversation's last message is :class:`InvalidRequest`; a non-member is
        :class:`Forbidden`.
        """
        user = self._require_user(user_id)
        device = validate_device_id(device_id)
        validate_int(up_to_seq, "up_to_seq", 1)
        with self.store.transaction():
            conversation = self._require_member(user, conversation_id)
            cid = conversation.conversation_id
            current = self.store.delivered_positions(user, device).get(cid, 0)
            updated = advance_receipt(current, up_to_seq, conversation.last_seq)
            if updated != current:
                self.store.add_device(user, device)
                self.store.set_delivered(user, device, cid, updated)
        return updated

    def ack_deliveries(self, acks: Sequence[tuple[str, str, str, int]]) -> list[int | ChatError]:
        """Many :meth:`ack_delivery` calls ``(user_id, device_id, conversation_id, up_to_seq)``
        in one transaction (one fsync), each in its own savepoint: a refused ack returns its
        :class:`ChatError` in its place and leaves the others alone."""
        results: list[int | ChatError] = []
        with self.store.transaction():
            for user_id, device_id, conversation_id, up_to_seq in acks:
                try:
                    results.append(self.ack_delivery(user_id, device_id, conversation_id, up_to_seq))
                except ChatError as error:
                    results.append(error)
        return results

    def delivered_positions(self, user_id: str, device_id: str) -> dict[str, int]:
        """``{conversation_id: seq}``: what this device has acknowledged, per conversation
        (conversations it has acknowledged nothing of are absent)."""
        user = self._require_user(user_id)
        device = validate_device_id(device_id)
        with self.store.transaction():
            return self.store.delivered_positions(user, device)

    def delivered_to(self, conversation_id: str, seq: int) -> tuple[str, ...]:
        """The current members with at least one device that acknowledged message ``seq`` (the
        "delivered" tick): a message pushed but never acknowledged does not count."""
        conversation = self._require_conversation(conversation_id)
        if conversation.last_seq == 0:
            raise InvalidRequest(f"{conversation.conversation_id} has no messages yet")
        validate_int(seq, "seq", 1, conversation.last_seq)
        positions = self.store.device_positions(conversation.conversation_id)
        return tuple(sorted(u for u, held in positions.items() if any(p >= seq for p in held)))

    def _everything_after(self, conversation_id: str, start: int) -> list[Message]:
        found: list[Message] = []
        while True:
            after = found[-1].seq if found else start
            batch = self.store.messages(conversation_id, history_window(None, after, 100))
            found += batch
            if len(batch) < 100:
                return found

    def connect(self, user_id: str, device_id: str) -> DeviceSession:
        """Connect a device: new messages of the user's conversations arrive on the returned
        session's queue. Call :meth:`sync` after connecting to get what was missed before."""
        user = self._require_user(user_id)
        device = validate_device_id(device_id)
        with self.store.transaction():
            self.store.add_device(user, device)
        session = DeviceSession(self, user, device)
        self.local_fanout.register(session)
        return session

    # --- attachments --------------------------------------------------------------------------

    def upload_attachment(
        self, user_id: str, data: bytes, content_type: str, filename: str
    ) -> str:
        """Store an attachment and return its id (the sha256 of ``data``; the same content
        uploaded twice is stored once). Limits: ``max_attachment_bytes`` (default 25 MB) and
        the allowed content types (images and common documents)."""
        user = self._require_user(user_id)
        info = check_upload(data, content_type, filename, self.max_attachment_bytes)
        now = self.now()
        self.files.put(info.attachment_id, bytes(data))
        with self.store.transaction():
            self.store.add_attachment(info, user, now)
        return info.attachment_id

    def fetch_attachment(self, user_id: str, attachment_id: str) -> Attachment:
        """An attachment's metadata and bytes, for members of a conversation that has a
        message referencing it."""
        user = self._require_user(user_id)
        info = self.store.get_attachment(attachment_id) if isinstance(attachment_id, str) else None
        if info is None:
            raise NotFound(f"no attachment {attachment_id!r}")
        if not self.store.can_read_attachment(info.attachment_id, user):
            raise Forbidden(
                f"{user} is not a member of any conversation that shares {info.attachment_id}"
            )
        return Attachment(info, self.files.get(info.attachment_id))

    # --- retention ----------------------------------------------------------------------------

    def apply_retention(self, policy: RetentionPolicy) -> RetentionReport:
        """Run a retention policy over every conversation, in one transaction."""
        if not isinstance(policy, RETENTION_POLICY_TYPES):
            raise InvalidRequest(
                f"policy must be one of {', '.join(t.__name__ for t in RETENTION_POLICY_TYPES)}, "
                f"got {policy!r}"
            )
        now = self.now()
        touched = deleted = archived = 0
        with self.store.transaction():
            expired = self.store.expire_idempotency_keys(now - self.idempotency_window_s)
            for conversation_id, cut in self._retention_cuts(policy, now).items():
                if cut <= 0:
                    continue
                if policy.action == "archive":
                    moved = self.store.archive_through(conversation_id, cut)
                    archived += moved
                else:
                    moved = self.store.delete_through(conversation_id, cut)
                    deleted += moved
                touched += moved > 0
        return RetentionReport(policy.describe(), touched, deleted, archived, expired)

    def _retention_cuts(self, policy: RetentionPolicy, now: float) -> dict[str, int]:
        if isinstance(policy, KeepAll):
            return {}
        if isinstance(policy, ArchiveAfterDays | DeleteAfterDays):
            return self.store.last_seq_before(policy.cutoff_time(now))
        cuts: dict[str, int] = {}
        for conversation in self.store.all_conversations():
            cid = conversation.conversation_id
            if isinstance(policy, KeepLastN):
                cuts[cid] = policy.cut(conversation.last_seq)
            elif isinstance(policy, ClientOnly):
                positions = self.store.device_positions(cid)
                cuts[cid] = policy.cut(
                    [p for per_user in positions.values() for p in per_user],
                    every_member_has_a_device=all(positions.values()),
                )
        return cuts

    def compact(self) -> None:
        """Rewrite the hot and cold databases without the space deleted messages left (run it
        after a retention policy that deleted much; it takes the write lock while it runs)."""
        self.store.compact()

    def storage_stats(self) -> StorageStats:
        """Measured sizes: hot and cold databases (pages in use) and attachment files."""
        hot_messages, cold_messages = self.store.message_counts()
        hot_bytes, cold_bytes = self.store.size_bytes()
        file_count, file_bytes = self.files.total_bytes()
        return StorageStats(
            hot_messages, cold_messages, hot_bytes, cold_bytes, file_count, file_bytes
        )
