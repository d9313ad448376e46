"""Storage behind one interface (:class:`ChatStore`), with SQLite as the default backend.

The server asks the store questions and tells it what to remember; every rule (who may do
what, which seq comes next, which messages a policy removes) is decided in
:mod:`chatdesign.chat.core` and :mod:`chatdesign.chat.retention`. A server call runs inside one
``with store.transaction():`` block, so a call that is refused half-way changes nothing.

:class:`SQLiteStore` uses the standard library's ``sqlite3``:

- ``path=None`` is an in-memory database; a file path is durable (WAL journal, ``synchronous``
  FULL by default: a committed message survives a power cut). ``BEGIN IMMEDIATE`` takes the
  write lock up front, so two processes on one file cannot hand out the same ``seq``.
- Messages sit in a table clustered on ``(conversation_id, seq)`` (``WITHOUT ROWID``), so a
  history page is one range read. There is deliberately no other index on messages: every
  index is written on every send. Time order equals seq order inside a conversation, so "the
  last message at or before T" is a short backwards walk of the same key; retention's scans
  by age and the largest id at start-up read the table once.
- A send writes as few pages as it can, since each page is another WAL frame to fsync at
  commit: the message, its idempotency key and the conversation's row (its seq counter). A
  1:1 conversation keeps both members' receipts in that same row, so the sender's receipt
  costs no page of its own; group receipts are rows of ``receipts``. A file written before
  the 1:1 receipt columns existed is upgraded when opened (its old receipt rows still count).
- Ids and times never go back across a restart: conversation ids come from the same
  snowflake generator as message ids, so a reopened server continues after the largest of
  either (:meth:`SQLiteStore.largest_issued_id`), and after the latest time stored anywhere or
  remembered by the last server at close (``time_floor``). Leaving a group keeps the member's
  receipt and device positions (a re-join resumes from them) and records the membership's
  interval in ``departures``, so a conversation list pinned before the leave still ranks it.
- The cold store (archive) is a second database, attached as ``cold``: the file
  ``<path>.cold`` (or a second in-memory database). Archived messages are packed into
  zlib-compressed buckets of up to :data:`COLD_BUCKET_MESSAGES` consecutive messages of one
  conversation (Discord buckets by channel and time in the same spirit). The only index is one
  row per bucket: ``(conversation_id, first_seq..last_seq, created_from..created_to)``, so the
  archive costs little more than its compressed text. Reading a cold message decompresses its
  bucket. Ranking conversations as of a past time uses bucket boundaries inside the archive:
  a pin older than the archive threshold may rank a conversation by its previous bucket's end.
  In WAL mode SQLite commits each attached file atomically, but not the two together: a crash
  while archiving can leave a message both hot and cold. Reads then return it once (the hot
  copy wins) and the next archive run replaces the stale buckets.

Taught in ``notebooks/04_storage.ipynb``.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol

from chatdesign.chat.attachments import AttachmentInfo
from chatdesign.chat.core import (
    Conversation,
    ConversationKind,
    HistoryWindow,
    IdempotencyRecord,
    Message,
)

COLD_BUCKET_MESSAGES: Final = 256
"""Messages per compressed cold bucket (at most)."""

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class ChatStore(Protocol):
    """What the chat server needs from storage. Methods never enforce rules; they read and
    write what they are told. All writes of one server call happen inside ``transaction()``."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context manager: everything inside commits together or not at all."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...

    # users and conversations
    def add_user(self, user_id: str, display_name: str, created_at: float) -> None: ...
    def has_user(self, user_id: str) -> bool: ...
    def add_conversation(
        self, conversation: Conversation, member_ids: Sequence[str],
        pair: tuple[str, str] | None,
    ) -> None: ...
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def find_direct(self, pair: tuple[str, str]) -> str | None: ...
    def member_ids(self, conversation_id: str) -> tuple[str, ...]: ...
    def is_member(self, conversation_id: str, user_id: str) -> bool: ...
    def add_member(self, conversation_id: str, user_id: str, joined_at: float) -> None: ...
    def remove_member(self, conversation_id: str, user_id: str, left_at: float) -> None: ...
    def conversation_ids_of(self, user_id: str) -> tuple[str, ...]: ...
    def all_conversations(self) -> list[Conversation]: ...

    # messages
    def claim_seq(self, conversation_id: str, now: float) -> tuple[int, float]: ...
    def insert_message(self, message: Message, fingerprint: str) -> None: ...
    def find_idempotency(
        self, sender_id: str, client_message_id: str
    ) -> IdempotencyRecord | None: ...
    def get_message(self, conversation_id: str, seq: int) -> Message | None: ...
    def messages(self, conversation_id: str, window: HistoryWindow) -> list[Message]: ...
    def last_message_id(self) -> int | None: ...
    def largest_issued_id(self) -> int | None: ...
    def remember_time(self, latest_s: float) -> None: ...
    def expire_idempotency_keys(self, created_before: float) -> int: ...
    def latest_activity_time(self) -> float | None: ...
    def conversations_as_of(
        self, user_id: str, as_of: float, offset: int, limit: int
    ) -> list[tuple[str, ConversationKind, str, int, float]]: ...

    # receipts and devices
    def get_seen(self, conversation_id: str, user_id: str) -> int: ...
    def set_seen(self, conversation_id: str, user_id: str, seq: int) -> None: ...
    def seen_by(self, conversation_id: str, seq: int) -> tuple[str, ...]: ...
    def add_device(self, user_id: str, device_id: str) -> None: ...
    def delivered_positions(self, user_id: str, device_id: str) -> dict[str, int]: ...
    def set_delivered(self, user_id: str, device_id: str, conversation_id: str, seq: int) -> None: ...
    def device_positions(self, conversation_id: str) -> dict[str, list[int]]: ...

    # attachments
    def add_attachment(self, info: AttachmentInfo, uploader_id: str, created_at: float) -> None: ...
    def get_attachment(self, attachment_id: str) -> AttachmentInfo | None: ...
    def is_uploader(self, attachment_id: str, user_id: str) -> bool: ...
    def can_read_attachment(self, attachment_id: str, user_id: str) -> bool: ...

    # retention and sizes
    def last_seq_before(self, created_before: float) -> dict[str, int]: ...
    def delete_through(self, conversation_id: str, seq: int) -> int: ...
    def archive_through(self, conversation_id: str, seq: int) -> int: ...
    def message_counts(self) -> tuple[int, int]: ...
    def compact(self) -> None: ...
    def size_bytes(self) -> tuple[int, int]: ...


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL,
    creator_id TEXT NOT NULL, created_at REAL NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
    deleted_through_seq INTEGER NOT NULL DEFAULT 0, deleted_through_at REAL,
    creator_seen_seq INTEGER NOT NULL DEFAULT 0, other_seen_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS direct_pairs (
    user_low TEXT NOT NULL, user_high TEXT NOT NULL, conversation_id TEXT NOT NULL,
    PRIMARY KEY (user_low, user_high)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, joined_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, message_id INTEGER NOT NULL,
    sender_id TEXT NOT NULL, content TEXT NOT NULL, created_at REAL NOT NULL,
    client_message_id TEXT NOT NULL, attachments TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_keys (
    sender_id TEXT NOT NULL, client_message_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL, fingerprint BLOB NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (sender_id, client_message_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS receipts (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, seen_seq INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_positions (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL, PRIMARY KEY (user_id, device_id, conversation_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachments (
    attachment_id TEXT PRIMARY KEY, size_bytes INTEGER NOT NULL, content_type TEXT NOT NULL,
    filename TEXT NOT NULL, created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachment_uploads (
    attachment_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (attachment_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_attachments (
    attachment_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (attachment_id, conversation_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS id_floor (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), max_message_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS time_floor (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), latest_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS departures (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, joined_at REAL NOT NULL,
    left_at REAL NOT NULL, PRIMARY KEY (conversation_id, user_id, left_at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS departures_by_user ON departures (user_id);
CREATE TABLE IF NOT EXISTS cold.cold_buckets (
    bucket_id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    created_from REAL NOT NULL, created_to REAL NOT NULL, payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS cold.cold_buckets_by_seq ON cold_buckets (conversation_id, last_seq);
"""

_MESSAGE_COLUMNS: Final = (
    "message_id, conversation_id, seq, sender_id, content, created_at, client_message_id, "
    "attachments"
)


_DIRECT_RECEIPT_COLUMNS: Final = ("creator_seen_seq", "other_seen_seq")
"""The two receipts of a 1:1 conversation live in its ``conversations`` row (its creator's and
the other member's), so a 1:1 send, which updates that row anyway, writes no receipts page.
Group receipts are rows of ``receipts``. Files from before these columns may still hold 1:1
receipts in ``receipts``: receipts only move forward, so reads take the larger of the two."""

_INSERT_MESSAGE: Final = (
    f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Built once: ``sqlite3`` caches prepared statements by their text, and the send path runs
this on every message."""


def _message(row: tuple[object, ...], cold: bool = False) -> Message:
    message_id, conversation_id, seq, sender_id, content, created_at, client_id, files = row
    return Message(
        message_id=int(message_id),  # type: ignore[call-overload]
        conversation_id=str(conversation_id),
        seq=int(seq),  # type: ignore[call-overload]
        sender_id=str(sender_id),
        content=str(content),
        created_at=float(created_at),  # type: ignore[arg-type]
        client_message_id=str(client_id),
        attachments=tuple(str(files).split(",")) if files else (),
        cold=cold,
    )


def _pack_bucket(rows: Sequence[tuple[object, ...]]) -> bytes:
    """Rows as selected with ``_MESSAGE_COLUMNS``, minus the conversation id, zlib-compressed."""
    items = [[r[0], *r[2:]] for r in rows]
    return zlib.compress(json.dumps(items, ensure_ascii=False).encode("utf-8"), 9)


def _unpack_bucket(conversation_id: str, payload: object) -> list[Message]:
    if isinstance(payload, memoryview):
        payload = payload.tobytes()
    assert isinstance(payload, bytes)
    return [
        _message((item[0], conversation_id, *item[1:]), cold=True)
        for item in json.loads(zlib.decompress(payload))
    ]


def _row(message: Message) -> tuple[object, ...]:
    m = message
    return (m.message_id, m.conversation_id, m.seq, m.sender_id, m.content, m.created_at,
            m.client_message_id, ",".join(m.attachments))


def merge_hot_and_cold(
    hot: list[Message], cold_payloads: Iterable[object], conversation_id: str, window: HistoryWindow
) -> list[Message]:
    """A history page from the hot rows already read and the cold buckets overlapping the window
    (in the window's order): up to ``window.limit`` messages, the hot copy winning a duplicate
    left by an interrupted archive. Shared by every store's :meth:`ChatStore.messages`."""
    upper = window.before_seq if window.before_seq is not None else 2**62
    taken = {m.seq for m in hot}
    cold: list[Message] = []
    for payload in cold_payloads:
        inside = [
            m for m in _unpack_bucket(conversation_id, payload)
            if window.after_seq < m.seq < upper and m.seq not in taken
        ]
        taken.update(m.seq for m in inside)
        cold += reversed(inside) if window.newest_first else inside
        if len(cold) >= window.limit:
            break
    found = hot
    if cold:
        found = hot + cold
        found.sort(key=lambda m: m.seq, reverse=window.newest_first)
    return found[: window.limit]


def add_straddling_cuts(
    cuts: dict[str, int], straddling: Iterable[tuple[object, object]], created_before: float
) -> None:
    """Raise ``cuts`` (conversation -> last seq before the time) with the messages older than
    ``created_before`` inside buckets that straddle it ((conversation_id, payload) pairs)."""
    for cid, payload in straddling:
        older = [m.seq for m in _unpack_bucket(str(cid), payload) if m.created_at < created_before]
        if older:
            cuts[str(cid)] = max(cuts.get(str(cid), 0), max(older))


@dataclass(frozen=True)
class TrimmedBucket:
    """A cold bucket after deleting its messages up to a seq: its new first seq, first time and
    payload, and how many messages went."""

    first_seq: int
    created_from: float
    payload: bytes
    removed: int


def trim_bucket(conversation_id: str, payload: object, through_seq: int) -> TrimmedBucket:
    """The bucket that straddles a retention cut, without its messages up to ``through_seq``."""
    messages = _unpack_bucket(conversation_id, payload)
    kept = [m for m in messages if m.seq > through_seq]
    return TrimmedBucket(kept[0].seq, kept[0].created_at, _pack_bucket([_row(m) for m in kept]),
                         len(messages) - len(kept))


class _Transaction:
    """The context manager behind :meth:`SQLiteStore.transaction` (a plain class: it runs on
    every server call, and a generator-based one costs a few microseconds more per call)."""

    __slots__ = ("_connection", "_depth")
    BEGIN = "BEGIN IMMEDIATE"
    """SQLite: take the write lock up front (another store's dialect may override it)."""

    def __init__(self, connection: sqlite3.Connection | Any) -> None:
        self._connection = connection
        self._depth = 0

    def __enter__(self) -> None:
        if self._depth == 0:
            self._connection.execute(self.BEGIN)
        else:  # an inner block is a savepoint: its failure undoes only its own writes
            self._connection.execute(f"SAVEPOINT inner{self._depth}")
        self._depth += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth:
            if kind is not None:
                self._connection.execute(f"ROLLBACK TO inner{self._depth}")
            self._connection.execute(f"RELEASE inner{self._depth}")
            return
        self._connection.execute("COMMIT" if kind is None else "ROLLBACK")


class SQLiteStore:
    """:class:`ChatStore` on SQLite. ``path=None``: in memory; otherwise the database file
    (and its cold store ``<path>.cold``), created if missing and reopened if present."""

    def __init__(self, path: str | Path | None = None, synchronous: Synchronous = "FULL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = None if path is None else Path(path)
        self.synchronous = synchronous
        self._connection = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path), isolation_level=None
        )
        cold_path = ":memory:" if self.path is None else f"{self.path}.cold"
        self._connection.execute("ATTACH DATABASE ? AS cold", (cold_path,))
        if self.path is not None:
            for schema in ("main", "cold"):
                self._connection.execute(f"PRAGMA {schema}.journal_mode=WAL")
        for schema in ("main", "cold"):
            self._connection.execute(f"PRAGMA {schema}.synchronous={synchronous}")
        self._transaction = _Transaction(self._connection)
        self._connection.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}")  # left open for:
        try:
            self._upgrade()
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def _upgrade(self) -> None:
        """Bring a database file written by an earlier version up to the current schema (in
        the schema's transaction, so two processes opening one old file cannot both do it)."""
        columns = {str(r[1]) for r in self._connection.execute(
            "PRAGMA main.table_info(conversations)")}
        for name in _DIRECT_RECEIPT_COLUMNS:
            if name not in columns:
                self._connection.execute(
                    f"ALTER TABLE conversations ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0"
                )

    def __repr__(self) -> str:
        where = "memory" if self.path is None else self.path.name
        return f"SQLiteStore({where}, synchronous={self.synchronous})"

    @property
    def journal_mode(self) -> str:
        """The main database's journal mode (``wal`` for files, ``memory`` in memory)."""
        return str(self._connection.execute("PRAGMA main.journal_mode").fetchone()[0])

    def transaction(self) -> AbstractContextManager[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception. Re-entrant: an
        inner block joins the outer transaction as a savepoint, so an inner block that fails
        undoes only its own writes (what :meth:`ChatServer.send_batch` relies on)."""
        return self._transaction

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._connection.close()

    def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self._connection.execute(sql, params).fetchone()
        return row

    # --- users and conversations --------------------------------------------------------------

    def add_user(self, user_id: str, display_name: str, created_at: float) -> None:
        """Insert a user (the caller checked it is new)."""
        self._connection.execute(
            "INSERT INTO users VALUES (?, ?, ?)", (user_id, display_name, created_at)
        )

    def has_user(self, user_id: str) -> bool:
        """Whether the user is registered."""
        return self._one("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None

    def add_conversation(
        self, conversation: Conversation, member_ids: Sequence[str],
        pair: tuple[str, str] | None,
    ) -> None:
        """Insert a conversation with its first members (joined at its creation time)."""
        c = conversation
        self._connection.execute(
            "INSERT INTO conversations (conversation_id, kind, title, creator_id, created_at, "
            "last_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (c.conversation_id, c.kind, c.title, c.creator_id, c.created_at, c.last_seq,
             c.updated_at),
        )
        self._connection.executemany(
            "INSERT INTO members VALUES (?, ?, ?)",
            [(c.conversation_id, member_id, c.created_at) for member_id in member_ids],
        )
        if pair is not None:
            self._connection.execute(
                "INSERT INTO direct_pairs VALUES (?, ?, ?)", (*pair, c.conversation_id)
            )

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation's header, or ``None``."""
        row = self._one(
            "SELECT conversation_id, kind, title, creator_id, created_at, last_seq, updated_at "
            "FROM conversations WHERE conversation_id = ?",
            (conversation_id,),
        )
        if row is None:
            return None
        cid, kind, title, creator, created, last_seq, updated = row
        return Conversation(
            str(cid), "group" if kind == "group" else "direct", str(title), str(creator),
            float(created), int(last_seq), float(updated),  # type: ignore[arg-type,call-overload]
        )

    def find_direct(self, pair: tuple[str, str]) -> str | None:
        """The 1:1 conversation of a (low, high) user pair, or ``None``."""
        row = self._one(
            "SELECT conversation_id FROM direct_pairs WHERE user_low = ? AND user_high = ?", pair
        )
        return None if row is None else str(row[0])

    def member_ids(self, conversation_id: str) -> tuple[str, ...]:
        """Current members, in the order they joined (then by id)."""
        rows = self._connection.execute(
            "SELECT user_id FROM members WHERE conversation_id = ? ORDER BY joined_at, user_id",
            (conversation_id,),
        ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def is_member(self, conversation_id: str, user_id: str) -> bool:
        """Whether the user is a current member."""
        row = self._one(
            "SELECT 1 FROM members WHERE conversation_id = ? AND user_id = ?",
            (conversation_id, user_id),
        )
        return row is not None

    def add_member(self, conversation_id: str, user_id: str, joined_at: float) -> None:
        """Add a member."""
        self._connection.execute(
            "INSERT INTO members VALUES (?, ?, ?)", (conversation_id, user_id, joined_at)
        )

    def remove_member(self, conversation_id: str, user_id: str, left_at: float) -> None:
        """Remove a member. Their receipt and their devices' positions stay (a member who
        re-joins neither sees old messages again nor sees the receipt move back), and the
        membership's interval is kept in ``departures`` so that a conversation list pinned
        before ``left_at`` still ranks it (paging neither skips nor repeats)."""
        params = (conversation_id, user_id)
        self._connection.execute(
            "INSERT OR IGNORE INTO departures SELECT conversation_id, user_id, joined_at, ? "
            "FROM members WHERE conversation_id = ? AND user_id = ?",
            (left_at, *params),
        )
        self._connection.execute(
            "DELETE FROM members WHERE conversation_id = ? AND user_id = ?", params
        )

    def conversation_ids_of(self, user_id: str) -> tuple[str, ...]:
        """The conversations the user is a member of, by id."""
        rows = self._connection.execute(
            "SELECT conversation_id FROM members WHERE user_id = ? ORDER BY conversation_id",
            (user_id,),
        ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def all_conversations(self) -> list[Conversation]:
        """Every conversation, by id."""
        rows = self._connection.execute(
            "SELECT conversation_id FROM conversations ORDER BY conversation_id"
        ).fetchall()
        found = [self.get_conversation(str(r[0])) for r in rows]
        return [c for c in found if c is not None]

    # --- messages -----------------------------------------------------------------------------

    def claim_seq(self, conversation_id: str, now: float) -> tuple[int, float]:
        """Advance the conversation's sequence by one; returns (new seq, message time), the
        time being ``max(now, previous message time)`` so time and seq order agree."""
        row: tuple[int, float] | None = self._connection.execute(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = max(updated_at, ?) "
            "WHERE conversation_id = ? RETURNING last_seq, updated_at",
            (now, conversation_id),
        ).fetchone()
        if row is None:
            raise KeyError(conversation_id)
        return int(row[0]), float(row[1])

    def insert_message(self, message: Message, fingerprint: str) -> None:
        """Store a message, its idempotency key and its attachment references."""
        m = message
        execute = self._connection.execute
        execute(_INSERT_MESSAGE, _row(m))
        execute(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?)",
            (m.sender_id, m.client_message_id, m.conversation_id, m.seq,
             bytes.fromhex(fingerprint), m.created_at),
        )
        if m.attachments:
            self._connection.executemany(
                "INSERT INTO message_attachments VALUES (?, ?, ?)",
                [(a, m.conversation_id, m.seq) for a in m.attachments],
            )

    def import_messages(self, messages: Sequence[Message], fingerprints: Sequence[str]) -> None:
        """Bulk path for loading history (benchmarks, generated workloads): insert many
        messages of existing conversations in one statement per table and move each
        conversation's ``last_seq``/``updated_at`` to its newest message. The caller supplies
        gap-free seqs continuing each conversation, as :meth:`claim_seq` would have."""
        if len(messages) != len(fingerprints):
            raise ValueError("one fingerprint per message")
        self._connection.executemany(_INSERT_MESSAGE, [_row(m) for m in messages],
        )
        self._connection.executemany(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?)",
            [(m.sender_id, m.client_message_id, m.conversation_id, m.seq, bytes.fromhex(f),
              m.created_at) for m, f in zip(messages, fingerprints, strict=True)],
        )
        newest: dict[str, Message] = {}
        for m in messages:
            if m.conversation_id not in newest or m.seq > newest[m.conversation_id].seq:
                newest[m.conversation_id] = m
        self._connection.executemany(
            "UPDATE conversations SET last_seq = max(last_seq, ?), "
            "updated_at = max(updated_at, ?) WHERE conversation_id = ?",
            [(m.seq, m.created_at, cid) for cid, m in newest.items()],
        )

    def find_idempotency(self, sender_id: str, client_message_id: str) -> IdempotencyRecord | None:
        """The record of a (sender, client_message_id) key, or ``None``."""
        row = self._one(
            "SELECT conversation_id, seq, fingerprint FROM idempotency_keys "
            "WHERE sender_id = ? AND client_message_id = ?",
            (sender_id, client_message_id),
        )
        if row is None:
            return None
        return IdempotencyRecord(
            sender_id, client_message_id, str(row[0]), int(row[1]), bytes(row[2]).hex()  # type: ignore[call-overload]
        )

    def get_message(self, conversation_id: str, seq: int) -> Message | None:
        """One message, hot or cold, or ``None`` if it is not (or no longer) stored."""
        row = self._one(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq = ?",
            (conversation_id, seq),
        )
        if row is not None:
            return _message(row)
        bucket = self._one(
            "SELECT payload FROM cold.cold_buckets WHERE conversation_id = ? AND first_seq <= ? "
            "AND last_seq >= ?",
            (conversation_id, seq, seq),
        )
        if bucket is None:
            return None
        return next(m for m in _unpack_bucket(conversation_id, bucket[0]) if m.seq == seq)

    def messages(self, conversation_id: str, window: HistoryWindow) -> list[Message]:
        """Up to ``window.limit`` messages strictly inside the window, hot and cold merged,
        newest first or oldest first as the window says."""
        order = "DESC" if window.newest_first else "ASC"
        upper = window.before_seq if window.before_seq is not None else 2**62
        params = (conversation_id, window.after_seq, upper, window.limit)
        rows = self._connection.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? "
            f"AND seq < ? ORDER BY seq {order} LIMIT ?",
            params,
        ).fetchall()
        # The cold store holds each conversation's oldest messages: look there too (one probe
        # of the bucket index, usually empty) and merge; a hot copy wins if an interrupted
        # archive left both.
        buckets = self._connection.execute(
            "SELECT payload FROM cold.cold_buckets WHERE conversation_id = ? AND last_seq > ? "
            f"AND first_seq < ? ORDER BY first_seq {order}",
            params[:3],
        )
        return merge_hot_and_cold([_message(r) for r in rows], (p for (p,) in buckets), conversation_id, window)

    def last_message_id(self) -> int | None:
        """The largest message id ever stored here (hot, or remembered when retention removed
        it), so a restarted id generator continues after it."""
        row = self._one(
            "SELECT max(coalesce((SELECT max(message_id) FROM messages), -1), "
            "coalesce((SELECT max_message_id FROM id_floor), -1))"
        )
        assert row is not None
        largest = int(row[0])  # type: ignore[call-overload]
        return None if largest < 0 else largest

    def latest_activity_time(self) -> float | None:
        """The newest time stored anywhere (a message, a conversation's creation, a user, a
        membership, a departure, an upload, or the time a closing server remembered), in
        seconds: a reopened server never writes a time before it, whatever its clock says."""
        row = self._one(
            "SELECT max(coalesce((SELECT max(updated_at) FROM conversations), 0), "
            "coalesce((SELECT max(joined_at) FROM members), 0), "
            "coalesce((SELECT max(left_at) FROM departures), 0), "
            "coalesce((SELECT max(created_at) FROM users), 0), "
            "coalesce((SELECT max(created_at) FROM attachments), 0), "
            "coalesce((SELECT latest_s FROM time_floor), 0))"
        )
        latest = None if row is None else float(row[0])  # type: ignore[arg-type]
        return latest if latest else None

    def remember_time(self, latest_s: float) -> None:
        """Keep the latest time a server used (written at close: it may have handed that time
        out as a page pin without storing anything at it)."""
        self._connection.execute(
            "INSERT INTO time_floor VALUES (1, ?) ON CONFLICT (singleton) DO UPDATE SET "
            "latest_s = max(latest_s, excluded.latest_s)",
            (latest_s,),
        )

    def largest_issued_id(self) -> int | None:
        """The largest snowflake this database holds anywhere: a message id (stored or
        remembered) or the number of a conversation id (``g:<n>``, ``d:<n>``), which come from
        the same generator. A restarted generator continues after it."""
        row = self._one(
            "SELECT max(CAST(substr(conversation_id, 3) AS INTEGER)) FROM conversations "
            "WHERE length(conversation_id) <= 21"
        )
        numbers = [n for n in (self.last_message_id(), None if row is None else row[0])
                   if isinstance(n, int) and 0 <= n < (1 << 63)]
        return max(numbers) if numbers else None

    def _remember_largest_id(self) -> None:
        self._connection.execute(
            "INSERT INTO id_floor VALUES (1, coalesce((SELECT max(message_id) FROM messages), -1)) "
            "ON CONFLICT (singleton) DO UPDATE SET "
            "max_message_id = max(max_message_id, excluded.max_message_id)"
        )

    def conversations_as_of(
        self, user_id: str, as_of: float, offset: int, limit: int
    ) -> list[tuple[str, ConversationKind, str, int, float]]:
        """The user's conversations ranked as they stood at time ``as_of``: rows of
        (conversation_id, kind, title, last seq at as_of, updated_at at as_of), most recent
        first (ties by id, descending), from ``offset``, at most ``limit`` rows.

        A conversation counts if it existed and the user was a member at ``as_of`` (a member
        now, or one who left after ``as_of``). Its time
        at ``as_of`` is its newest message not after ``as_of`` (hot, cold, or the last one a
        retention policy deleted), else its creation time.
        """
        rows = self._connection.execute(
            """
            WITH mine AS (
                SELECT c.conversation_id, c.kind, c.title, c.created_at, c.last_seq,
                       c.updated_at, c.deleted_through_seq, c.deleted_through_at
                FROM (SELECT conversation_id FROM members
                      WHERE user_id = :user AND joined_at <= :t
                      UNION SELECT conversation_id FROM departures
                      WHERE user_id = :user AND joined_at <= :t AND left_at > :t) m
                JOIN conversations c ON c.conversation_id = m.conversation_id
                WHERE c.created_at <= :t
            ), at_t AS (
                SELECT conversation_id, kind, title, created_at, updated_at, last_seq,
                       deleted_through_seq, deleted_through_at,
                       CASE WHEN updated_at <= :t THEN last_seq ELSE coalesce(
                           (SELECT x.seq FROM messages x
                            WHERE x.conversation_id = mine.conversation_id
                              AND x.created_at <= :t ORDER BY x.seq DESC LIMIT 1),
                           (SELECT max(y.last_seq) FROM cold.cold_buckets y
                            WHERE y.conversation_id = mine.conversation_id
                              AND y.created_to <= :t),
                           CASE WHEN deleted_through_at <= :t THEN deleted_through_seq END,
                           0) END AS seq_t
                FROM mine
            )
            SELECT conversation_id, kind, title, seq_t,
                   CASE WHEN seq_t = last_seq AND updated_at <= :t THEN updated_at
                        WHEN seq_t = 0 THEN created_at
                        ELSE coalesce(
                           (SELECT x.created_at FROM messages x
                            WHERE x.conversation_id = at_t.conversation_id AND x.seq = seq_t),
                           (SELECT y.created_to FROM cold.cold_buckets y
                            WHERE y.conversation_id = at_t.conversation_id
                              AND y.last_seq = seq_t),
                           CASE WHEN seq_t = deleted_through_seq THEN deleted_through_at END,
                           created_at) END AS updated_t
            FROM at_t
            ORDER BY updated_t DESC, conversation_id DESC
            LIMIT :limit OFFSET :offset
            """,
            {"user": user_id, "t": as_of, "limit": limit, "offset": offset},
        ).fetchall()
        return [
            (str(cid), "group" if kind == "group" else "direct", str(title), int(seq), float(at))
            for cid, kind, title, seq, at in rows
        ]

    # --- receipts and devices -----------------------------------------------------------------

    def get_seen(self, conversation_id: str, user_id: str) -> int:
        """The user's "seen up to" seq in the conversation (0: nothing seen)."""
        row: tuple[int] = self._connection.execute(
            "SELECT max(coalesce((SELECT seen_seq FROM receipts WHERE conversation_id = :c "
            "AND user_id = :u), 0), coalesce((SELECT CASE WHEN creator_id = :u "
            "THEN creator_seen_seq ELSE other_seen_seq END FROM conversations "
            "WHERE conversation_id = :c AND kind = 'direct' AND EXISTS (SELECT 1 FROM members "
            "WHERE conversation_id = :c AND user_id = :u)), 0))",
            {"c": conversation_id, "u": user_id},
        ).fetchone()
        return int(row[0])

    def set_seen(self, conversation_id: str, user_id: str, seq: int) -> None:
        """Store the receipt (the caller made sure it only moves forward): a member's of a 1:1
        in the conversation's row, any other in ``receipts``."""
        params = (seq, conversation_id, user_id)
        if not self._connection.execute(
            "UPDATE conversations SET "
            "creator_seen_seq = CASE WHEN creator_id = ?3 THEN ?1 ELSE creator_seen_seq END, "
            "other_seen_seq = CASE WHEN creator_id = ?3 THEN other_seen_seq ELSE ?1 END "
            "WHERE conversation_id = ?2 AND kind = 'direct' AND EXISTS (SELECT 1 FROM members "
            "WHERE conversation_id = ?2 AND user_id = ?3)",
            params,
        ).rowcount:
            self._connection.execute(
                "INSERT INTO receipts VALUES (?2, ?3, ?1) ON CONFLICT (conversation_id, user_id) "
                "DO UPDATE SET seen_seq = excluded.seen_seq",
                params,
            )

    def seen_by(self, conversation_id: str, seq: int) -> tuple[str, ...]:
        """Current members whose receipt covers ``seq``, by user id."""
        rows = self._connection.execute(
            "SELECT m.user_id FROM members m JOIN conversations c ON c.conversation_id = "
            "m.conversation_id LEFT JOIN receipts r ON r.conversation_id = m.conversation_id "
            "AND r.user_id = m.user_id WHERE m.conversation_id = ? AND max(coalesce("
            "r.seen_seq, 0), CASE WHEN c.kind <> 'direct' THEN 0 WHEN c.creator_id = m.user_id "
            "THEN c.creator_seen_seq ELSE c.other_seen_seq END) >= ? ORDER BY m.user_id",
            (conversation_id, seq),
        ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def add_device(self, user_id: str, device_id: str) -> None:
        """Remember a device (no-op if known)."""
        self._connection.execute(
            "INSERT OR IGNORE INTO devices VALUES (?, ?)", (user_id, device_id)
        )

    def delivered_positions(self, user_id: str, device_id: str) -> dict[str, int]:
        """``{conversation_id: last seq delivered to this device}``."""
        rows = self._connection.execute(
            "SELECT conversation_id, delivered_seq FROM device_positions "
            "WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchall()
        return {str(cid): int(seq) for cid, seq in rows}

    def set_delivered(self, user_id: str, device_id: str, conversation_id: str, seq: int) -> None:
        """Record a device's delivered position (it only moves forward)."""
        self._connection.execute(
            "INSERT INTO device_positions VALUES (?, ?, ?, ?) "
            "ON CONFLICT (user_id, device_id, conversation_id) "
            "DO UPDATE SET delivered_seq = max(delivered_seq, excluded.delivered_seq)",
            (user_id, device_id, conversation_id, seq),
        )

    def device_positions(self, conversation_id: str) -> dict[str, list[int]]:
        """For each current member, the delivered position of each of their devices in this
        conversation (0 for a device that has received nothing of it); [] if no devices."""
        rows = self._connection.execute(
            "SELECT m.user_id, coalesce(p.delivered_seq, 0) FROM members m "
            "LEFT JOIN devices d ON d.user_id = m.user_id "
            "LEFT JOIN device_positions p ON p.user_id = d.user_id "
            "AND p.device_id = d.device_id AND p.conversation_id = m.conversation_id "
            "WHERE m.conversation_id = ? AND (d.device_id IS NOT NULL) ORDER BY m.user_id",
            (conversation_id,),
        ).fetchall()
        positions: dict[str, list[int]] = {uid: [] for uid in self.member_ids(conversation_id)}
        for uid, seq in rows:
            positions[str(uid)].append(int(seq))
        return positions

    # --- attachments --------------------------------------------------------------------------

    def add_attachment(self, info: AttachmentInfo, uploader_id: str, created_at: float) -> None:
        """Record an upload (the first upload's metadata is kept for deduplicated content)."""
        self._connection.execute(
            "INSERT OR IGNORE INTO attachments VALUES (?, ?, ?, ?, ?)",
            (info.attachment_id, info.size_bytes, info.content_type, info.filename, created_at),
        )
        self._connection.execute(
            "INSERT OR IGNORE INTO attachment_uploads VALUES (?, ?)",
            (info.attachment_id, uploader_id),
        )

    def get_attachment(self, attachment_id: str) -> AttachmentInfo | None:
        """An attachment's metadata, or ``None``."""
        row = self._one(
            "SELECT attachment_id, size_bytes, content_type, filename FROM attachments "
            "WHERE attachment_id = ?",
            (attachment_id,),
        )
        if row is None:
            return None
        return AttachmentInfo(str(row[0]), int(row[1]), str(row[2]), str(row[3]))  # type: ignore[call-overload]

    def is_uploader(self, attachment_id: str, user_id: str) -> bool:
        """Whether the user uploaded this content."""
        row = self._one(
            "SELECT 1 FROM attachment_uploads WHERE attachment_id = ? AND user_id = ?",
            (attachment_id, user_id),
        )
        return row is not None

    def can_read_attachment(self, attachment_id: str, user_id: str) -> bool:
        """Whether the user is a member of a conversation with a message referencing it."""
        row = self._one(
            "SELECT 1 FROM message_attachments a JOIN members m ON m.conversation_id = "
            "a.conversation_id WHERE a.attachment_id = ? AND m.user_id = ? LIMIT 1",
            (attachment_id, user_id),
        )
        return row is not None

    # --- retention and sizes ------------------------------------------------------------------

    def last_seq_before(self, created_before: float) -> dict[str, int]:
        """Per conversation, the last message (hot or cold) created strictly before the time."""
        cuts: dict[str, int] = {}
        rows = self._connection.execute(
            "SELECT conversation_id, max(seq) FROM messages WHERE created_at < :t "
            "GROUP BY conversation_id UNION ALL "
            "SELECT conversation_id, max(last_seq) FROM cold.cold_buckets WHERE created_to < :t "
            "GROUP BY conversation_id",
            {"t": created_before},
        ).fetchall()
        for cid, seq in rows:
            cuts[str(cid)] = max(cuts.get(str(cid), 0), int(seq))
        straddling = self._connection.execute(
            "SELECT conversation_id, payload FROM cold.cold_buckets "
            "WHERE created_from < :t AND created_to >= :t",
            {"t": created_before},
        ).fetchall()
        add_straddling_cuts(cuts, straddling, created_before)
        return dict(sorted(cuts.items()))

    def delete_through(self, conversation_id: str, seq: int) -> int:
        """Delete hot and cold messages with ``seq <= seq``; returns how many went. The
        conversation remembers the last deleted message's seq and time (for paging as of a
        past time)."""
        last = self.get_message(conversation_id, seq)
        self._remember_largest_id()
        hot = self._connection.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND seq <= ?", (conversation_id, seq)
        ).rowcount
        cold = self._delete_cold_through(conversation_id, seq)
        self._connection.execute(
            "DELETE FROM message_attachments WHERE conversation_id = ? AND seq <= ?",
            (conversation_id, seq),
        )
        if last is not None:
            self._connection.execute(
                "UPDATE conversations SET deleted_through_seq = ?, deleted_through_at = ? "
                "WHERE conversation_id = ? AND deleted_through_seq < ?",
                (seq, last.created_at, conversation_id, seq),
            )
        return int(hot) + int(cold)

    def _delete_cold_through(self, conversation_id: str, seq: int) -> int:
        whole = self._one(
            "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM cold.cold_buckets "
            "WHERE conversation_id = ? AND last_seq <= ?",
            (conversation_id, seq),
        )
        assert whole is not None
        deleted: int = int(whole[0])  # type: ignore[call-overload]
        self._connection.execute(
            "DELETE FROM cold.cold_buckets WHERE conversation_id = ? AND last_seq <= ?",
            (conversation_id, seq),
        )
        partial = self._one(
            "SELECT bucket_id, payload FROM cold.cold_buckets WHERE conversation_id = ? "
            "AND first_seq <= ? AND last_seq > ?",
            (conversation_id, seq, seq),
        )
        if partial is not None:  # rewrite the one bucket that straddles the cut
            bucket_id, payload = partial
            trimmed = trim_bucket(conversation_id, payload, seq)
            self._connection.execute(
                "UPDATE cold.cold_buckets SET first_seq = ?, created_from = ?, payload = ? "
                "WHERE bucket_id = ?",
                (trimmed.first_seq, trimmed.created_from, trimmed.payload, bucket_id),
            )
            deleted += trimmed.removed
        return deleted

    def archive_through(self, conversation_id: str, seq: int) -> int:
        """Move hot messages with ``seq <= seq`` into compressed cold buckets; returns how many
        moved. Idempotent: messages already cold are not hot any more."""
        rows = self._connection.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq <= ? "
            "ORDER BY seq",
            (conversation_id, seq),
        ).fetchall()
        self._remember_largest_id()
        if rows:  # buckets left by an archive run whose hot delete never committed
            self._connection.execute(
                "DELETE FROM cold.cold_buckets WHERE conversation_id = ? AND first_seq >= ? "
                "AND last_seq <= ?",
                (conversation_id, rows[0][2], seq),
            )
        for start in range(0, len(rows), COLD_BUCKET_MESSAGES):
            chunk = rows[start : start + COLD_BUCKET_MESSAGES]
            self._connection.execute(
                "INSERT INTO cold.cold_buckets (conversation_id, first_seq, last_seq, "
                "created_from, created_to, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, chunk[0][2], chunk[-1][2], chunk[0][5], chunk[-1][5],
                 _pack_bucket(chunk)),
            )
        self._connection.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND seq <= ?", (conversation_id, seq)
        )
        return len(rows)

    def expire_idempotency_keys(self, created_before: float) -> int:
        """Forget idempotency keys of messages sent before the time; returns how many."""
        cursor = self._connection.execute(
            "DELETE FROM idempotency_keys WHERE created_at < ?", (created_before,)
        )
        return int(cursor.rowcount)

    def table_bytes(self) -> dict[str, int]:
        """Bytes of pages used by each table and index (``cold.`` prefixed for the archive),
        largest first: where the hot store's space goes (SQLite's ``dbstat``)."""
        sizes: dict[str, int] = {}
        for schema in ("main", "cold"):
            prefix = "" if schema == "main" else "cold."
            for name, used in self._connection.execute(
                "SELECT name, sum(pgsize - unused) FROM dbstat WHERE schema = ? "
                "AND name NOT LIKE 'sqlite_%' GROUP BY name",
                (schema,),
            ):
                sizes[prefix + str(name)] = int(used)
        return dict(sorted(sizes.items(), key=lambda item: (-item[1], item[0])))

    def compact(self) -> None:
        """Give the space of deleted rows back (``VACUUM`` both databases): SQLite reuses
        freed pages but does not shrink its files on its own."""
        for schema in ("main", "cold"):
            self._connection.execute(f"VACUUM {schema}")

    def message_counts(self) -> tuple[int, int]:
        """(hot messages, cold messages)."""
        hot = self._one("SELECT count(*) FROM messages")
        cold = self._one(
            "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM cold.cold_buckets"
        )
        assert hot is not None and cold is not None
        return int(hot[0]), int(cold[0])  # type: ignore[call-overload]

    def size_bytes(self) -> tuple[int, int]:
        """(hot bytes, cold bytes): pages in use x page size of each database."""
        sizes = []
        for schema in ("main", "cold"):
            pages = self._one(f"PRAGMA {schema}.page_count")
            free = self._one(f"PRAGMA {schema}.freelist_count")
            page_size = self._one(f"PRAGMA {schema}.page_size")
            assert pages is not None and free is not None and page_size is not None
            sizes.append((int(pages[0]) - int(free[0])) * int(page_size[0]))  # type: ignore[call-overload]
        return sizes[0], sizes[1]
