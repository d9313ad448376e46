"""The chat rules, without I/O: validation, ids, idempotency, paging, receipts, membership.

Theory of operation (in the manner of h11): the server hands this module what it read from the
store plus the current time, and gets back a decision -- a value to store, a cursor to query
with, or a :class:`~chatdesign.chat.errors.ChatError` to answer. Nothing here reads a clock,
draws a random number, opens a file or a socket; this module imports neither ``sqlite3`` nor
``asyncio`` nor ``websockets`` (a test checks it). So the same rules serve the in-process
:class:`~chatdesign.chat.server.ChatServer`, a network server and a notebook.

Times are seconds (floats, as a ``clock()`` returns them); message ids carry milliseconds.

Taught in ``notebooks/02_chat_api.ipynb`` and ``notebooks/03_consistency.ipynb``.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import pandas as pd

from chatdesign.chat.errors import Forbidden, IdempotencyConflict, InvalidRequest
from chatdesign.checks import check_number, check_whole

MAX_CONTENT_CHARS: Final = 100_000
"""Longest message text, in characters (code points)."""
DEFAULT_MAX_GROUP_SIZE: Final = 100
"""Xu's limit on group members (System Design Interview, vol. 1, chat chapter)."""
MAX_PAGE_SIZE: Final = 100
"""Most conversations or messages one call returns."""
MAX_ATTACHMENTS_PER_MESSAGE: Final = 10
MAX_TITLE_CHARS: Final = 200
MAX_CLIENT_MESSAGE_ID_CHARS: Final = 128
PREVIEW_CHARS: Final = 80
"""Length of the last-message preview in a conversation list, in characters."""

MAX_API_INT: Final = 2**53 - 1
"""The largest whole number any argument of the API may be (a page number, a seq, a position):
the largest integer a JSON number holds exactly in every client (JavaScript's
``Number.MAX_SAFE_INTEGER``), and far below SQLite's 64-bit limit, so an extreme value is an
:class:`InvalidRequest`, never an overflow deep in the store."""
MAX_MEMBER_LIST_ITEMS_PER_SLOT: Final = 10
"""``create_group`` refuses a member list longer than this many entries per group slot before
looking at its entries (repeats are allowed, a flood of them is not)."""

_USER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""Matched with ``fullmatch`` (a ``$`` would accept a trailing newline)."""
_CONVERSATION_ID = re.compile(r"[dg]:[0-9]{1,20}")
"""ASCII digits only (``\\d`` would take any Unicode digit), used with ``fullmatch``."""
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Unicode category Cc except newline, carriage return and tab."""

ConversationKind = Literal["direct", "group"]

# --- snowflake ids ----------------------------------------------------------------------------

SNOWFLAKE_EPOCH_MS: Final = 1_704_067_200_000
"""2024-01-01T00:00:00Z in Unix milliseconds: time zero of the id's timestamp field."""
TIMESTAMP_BITS: Final = 41
WORKER_BITS: Final = 10
SEQUENCE_BITS: Final = 12
MAX_WORKER_ID: Final = (1 << WORKER_BITS) - 1
MAX_SEQUENCE: Final = (1 << SEQUENCE_BITS) - 1


@dataclass(frozen=True)
class SnowflakeParts:
    """The three fields packed into a message id: when (Unix ms), which worker, which of that ms."""

    unix_ms: int
    worker_id: int
    sequence: int


def pack_snowflake(unix_ms: int, worker_id: int, sequence: int) -> int:
    """Pack (Unix milliseconds, worker, per-millisecond sequence) into a 63-bit sortable id.

    Layout, high to low: 41 bits of milliseconds since :data:`SNOWFLAKE_EPOCH_MS` (69 years),
    10 bits of worker id, 12 bits of sequence (4,096 ids per millisecond per worker), as in
    Twitter's and Discord's snowflakes. Ids compare in time order across workers to the ms.
    """
    offset = unix_ms - SNOWFLAKE_EPOCH_MS
    if not 0 <= offset < (1 << TIMESTAMP_BITS):
        raise ValueError(f"unix_ms {unix_ms} is outside the snowflake's 69-year range")
    if not 0 <= worker_id <= MAX_WORKER_ID:
        raise ValueError(f"worker_id must be in 0..{MAX_WORKER_ID}, got {worker_id}")
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be in 0..{MAX_SEQUENCE}, got {sequence}")
    return (offset << (WORKER_BITS + SEQUENCE_BITS)) | (worker_id << SEQUENCE_BITS) | sequence


def unpack_snowflake(message_id: int) -> SnowflakeParts:
    """The inverse of :func:`pack_snowflake`."""
    if message_id < 0 or message_id >= (1 << (TIMESTAMP_BITS + WORKER_BITS + SEQUENCE_BITS)):
        raise ValueError(f"{message_id} is not a snowflake id")
    return SnowflakeParts(
        unix_ms=(message_id >> (WORKER_BITS + SEQUENCE_BITS)) + SNOWFLAKE_EPOCH_MS,
        worker_id=(message_id >> SEQUENCE_BITS) & MAX_WORKER_ID,
        sequence=message_id & MAX_SEQUENCE,
    )


class SnowflakeGenerator:
    """Makes strictly increasing snowflake ids for one worker from the times it is given.

    ``next_id(now_s)`` never reads a clock. If time goes backwards (an NTP step) or one
    millisecond's 4,096 ids run out, the generator keeps using (or borrows) the next millisecond
    rather than repeat an id, so ids stay unique and increasing. ``last_id`` (e.g. the largest
    id already stored) makes a restarted server continue after it.
    """

    def __init__(self, worker_id: int = 0, last_id: int | None = None) -> None:
        self.worker_id = check_whole(worker_id, "worker_id", minimum=0, maximum=MAX_WORKER_ID)
        self._last_ms = SNOWFLAKE_EPOCH_MS - 1
        self._sequence = MAX_SEQUENCE
        if last_id is not None:
            parts = unpack_snowflake(last_id)
            self._last_ms = parts.unix_ms
            self._sequence = MAX_SEQUENCE  # the next id moves to a later millisecond

    def __repr__(self) -> str:
        return f"SnowflakeGenerator(worker_id={self.worker_id}, last_ms={self._last_ms})"

    def next_id(self, now_s: float) -> int:
        """The next id for the time ``now_s`` (seconds since the Unix epoch)."""
        now_ms = math.floor(require_time(now_s, "now") * 1000)
        if now_ms > self._last_ms:
            self._last_ms, self._sequence = now_ms, 0
        elif self._sequence < MAX_SEQUENCE:
            self._sequence += 1
        else:
            self._last_ms, self._sequence = self._last_ms + 1, 0
        return pack_snowflake(self._last_ms, self.worker_id, self._sequence)


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One stored message.

    ``seq`` is the message's place in its conversation (1, 2, 3, ... without gaps);
    ``message_id`` is a snowflake, unique and sortable by time across the service;
    ``created_at`` is the server's time in seconds. ``cold`` marks a message read back from the
    archive (cold store).
    """

    message_id: int
    conversation_id: str
    seq: int
    sender_id: str
    content: str
    created_at: float
    client_message_id: str
    attachments: tuple[str, ...] = ()
    cold: bool = False

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"seq starts at 1, got {self.seq}")
        if self.message_id < 0:
            raise ValueError(f"message_id must be non-negative, got {self.message_id}")
        require_time(self.created_at, "created_at")
        if not isinstance(self.attachments, tuple):
            raise ValueError("attachments must be a tuple of attachment ids")

    def __repr__(self) -> str:
        text = self.content if len(self.content) <= 30 else self.content[:29] + "…"
        cold = ", cold" if self.cold else ""
        files = f", attachments={len(self.attachments)}" if self.attachments else ""
        return (
            f"Message({self.conversation_id}#{self.seq} from {self.sender_id}: {text!r}"
            f"{files}{cold})"
        )

    def as_row(self) -> dict[str, object]:
        """The message as a flat dict (one row of :func:`messages_frame`)."""
        return {
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "sender_id": self.sender_id,
            "content": self.content,
            "created_at": self.created_at,
            "message_id": self.message_id,
            "attachments": len(self.attachments),
            "cold": self.cold,
        }


_MESSAGE_COLUMNS: Final = (
    "conversation_id", "seq", "sender_id", "content", "created_at", "message_id", "attachments",
    "cold",
)


def messages_frame(messages: Iterable[Message]) -> pd.DataFrame:
    """A table of messages, one row each, in the order given."""
    return pd.DataFrame([m.as_row() for m in messages], columns=list(_MESSAGE_COLUMNS))


@dataclass(frozen=True)
class Conversation:
    """A conversation's stored header: who made it, when, and how far its sequence has got."""

    conversation_id: str
    kind: ConversationKind
    title: str
    creator_id: str
    created_at: float
    last_seq: int = 0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("direct", "group"):
            raise ValueError(f"kind must be 'direct' or 'group', got {self.kind!r}")
        if self.last_seq < 0:
            raise ValueError(f"last_seq must be >= 0, got {self.last_seq}")


@dataclass(frozen=True)
class ConversationSummary:
    """One line of a conversation list, as it stood at the page's ``last_updated_timestamp``.

    ``updated_at`` is the time of the last message (or of creation) in seconds;
    ``unread_count`` counts messages after the user's seen receipt.
    """

    conversation_id: str
    kind: ConversationKind
    title: str
    updated_at: float
    last_seq: int
    last_sender_id: str | None
    last_message_preview: str | None
    unread_count: int

    def __post_init__(self) -> None:
        if self.unread_count < 0:
            raise ValueError(f"unread_count must be >= 0, got {self.unread_count}")


@dataclass(frozen=True)
class ConversationPage:
    """A page of :meth:`ChatServer.fetch_conversations`, most recent first.

    Pass ``last_updated_timestamp`` back for the next pages to keep the ranking of that moment.
    """

    items: tuple[ConversationSummary, ...]
    page_number: int
    page_size: int
    has_more: bool
    last_updated_timestamp: float

    def __post_init__(self) -> None:
        if len(self.items) > self.page_size:
            raise ValueError("a page cannot hold more items than its page_size")

    def __repr__(self) -> str:
        ids = ", ".join(item.conversation_id for item in self.items)
        return (
            f"ConversationPage(page {self.page_number}, [{ids}], has_more={self.has_more}, "
            f"last_updated_timestamp={self.last_updated_timestamp})"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per conversation on the page."""
        columns = list(ConversationSummary.__dataclass_fields__)
        return pd.DataFrame([[getattr(i, c) for c in columns] for i in self.items], columns=columns)


@dataclass(frozen=True)
class SyncResult:
    """What one device had not yet received, per conversation, each in ``seq`` order."""

    user_id: str
    device_id: str
    messages_by_conversation: dict[str, tuple[Message, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for conversation_id, messages in self.messages_by_conversation.items():
            seqs = [m.seq for m in messages]
            if seqs != sorted(set(seqs)):
                raise ValueError(f"messages of {conversation_id} must be in increasing seq order")

    @property
    def message_count(self) -> int:
        """How many messages the sync delivered in all."""
        return sum(len(m) for m in self.messages_by_conversation.values())

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{cid}: {len(msgs)}" for cid, msgs in sorted(self.messages_by_conversation.items())
        )
        return f"SyncResult({self.user_id}/{self.device_id}, {{{parts}}})"

    def to_frame(self) -> pd.DataFrame:
        """One row per delivered message, conversations in id order."""
        ordered = sorted(self.messages_by_conversation.items())
        return messages_frame(m for _, msgs in ordered for m in msgs)


# --- validation -------------------------------------------------------------------------------

_SHOWN = reprlib.Repr()  # Python 3.11's takes no arguments: set the limits one by one
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 3, 80, 80, 40
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxset = _SHOWN.maxfrozenset = _SHOWN.maxdeque = 6
_SHOWN.maxdict = 4


def shown(value: object) -> str:
    """A value as an error message shows it: ``repr``, but bounded -- a megabyte of text, an
    integer of a thousand digits or a list nested ten thousand deep (whose plain ``repr``
    raises ``RecursionError``) comes out as a short line with ``...``."""
    return _SHOWN.repr(value)



def require_time(value: float, name: str) -> float:
    """A finite, non-negative time in seconds, or ``ValueError``
    (:func:`chatdesign.checks.check_number`)."""
    return check_number(value, name, minimum=0, unit="seconds")


def validate_user_id(user_id: object, name: str = "user_id") -> str:
    """User ids are 1-64 characters of letters, digits, ``_``, ``.`` and ``-``."""
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise InvalidRequest(
            f"{name} must be 1-64 letters, digits, '_', '.' or '-', got {shown(user_id)}"
        )
    return user_id


def validate_text(value: object, name: str, max_chars: int, allow_empty: bool = False) -> str:
    """Text that is a ``str``, valid Unicode (no lone surrogates), free of control characters
    other than newline, carriage return and tab, and at most ``max_chars`` characters long."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text (str), got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > max_chars:
        raise InvalidRequest(f"{name} is {len(value):,} characters; the limit is {max_chars:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} is not valid text: it contains a lone surrogate") from None
    control = _CONTROL_CHARACTER.search(value)
    if control is not None:
        raise InvalidRequest(f"{name} contains the control character {control.group()!r}")
    return value


def validate_display_name(display_name: object, user_id: str) -> str:
    """A display name (1-100 characters); ``None`` means the user id."""
    if display_name is None:
        return user_id
    return validate_text(display_name, "display_name", 100)


def validate_client_message_id(client_message_id: object) -> str:
    """The sender's idempotency key: 1-128 characters of text."""
    return validate_text(client_message_id, "client_message_id", MAX_CLIENT_MESSAGE_ID_CHARS)


def validate_content(content: object, attachments: Sequence[str]) -> str:
    """Message text: valid text of at most :data:`MAX_CONTENT_CHARS` characters; it may be
    empty only when the message carries attachments (a photo without a caption)."""
    text = validate_text(content, "content", MAX_CONTENT_CHARS, allow_empty=True)
    if not text.strip() and not attachments:
        raise InvalidRequest("content must not be empty (or whitespace) without attachments")
    return text


def validate_attachment_ids(attachments: object) -> tuple[str, ...]:
    """Attachment ids (sha256 hex digests), at most :data:`MAX_ATTACHMENTS_PER_MESSAGE`,
    without repeats; order is kept."""
    if isinstance(attachments, str) or not isinstance(attachments, Sequence):
        raise InvalidRequest("attachments must be a sequence of attachment ids")
    ids = tuple(attachments)
    if len(ids) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise InvalidRequest(
            f"a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments, got {len(ids)}"
        )
    for attachment_id in ids:
        validate_attachment_id(attachment_id)
    if len(set(ids)) != len(ids):
        raise InvalidRequest("the same attachment is listed twice")
    return ids


def validate_attachment_id(attachment_id: object) -> str:
    """An attachment id: the 64 lower-case hex digits of a sha256."""
    if not isinstance(attachment_id, str) or not re.fullmatch(r"[0-9a-f]{64}", attachment_id):
        raise InvalidRequest(f"{shown(attachment_id)} is not an attachment id (sha256 hex)")
    return attachment_id


def validate_title(title: object) -> str:
    """A group title: 1-200 characters of text."""
    text = validate_text(title, "title", MAX_TITLE_CHARS)
    if not text.strip():
        raise InvalidRequest("title must not be blank")
    return text


def validate_int(value: object, name: str, low: int, high: int | None = None) -> int:
    """An ``int`` in ``low..high`` (inclusive; no ``high``: :data:`MAX_API_INT`), or
    :class:`InvalidRequest` saying which.

    The whole-number rule is :func:`chatdesign.checks.check_whole`'s; this wrapper stays because
    the chat API raises :class:`InvalidRequest` (not a ``ValueError``) and words a range the way
    its clients and protocol docs do, ``1..100`` or ``>= 0``.
    """
    if not isinstance(value, numbers.Number):  # check_whole would repr it unbounded
        raise InvalidRequest(f"{name} must be a whole number, got {shown(value)}")
    try:
        number = check_whole(value, name, minimum=None)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    if number < low or number > (MAX_API_INT if high is None else high):
        if high is not None:
            bound = f"{low}..{high}"
        elif number < low:
            bound = f">= {low}"
        else:
            bound = f"at most {MAX_API_INT} (2**53 - 1, the largest whole number JSON carries exactly)"
        raise InvalidRequest(f"{name} must be {bound}, got {number}")
    return number


# --- conversations ----------------------------------------------------------------------------


def direct_pair(user_a: str, user_b: str) -> tuple[str, str]:
    """The key of the 1:1 conversation between two users, whichever of them writes first."""
    if user_a == user_b:
        raise InvalidRequest(f"{user_a} cannot send a direct message to themselves")
    return (user_a, user_b) if user_a < user_b else (user_b, user_a)


def conversation_id_for(kind: ConversationKind, unique_number: int) -> str:
    """Conversation ids are ``d:<n>`` (direct) or ``g:<n>`` (group). The colon cannot occur in
    a user id, so a ``recipient_id`` is never ambiguous."""
    return f"{'d' if kind == 'direct' else 'g'}:{unique_number}"


def is_conversation_id(recipient_id: str) -> bool:
    """Whether ``recipient_id`` names a conversation rather than a user."""
    return isinstance(recipient_id, str) and _CONVERSATION_ID.fullmatch(recipient_id) is not None


def group_members(creator_id: str, member_ids: object, max_group_size: int) -> tuple[str, ...]:
    """The members of a new group: the creator first, then ``member_ids`` in the order given
    (repeats dropped). Raises :class:`InvalidRequest` above ``max_group_size``, in time linear
    in the list, and at once for a list longer than
    :data:`MAX_MEMBER_LIST_ITEMS_PER_SLOT` x ``max_group_size``."""
    if isinstance(member_ids, str | bytes) or not isinstance(member_ids, Sequence):
        raise InvalidRequest("member_ids must be a list of user ids")
    longest = MAX_MEMBER_LIST_ITEMS_PER_SLOT * max_group_size
    if len(member_ids) > longest:
        raise InvalidRequest(
            f"a group holds at most {max_group_size} members (creator included); "
            f"a list of {len(member_ids):,} ids is refused unread (the limit is {longest:,} entries)"
        )
    members = {creator_id: None}  # a dict keeps the order and finds repeats in O(1)
    for member_id in member_ids:
        members[validate_user_id(member_id, "member id")] = None
    if len(members) > max_group_size:
        raise InvalidRequest(
            f"a group holds at most {max_group_size} members (creator included); "
            f"this one would have {len(members)}"
        )
    return tuple(members)


def check_can_add_member(
    conversation: Conversation, actor_is_member: bool, already_member: bool,
    member_count: int, max_group_size: int,
) -> None:
    """Membership rule for adding: only groups, only by a current member, only below the limit."""
    if conversation.kind != "group":
        raise InvalidRequest("members can be added to groups only, not to a 1:1 conversation")
    if not actor_is_member:
        raise Forbidden(f"only members of {conversation.conversation_id} can add members")
    if already_member:
        raise InvalidRequest(f"already a member of {conversation.conversation_id}")
    if member_count >= max_group_size:
        raise InvalidRequest(
            f"{conversation.conversation_id} is full: a group holds at most {max_group_size} members"
        )


def check_can_remove_member(
    conversation: Conversation, actor_id: str, user_id: str, user_is_member: bool
) -> None:
    """Membership rule for removing: a member may leave; the group's creator may remove anyone."""
    if conversation.kind != "group":
        raise InvalidRequest("members can be removed from groups only, not from a 1:1 conversation")
    if actor_id != user_id and actor_id != conversation.creator_id:
        raise Forbidden(
            f"only the creator of {conversation.conversation_id} ({conversation.creator_id}) "
            "can remove other members"
        )
    if not user_is_member:
        raise InvalidRequest(f"{user_id} is not a member of {conversation.conversation_id}")


# --- sending ----------------------------------------------------------------------------------


def send_fingerprint(recipient_id: str, content: str, attachments: Sequence[str]) -> str:
    """What an idempotent retry must repeat exactly: a sha256 over recipient, text and files."""
    digest = hashlib.sha256()
    for part in (recipient_id, content, *attachments):
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    """What the store remembers about a (sender, client_message_id) key."""

    sender_id: str
    client_message_id: str
    conversation_id: str
    seq: int
    fingerprint: str


def is_retry(record: IdempotencyRecord | None, fingerprint: str) -> bool:
    """Decide a send against the key's record: ``True`` means "a retry: answer with the
    original message", ``False`` means "new: store it". The same key with other content
    raises :class:`IdempotencyConflict`."""
    if record is None:
        return False
    if record.fingerprint != fingerprint:
        raise IdempotencyConflict(
            f"client_message_id {record.client_message_id!r} was already used by "
            f"{record.sender_id} for a different message ({record.conversation_id}#{record.seq}); "
            "use a new id for new content"
        )
    return True


def message_time(now: float, conversation_updated_at: float) -> float:
    """A new message's ``created_at``: the server time, but never before the conversation's
    previous message, so time order and ``seq`` order agree inside a conversation."""
    return max(require_time(now, "now"), conversation_updated_at)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryWindow:
    """A validated ``fetch_messages`` cursor: seqs strictly between ``after_seq`` and
    ``before_seq``; ``newest_first`` for scrolling back, oldest first for catching up."""

    after_seq: int
    before_seq: int | None
    limit: int
    newest_first: bool


def history_window(before_seq: object, after_seq: object, limit: object) -> HistoryWindow:
    """Read ``fetch_messages``' cursor arguments. At most one of ``before_seq`` and
    ``after_seq``; ``limit`` in 1..:data:`MAX_PAGE_SIZE`."""
    checked_limit = validate_int(limit, "limit", 1, MAX_PAGE_SIZE)
    if before_seq is not None and after_seq is not None:
        raise InvalidRequest("give before_seq (scroll back) or after_seq (catch up), not both")
    if after_seq is not None:
        return HistoryWindow(validate_int(after_seq, "after_seq", 0), None, checked_limit, False)
    before = None if before_seq is None else validate_int(before_seq, "before_seq", 1)
    return HistoryWindow(0, before, checked_limit, True)


def page_request(
    page_number: object, page_size: object, last_updated_timestamp: object, now: float
) -> tuple[int, int, float]:
    """Validate ``fetch_conversations``' paging and return (offset, page_size, as_of).

    Without a timestamp the ranking is the one of ``now``; the page reports ``now`` as its
    ``last_updated_timestamp`` so that the next pages can pin it.
    """
    number = validate_int(page_number, "page_number", 0)
    size = validate_int(page_size, "page_size", 1, MAX_PAGE_SIZE)
    if last_updated_timestamp is None:
        as_of = now
    elif not isinstance(last_updated_timestamp, numbers.Number):
        raise InvalidRequest(
            f"last_updated_timestamp must be a number of seconds, got {shown(last_updated_timestamp)}"
        )
    else:
        try:
            as_of = require_time(last_updated_timestamp, "last_updated_timestamp")  # type: ignore[arg-type]
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        if as_of > now:
            raise InvalidRequest(
                f"last_updated_timestamp {as_of} is in the future (server time {now})"
            )
    return number * size, size, as_of


def preview(content: str | None) -> str | None:
    """The first :data:`PREVIEW_CHARS` characters of a message, on one line."""
    if content is None:
        return None
    line = " ".join(content.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


# --- receipts and devices ---------------------------------------------------------------------


def advance_receipt(current_seq: int, requested_seq: int, last_seq: int) -> int:
    """A "seen up to and including" receipt: it moves forward only. Asking for a seq beyond
    the conversation's last message is an error; asking for an older one changes nothing."""
    validate_int(requested_seq, "up_to_seq", 1)
    if requested_seq > last_seq:
        raise InvalidRequest(
            f"up_to_seq {requested_seq} is beyond the conversation's last message ({last_seq})"
        )
    return max(current_seq, requested_seq)


def sync_start(client_last_seq: int | None, remembered_seq: int) -> int:
    """Where a device's sync starts in one conversation: what the device says it has, or, when
    it says nothing, what the server remembers delivering to it (0 for a new device)."""
    return remembered_seq if client_last_seq is None else client_last_seq


def advance_delivery(position: int, delivered_seqs: Iterable[int]) -> int:
    """A device's delivered position after it takes ``delivered_seqs`` of one conversation:
    it advances only through consecutive seqs, so a live message that arrives after a gap
    (the device has not synced yet) does not hide the missing ones from the next sync."""
    for seq in sorted(delivered_seqs):
        if seq == position + 1:
            position = seq
    return position


def validate_positions(last_seq_by_conversation: object) -> dict[str, int]:
    """A device's ``{conversation_id: last received seq}``."""
    if not isinstance(last_seq_by_conversation, dict):
        raise InvalidRequest("last_seq_by_conversation must be a dict {conversation_id: seq}")
    positions: dict[str, int] = {}
    for conversation_id, seq in last_seq_by_conversation.items():
        if not isinstance(conversation_id, str) or not is_conversation_id(conversation_id):
            raise InvalidRequest(f"{shown(conversation_id)} is not a conversation id")
        positions[conversation_id] = validate_int(seq, f"last seq of {conversation_id}", 0)
    return positions


def validate_device_id(device_id: object) -> str:
    """Device ids follow the user-id rule (1-64 letters, digits, '_', '.', '-')."""
    return validate_user_id(device_id, "device_id")
