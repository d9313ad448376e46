"""The chat store on PostgreSQL (psycopg 3): the same :class:`~chatdesign.chat.store.ChatStore`
interface as :class:`~chatdesign.chat.store.SQLiteStore`, for many server processes sharing one
database.

The schema mirrors SQLite's (tables clustered the same way by their primary keys), in a schema
``namespace`` (default ``chat``) with the archive in ``<namespace>_cold``, so one PostgreSQL
database can hold several independent stores (the tests give each its own). It is created when
missing and upgraded when older, inside one transaction guarded by an advisory lock, so several
processes starting at once do it once.

What keeps the rules when several processes write at once (READ COMMITTED, the default):

- **Gap-free, duplicate-free ``seq`` per conversation**: :meth:`PostgresStore.claim_seq` is one
  ``UPDATE ... RETURNING`` of the conversation's row. The row lock it takes is held until the
  sending transaction commits or rolls back, so a second sender in the same conversation waits,
  then reads the committed counter. A send that fails rolls its claim back with it: no gap.
- **Idempotency across processes**: :meth:`PostgresStore.find_idempotency` first takes a
  transaction-scoped advisory lock on the (sender, ``client_message_id``) key. Two processes
  handling the same retried send serialise there: the second one waits until the first commits
  and then *finds* its record, so it answers with the original message instead of storing a
  second one (the primary key on the key would refuse the duplicate anyway, as a last line).
- **One 1:1 conversation per pair**: :meth:`PostgresStore.find_direct` takes an advisory lock on
  the pair for the same reason.

Durability: ``synchronous_commit`` stays ``on``: ``COMMIT`` returns after the WAL is flushed, so
an acknowledgement sent after it survives a crash of the server process or of PostgreSQL.

Taught in ``notebooks/06_connections.ipynb`` (many servers, one store).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import psycopg

from chatdesign.chat.attachments import AttachmentInfo
from chatdesign.chat.core import (
    Conversation,
    ConversationKind,
    HistoryWindow,
    IdempotencyRecord,
    Message,
)
from chatdesign.chat.store import (
    _MESSAGE_COLUMNS,
    COLD_BUCKET_MESSAGES,
    _message,
    _pack_bucket,
    _row,
    _unpack_bucket,
    add_straddling_cuts,
    merge_hot_and_cold,
    trim_bucket,
)
from chatdesign.chat.store import (
    _Transaction as _SQLiteTransaction,
)

SCHEMA_VERSION: Final = 1
"""Bumped when the tables change; :class:`PostgresStore` upgrades older schemas on open."""

_NAMESPACE: Final = re.compile(r"[a-z_][a-z0-9_]{0,40}")

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS {ns}.schema_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS {ns}.users (
    user_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {ns}.conversations (
    conversation_id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL,
    creator_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0, updated_at DOUBLE PRECISION NOT NULL,
    deleted_through_seq BIGINT NOT NULL DEFAULT 0, deleted_through_at DOUBLE PRECISION,
    creator_seen_seq BIGINT NOT NULL DEFAULT 0, other_seen_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {ns}.direct_pairs (
    user_low TEXT NOT NULL, user_high TEXT NOT NULL, conversation_id TEXT NOT NULL,
    PRIMARY KEY (user_low, user_high)
);
CREATE TABLE IF NOT EXISTS {ns}.members (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, joined_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON {ns}.members (user_id);
CREATE TABLE IF NOT EXISTS {ns}.messages (
    conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id BIGINT NOT NULL,
    sender_id TEXT NOT NULL, content TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    client_message_id TEXT NOT NULL, attachments TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS {ns}.idempotency_keys (
    sender_id TEXT NOT NULL, client_message_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL, fingerprint BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sender_id, client_message_id)
);
CREATE TABLE IF NOT EXISTS {ns}.receipts (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, seen_seq BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE TABLE IF NOT EXISTS {ns}.devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS {ns}.device_positions (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
    delivered_seq BIGINT NOT NULL, PRIMARY KEY (user_id, device_id, conversation_id)
);
CREATE TABLE IF NOT EXISTS {ns}.attachments (
    attachment_id TEXT PRIMARY KEY, size_bytes BIGINT NOT NULL, content_type TEXT NOT NULL,
    filename TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {ns}.attachment_uploads (
    attachment_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (attachment_id, user_id)
);
CREATE TABLE IF NOT EXISTS {ns}.message_attachments (
    attachment_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (attachment_id, conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS {ns}.id_floor (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), max_message_id BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {ns}.time_floor (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1), latest_s DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {ns}.departures (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, joined_at DOUBLE PRECISION NOT NULL,
    left_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (conversation_id, user_id, left_at)
);
CREATE INDEX IF NOT EXISTS departures_by_user ON {ns}.departures (user_id);
CREATE TABLE IF NOT EXISTS {cold}.cold_buckets (
    bucket_id BIGSERIAL PRIMARY KEY, conversation_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL,
    created_from DOUBLE PRECISION NOT NULL, created_to DOUBLE PRECISION NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS cold_buckets_by_seq ON {cold}.cold_buckets (conversation_id, last_seq);
"""


class _Transaction(_SQLiteTransaction):
    """``BEGIN`` ... ``COMMIT`` (``ROLLBACK`` on an exception) on an autocommit connection; an
    inner block is a savepoint, exactly as SQLiteStore's."""

    __slots__ = ()
    BEGIN = "BEGIN"


class PostgresStore:
    """:class:`~chatdesign.chat.store.ChatStore` on PostgreSQL at ``url``
    (``postgresql://user@host:port/dbname``), in schema ``namespace`` and its archive schema
    ``<namespace>_cold``, created or upgraded on open. ``connect_timeout_s`` bounds the wait for
    the server."""

    def __init__(self, url: str, namespace: str = "chat", connect_timeout_s: float = 10.0) -> None:
        if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"url must start with postgresql://, got {url!r}")
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"namespace must be a lower-case SQL identifier of at most 41 characters, got {namespace!r}"
            )
        self.url = url
        self.namespace = namespace
        self.cold = f"{namespace}_cold"
        self._connection: psycopg.Connection[Any] = psycopg.connect(
            url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))
        )
        self._connection.execute(f"SET search_path TO {namespace}, {self.cold}")
        self._transaction = _Transaction(self._connection)
        with self._transaction:
            self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"schema:{namespace}",))
            self._connection.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
            self._connection.execute(f"CREATE SCHEMA IF NOT EXISTS {self.cold}")
            self._connection.execute(_TABLES.format(ns=namespace, cold=self.cold).encode())
            self._upgrade()

    def _upgrade(self) -> None:
        """Bring an older schema to :data:`SCHEMA_VERSION` (version 1 is the first)."""
        row = self._one("SELECT version FROM schema_version")
        if row is None:
            self._connection.execute("INSERT INTO schema_version VALUES (1, %s)", (SCHEMA_VERSION,))
        elif int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"schema {self.namespace} is version {row[0]}, newer than this code's {SCHEMA_VERSION}"
            )

    def __repr__(self) -> str:
        info = self._connection.info
        return f"PostgresStore({info.host}:{info.port}/{info.dbname}, namespace={self.namespace})"

    def transaction(self) -> AbstractContextManager[None]:
        """``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` on any exception. Re-entrant: an inner block is
        a savepoint, so one that fails undoes only its own writes (``ChatServer.send_batch``)."""
        return self._transaction

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._connection.close()

    def drop(self) -> None:
        """Remove this store's two schemas and everything in them (tests, notebooks)."""
        self._connection.execute(f"DROP SCHEMA IF EXISTS {self.namespace}, {self.cold} CASCADE")

    def _one(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._connection.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> list[tuple[Any, ...]]:
        return self._connection.execute(sql, params).fetchall()

    def _lock(self, key: str) -> None:
        """A transaction-scoped advisory lock on ``key`` (a no-op outside a transaction)."""
        self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    # --- users and conversations --------------------------------------------------------------

    def add_user(self, user_id: str, display_name: str, created_at: float) -> None:
        """Insert a user (the caller checked it is new)."""
        self._connection.execute("INSERT INTO users VALUES (%s, %s, %s)", (user_id, display_name, created_at))

    def has_user(self, user_id: str) -> bool:
        """Whether the user is registered."""
        return self._one("SELECT 1 FROM users WHERE user_id = %s", (user_id,)) is not None

    def add_conversation(
        self, conversation: Conversation, member_ids: Sequence[str], pair: tuple[str, str] | None,
    ) -> None:
        """Insert a conversation with its first members (joined at its creation time)."""
        c = conversation
        self._connection.execute(
            "INSERT INTO conversations (conversation_id, kind, title, creator_id, created_at, "
            "last_seq, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (c.conversation_id, c.kind, c.title, c.creator_id, c.created_at, c.last_seq, c.updated_at),
        )
        with self._connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO members VALUES (%s, %s, %s)",
                [(c.conversation_id, member_id, c.created_at) for member_id in member_ids],
            )
        if pair is not None:
            self._connection.execute("INSERT INTO direct_pairs VALUES (%s, %s, %s)", (*pair, c.conversation_id))

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation's header, or ``None``."""
        row = self._one(
            "SELECT conversation_id, kind, title, creator_id, created_at, last_seq, updated_at "
            "FROM conversations WHERE conversation_id = %s",
            (conversation_id,),
        )
        if row is None:
            return None
        cid, kind, title, creator, created, last_seq, updated = row
        return Conversation(
            str(cid), "group" if kind == "group" else "direct", str(title), str(creator),
            float(created), int(last_seq), float(updated),
        )

    def find_direct(self, pair: tuple[str, str]) -> str | None:
        """The 1:1 conversation of a (low, high) user pair, or ``None``. Inside a transaction it
        first locks the pair, so two processes cannot both create it."""
        self._lock(f"direct:{pair[0]}\x1f{pair[1]}")
        row = self._one("SELECT conversation_id FROM direct_pairs WHERE user_low = %s AND user_high = %s", pair)
        return None if row is None else str(row[0])

    def member_ids(self, conversation_id: str) -> tuple[str, ...]:
        """Current members, in the order they joined (then by id)."""
        rows = self._all(
            "SELECT user_id FROM members WHERE conversation_id = %s ORDER BY joined_at, user_id COLLATE \"C\"",
            (conversation_id,),
        )
        return tuple(str(r[0]) for r in rows)

    def is_member(self, conversation_id: str, user_id: str) -> bool:
        """Whether the user is a current member."""
        row = self._one("SELECT 1 FROM members WHERE conversation_id = %s AND user_id = %s", (conversation_id, user_id))
        return row is not None

    def add_member(self, conversation_id: str, user_id: str, joined_at: float) -> None:
        """Add a member."""
        self._connection.execute("INSERT INTO members VALUES (%s, %s, %s)", (conversation_id, user_id, joined_at))

    def remove_member(self, conversation_id: str, user_id: str, left_at: float) -> None:
        """Remove a member, keeping their receipt and device positions and the membership's
        interval in ``departures``, as :meth:`SQLiteStore.remove_member`."""
        self._connection.execute(
            "INSERT INTO departures SELECT conversation_id, user_id, joined_at, %s "
            "FROM members WHERE conversation_id = %s AND user_id = %s ON CONFLICT DO NOTHING",
            (left_at, conversation_id, user_id),
        )
        self._connection.execute(
            "DELETE FROM members WHERE conversation_id = %s AND user_id = %s", (conversation_id, user_id)
        )

    def conversation_ids_of(self, user_id: str) -> tuple[str, ...]:
        """The conversations the user is a member of, by id."""
        rows = self._all(
            "SELECT conversation_id FROM members WHERE user_id = %s ORDER BY conversation_id COLLATE \"C\"",
            (user_id,),
        )
        return tuple(str(r[0]) for r in rows)

    def all_conversations(self) -> list[Conversation]:
        """Every conversation, by id."""
        rows = self._all("SELECT conversation_id FROM conversations ORDER BY conversation_id COLLATE \"C\"")
        found = [self.get_conversation(str(r[0])) for r in rows]
        return [c for c in found if c is not None]

    # --- messages -----------------------------------------------------------------------------

    def claim_seq(self, conversation_id: str, now: float) -> tuple[int, float]:
        """Advance the conversation's sequence by one; returns (new seq, message time), the time
        being ``max(now, previous message time)``. The row stays locked until the transaction
        ends, which is what serialises concurrent senders."""
        row = self._one(
            "UPDATE conversations SET last_seq = last_seq + 1, updated_at = greatest(updated_at, %s) "
            "WHERE conversation_id = %s RETURNING last_seq, updated_at",
            (now, conversation_id),
        )
        if row is None:
            raise KeyError(conversation_id)
        return int(row[0]), float(row[1])

    def insert_message(self, message: Message, fingerprint: str) -> None:
        """Store a message, its idempotency key and its attachment references."""
        m = message
        self._connection.execute(f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join(['%s'] * 8)})", _row(m))
        self._connection.execute(
            "INSERT INTO idempotency_keys VALUES (%s, %s, %s, %s, %s, %s)",
            (m.sender_id, m.client_message_id, m.conversation_id, m.seq, bytes.fromhex(fingerprint), m.created_at),
        )
        if m.attachments:
            with self._connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO message_attachments VALUES (%s, %s, %s)",
                    [(a, m.conversation_id, m.seq) for a in m.attachments],
                )

    def import_messages(self, messages: Sequence[Message], fingerprints: Sequence[str]) -> None:
        """Bulk path for loading history, as :meth:`SQLiteStore.import_messages`."""
        if len(messages) != len(fingerprints):
            raise ValueError("one fingerprint per message")
        with self._connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join(['%s'] * 8)})",
                [_row(m) for m in messages],
            )
            cursor.executemany(
                "INSERT INTO idempotency_keys VALUES (%s, %s, %s, %s, %s, %s)",
                [(m.sender_id, m.client_message_id, m.conversation_id, m.seq, bytes.fromhex(f), m.created_at)
                 for m, f in zip(messages, fingerprints, strict=True)],
            )
            newest: dict[str, Message] = {}
            for m in messages:
                if m.conversation_id not in newest or m.seq > newest[m.conversation_id].seq:
                    newest[m.conversation_id] = m
            cursor.executemany(
                "UPDATE conversations SET last_seq = greatest(last_seq, %s), "
                "updated_at = greatest(updated_at, %s) WHERE conversation_id = %s",
                [(m.seq, m.created_at, cid) for cid, m in newest.items()],
            )

    def find_idempotency(self, sender_id: str, client_message_id: str) -> IdempotencyRecord | None:
        """The record of a (sender, client_message_id) key, or ``None``. Inside a transaction it
        first locks the key, so a concurrent retry in another process waits and then finds it."""
        self._lock(f"idem:{sender_id}\x1f{client_message_id}")
        row = self._one(
            "SELECT conversation_id, seq, fingerprint FROM idempotency_keys "
            "WHERE sender_id = %s AND client_message_id = %s",
            (sender_id, client_message_id),
        )
        if row is None:
            return None
        return IdempotencyRecord(sender_id, client_message_id, str(row[0]), int(row[1]), bytes(row[2]).hex())

    def get_message(self, conversation_id: str, seq: int) -> Message | None:
        """One message, hot or cold, or ``None`` if it is not (or no longer) stored."""
        row = self._one(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND seq = %s", (conversation_id, seq)
        )
        if row is not None:
            return _message(row)
        bucket = self._one(
            f"SELECT payload FROM {self.cold}.cold_buckets WHERE conversation_id = %s AND first_seq <= %s "
            "AND last_seq >= %s",
            (conversation_id, seq, seq),
        )
        if bucket is None:
            return None
        return next(m for m in _unpack_bucket(conversation_id, bytes(bucket[0])) if m.seq == seq)

    def messages(self, conversation_id: str, window: HistoryWindow) -> list[Message]:
        """Up to ``window.limit`` messages strictly inside the window, hot and cold merged,
        newest first or oldest first as the window says (the hot copy wins a duplicate)."""
        order = "DESC" if window.newest_first else "ASC"
        upper = window.before_seq if window.before_seq is not None else 2**62
        params = (conversation_id, window.after_seq, upper)
        hot = [_message(r) for r in self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND seq > %s "
            f"AND seq < %s ORDER BY seq {order} LIMIT %s",
            (*params, window.limit),
        )]
        buckets = self._all(
            f"SELECT payload FROM {self.cold}.cold_buckets WHERE conversation_id = %s AND last_seq > %s "
            f"AND first_seq < %s ORDER BY first_seq {order}",
            params,
        )
        return merge_hot_and_cold(hot, (p for (p,) in buckets), conversation_id, window)

    def last_message_id(self) -> int | None:
        """The largest message id ever stored here (hot, or remembered when retention removed it)."""
        row = self._one(
            "SELECT greatest(coalesce((SELECT max(message_id) FROM messages), -1), "
            "coalesce((SELECT max_message_id FROM id_floor), -1))"
        )
        assert row is not None
        largest = int(row[0])
        return None if largest < 0 else largest

    def latest_activity_time(self) -> float | None:
        """The newest time stored anywhere, as :meth:`SQLiteStore.latest_activity_time`."""
        row = self._one(
            "SELECT greatest(coalesce((SELECT max(updated_at) FROM conversations), 0), "
            "coalesce((SELECT max(joined_at) FROM members), 0), "
            "coalesce((SELECT max(left_at) FROM departures), 0), "
            "coalesce((SELECT max(created_at) FROM users), 0), "
            "coalesce((SELECT max(created_at) FROM attachments), 0), "
            "coalesce((SELECT latest_s FROM time_floor), 0))"
        )
        latest = None if row is None else float(row[0])
        return latest if latest else None

    def remember_time(self, latest_s: float) -> None:
        """Keep the latest time a server used (written at close)."""
        self._connection.execute(
            "INSERT INTO time_floor VALUES (1, %s) ON CONFLICT (singleton) DO UPDATE SET "
            "latest_s = greatest(time_floor.latest_s, excluded.latest_s)",
            (latest_s,),
        )

    def largest_issued_id(self) -> int | None:
        """The largest snowflake held anywhere: a message id (stored or remembered) or the number
        of a conversation id, as :meth:`SQLiteStore.largest_issued_id`."""
        row = self._one(
            "SELECT max(CAST(substr(conversation_id, 3) AS NUMERIC)) FROM conversations "
            "WHERE conversation_id ~ '^[dg]:[0-9]{1,19}$'"
        )
        numbers = [n for n in (self.last_message_id(), None if row is None or row[0] is None else int(row[0]))
                   if isinstance(n, int) and 0 <= n < (1 << 63)]
        return max(numbers) if numbers else None

    def _remember_largest_id(self) -> None:
        self._connection.execute(
            "INSERT INTO id_floor VALUES (1, coalesce((SELECT max(message_id) FROM messages), -1)) "
            "ON CONFLICT (singleton) DO UPDATE SET "
            "max_message_id = greatest(id_floor.max_message_id, excluded.max_message_id)"
        )

    def conversations_as_of(
        self, user_id: str, as_of: float, offset: int, limit: int
    ) -> list[tuple[str, ConversationKind, str, int, float]]:
        """The user's conversations ranked as they stood at ``as_of``, as
        :meth:`SQLiteStore.conversations_as_of` (the same query, in PostgreSQL's dialect)."""
        cold = self.cold
        rows = self._all(
            f"""
            WITH mine AS (
                SELECT c.conversation_id, c.kind, c.title, c.created_at, c.last_seq,
                       c.updated_at, c.deleted_through_seq, c.deleted_through_at
                FROM (SELECT conversation_id FROM members
                      WHERE user_id = %(user)s AND joined_at <= %(t)s
                      UNION SELECT conversation_id FROM departures
                      WHERE user_id = %(user)s AND joined_at <= %(t)s AND left_at > %(t)s) m
                JOIN conversations c ON c.conversation_id = m.conversation_id
                WHERE c.created_at <= %(t)s
            ), at_t AS (
                SELECT conversation_id, kind, title, created_at, updated_at, last_seq,
                       deleted_through_seq, deleted_through_at,
                       CASE WHEN updated_at <= %(t)s THEN last_seq ELSE coalesce(
                           (SELECT x.seq FROM messages x
                            WHERE x.conversation_id = mine.conversation_id
                              AND x.created_at <= %(t)s ORDER BY x.seq DESC LIMIT 1),
                           (SELECT max(y.last_seq) FROM {cold}.cold_buckets y
                            WHERE y.conversation_id = mine.conversation_id
                              AND y.created_to <= %(t)s),
                           CASE WHEN deleted_through_at <= %(t)s THEN deleted_through_seq END,
                           0) END AS seq_t
                FROM mine
            )
            SELECT conversation_id, kind, title, seq_t,
                   CASE WHEN seq_t = last_seq AND updated_at <= %(t)s THEN updated_at
                        WHEN seq_t = 0 THEN created_at
                        ELSE coalesce(
                           (SELECT x.created_at FROM messages x
                            WHERE x.conversation_id = at_t.conversation_id AND x.seq = seq_t),
                           (SELECT y.created_to FROM {cold}.cold_buckets y
                            WHERE y.conversation_id = at_t.conversation_id
                              AND y.last_seq = seq_t),
                           CASE WHEN seq_t = deleted_through_seq THEN deleted_through_at END,
                           created_at) END AS updated_t
            FROM at_t
            ORDER BY updated_t DESC, conversation_id COLLATE "C" DESC
            LIMIT %(limit)s OFFSET %(offset)s
            """,
            {"user": user_id, "t": as_of, "limit": limit, "offset": offset},
        )
        return [
            (str(cid), "group" if kind == "group" else "direct", str(title), int(seq), float(at))
            for cid, kind, title, seq, at in rows
        ]

    # --- receipts and devices -----------------------------------------------------------------

    def get_seen(self, conversation_id: str, user_id: str) -> int:
        """The user's "seen up to" seq in the conversation (0: nothing seen)."""
        row = self._one(
            "SELECT greatest(coalesce((SELECT seen_seq FROM receipts WHERE conversation_id = %(c)s "
            "AND user_id = %(u)s), 0), coalesce((SELECT CASE WHEN creator_id = %(u)s "
            "THEN creator_seen_seq ELSE other_seen_seq END FROM conversations "
            "WHERE conversation_id = %(c)s AND kind = 'direct' AND EXISTS (SELECT 1 FROM members "
            "WHERE conversation_id = %(c)s AND user_id = %(u)s)), 0))",
            {"c": conversation_id, "u": user_id},
        )
        assert row is not None
        return int(row[0])

    def set_seen(self, conversation_id: str, user_id: str, seq: int) -> None:
        """Store the receipt (the caller made sure it only moves forward): a member's of a 1:1
        in the conversation's row, any other in ``receipts``."""
        params = {"s": seq, "c": conversation_id, "u": user_id}
        updated = self._connection.execute(
            "UPDATE conversations SET "
            "creator_seen_seq = CASE WHEN creator_id = %(u)s THEN %(s)s ELSE creator_seen_seq END, "
            "other_seen_seq = CASE WHEN creator_id = %(u)s THEN other_seen_seq ELSE %(s)s END "
            "WHERE conversation_id = %(c)s AND kind = 'direct' AND EXISTS (SELECT 1 FROM members "
            "WHERE conversation_id = %(c)s AND user_id = %(u)s)",
            params,
        ).rowcount
        if not updated:
            self._connection.execute(
                "INSERT INTO receipts VALUES (%(c)s, %(u)s, %(s)s) ON CONFLICT (conversation_id, user_id) "
                "DO UPDATE SET seen_seq = excluded.seen_seq",
                params,
            )

    def seen_by(self, conversation_id: str, seq: int) -> tuple[str, ...]:
        """Current members whose receipt covers ``seq``, by user id."""
        rows = self._all(
            "SELECT m.user_id FROM members m JOIN conversations c ON c.conversation_id = "
            "m.conversation_id LEFT JOIN receipts r ON r.conversation_id = m.conversation_id "
            "AND r.user_id = m.user_id WHERE m.conversation_id = %s AND greatest(coalesce("
            "r.seen_seq, 0), CASE WHEN c.kind <> 'direct' THEN 0 WHEN c.creator_id = m.user_id "
            "THEN c.creator_seen_seq ELSE c.other_seen_seq END) >= %s ORDER BY m.user_id COLLATE \"C\"",
            (conversation_id, seq),
        )
        return tuple(str(r[0]) for r in rows)

    def add_device(self, user_id: str, device_id: str) -> None:
        """Remember a device (no-op if known)."""
        self._connection.execute("INSERT INTO devices VALUES (%s, %s) ON CONFLICT DO NOTHING", (user_id, device_id))

    def delivered_positions(self, user_id: str, device_id: str) -> dict[str, int]:
        """``{conversation_id: last seq delivered to this device}``."""
        rows = self._all(
            "SELECT conversation_id, delivered_seq FROM device_positions WHERE user_id = %s AND device_id = %s",
            (user_id, device_id),
        )
        return {str(cid): int(seq) for cid, seq in rows}

    def set_delivered(self, user_id: str, device_id: str, conversation_id: str, seq: int) -> None:
        """Record a device's delivered position (it only moves forward)."""
        self._connection.execute(
            "INSERT INTO device_positions VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (user_id, device_id, conversation_id) "
            "DO UPDATE SET delivered_seq = greatest(device_positions.delivered_seq, excluded.delivered_seq)",
            (user_id, device_id, conversation_id, seq),
        )

    def device_positions(self, conversation_id: str) -> dict[str, list[int]]:
        """For each current member, the delivered position of each of their devices in this
        conversation (0 for a device that has received nothing of it); [] if no devices."""
        rows = self._all(
            "SELECT m.user_id, coalesce(p.delivered_seq, 0) FROM members m "
            "JOIN devices d ON d.user_id = m.user_id "
            "LEFT JOIN device_positions p ON p.user_id = d.user_id "
            "AND p.device_id = d.device_id AND p.conversation_id = m.conversation_id "
            "WHERE m.conversation_id = %s ORDER BY m.user_id COLLATE \"C\", d.device_id COLLATE \"C\"",
            (conversation_id,),
        )
        positions: dict[str, list[int]] = {uid: [] for uid in self.member_ids(conversation_id)}
        for uid, seq in rows:
            positions[str(uid)].append(int(seq))
        return positions

    # --- attachments --------------------------------------------------------------------------

    def add_attachment(self, info: AttachmentInfo, uploader_id: str, created_at: float) -> None:
        """Record an upload (the first upload's metadata is kept for deduplicated content)."""
        self._connection.execute(
            "INSERT INTO attachments VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (info.attachment_id, info.size_bytes, info.content_type, info.filename, created_at),
        )
        self._connection.execute(
            "INSERT INTO attachment_uploads VALUES (%s, %s) ON CONFLICT DO NOTHING", (info.attachment_id, uploader_id)
        )

    def get_attachment(self, attachment_id: str) -> AttachmentInfo | None:
        """An attachment's metadata, or ``None``."""
        row = self._one(
            "SELECT attachment_id, size_bytes, content_type, filename FROM attachments WHERE attachment_id = %s",
            (attachment_id,),
        )
        if row is None:
            return None
        return AttachmentInfo(str(row[0]), int(row[1]), str(row[2]), str(row[3]))

    def is_uploader(self, attachment_id: str, user_id: str) -> bool:
        """Whether the user uploaded this content."""
        row = self._one(
            "SELECT 1 FROM attachment_uploads WHERE attachment_id = %s AND user_id = %s", (attachment_id, user_id)
        )
        return row is not None

    def can_read_attachment(self, attachment_id: str, user_id: str) -> bool:
        """Whether the user is a member of a conversation with a message referencing it."""
        row = self._one(
            "SELECT 1 FROM message_attachments a JOIN members m ON m.conversation_id = "
            "a.conversation_id WHERE a.attachment_id = %s AND m.user_id = %s LIMIT 1",
            (attachment_id, user_id),
        )
        return row is not None

    # --- retention and sizes ------------------------------------------------------------------

    def last_seq_before(self, created_before: float) -> dict[str, int]:
        """Per conversation, the last message (hot or cold) created strictly before the time."""
        cuts: dict[str, int] = {}
        for cid, seq in self._all(
            "SELECT conversation_id, max(seq) FROM messages WHERE created_at < %(t)s "
            "GROUP BY conversation_id UNION ALL "
            f"SELECT conversation_id, max(last_seq) FROM {self.cold}.cold_buckets WHERE created_to < %(t)s "
            "GROUP BY conversation_id",
            {"t": created_before},
        ):
            cuts[str(cid)] = max(cuts.get(str(cid), 0), int(seq))
        add_straddling_cuts(cuts, ((cid, payload) for cid, payload in self._all(
            f"SELECT conversation_id, payload FROM {self.cold}.cold_buckets "
            "WHERE created_from < %(t)s AND created_to >= %(t)s",
            {"t": created_before},
        )), created_before)
        return dict(sorted(cuts.items()))

    def delete_through(self, conversation_id: str, seq: int) -> int:
        """Delete hot and cold messages with ``seq <= seq``; returns how many went, remembering
        the last deleted message's seq and time in the conversation."""
        last = self.get_message(conversation_id, seq)
        self._remember_largest_id()
        hot = self._connection.execute(
            "DELETE FROM messages WHERE conversation_id = %s AND seq <= %s", (conversation_id, seq)
        ).rowcount
        cold = self._delete_cold_through(conversation_id, seq)
        self._connection.execute(
            "DELETE FROM message_attachments WHERE conversation_id = %s AND seq <= %s", (conversation_id, seq)
        )
        if last is not None:
            self._connection.execute(
                "UPDATE conversations SET deleted_through_seq = %s, deleted_through_at = %s "
                "WHERE conversation_id = %s AND deleted_through_seq < %s",
                (seq, last.created_at, conversation_id, seq),
            )
        return int(hot) + int(cold)

    def _delete_cold_through(self, conversation_id: str, seq: int) -> int:
        whole = self._one(
            f"SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM {self.cold}.cold_buckets "
            "WHERE conversation_id = %s AND last_seq <= %s",
            (conversation_id, seq),
        )
        assert whole is not None
        deleted = int(whole[0])
        self._connection.execute(
            f"DELETE FROM {self.cold}.cold_buckets WHERE conversation_id = %s AND last_seq <= %s",
            (conversation_id, seq),
        )
        partial = self._one(
            f"SELECT bucket_id, payload FROM {self.cold}.cold_buckets WHERE conversation_id = %s "
            "AND first_seq <= %s AND last_seq > %s",
            (conversation_id, seq, seq),
        )
        if partial is not None:  # rewrite the one bucket that straddles the cut
            bucket_id, payload = partial
            trimmed = trim_bucket(conversation_id, payload, seq)
            self._connection.execute(
                f"UPDATE {self.cold}.cold_buckets SET first_seq = %s, created_from = %s, payload = %s "
                "WHERE bucket_id = %s",
                (trimmed.first_seq, trimmed.created_from, trimmed.payload, bucket_id),
            )
            deleted += trimmed.removed
        return deleted

    def archive_through(self, conversation_id: str, seq: int) -> int:
        """Move hot messages with ``seq <= seq`` into compressed cold buckets; returns how many
        moved. Hot and cold are schemas of one database, so the move commits atomically."""
        rows = self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND seq <= %s ORDER BY seq",
            (conversation_id, seq),
        )
        self._remember_largest_id()
        if rows:
            self._connection.execute(
                f"DELETE FROM {self.cold}.cold_buckets WHERE conversation_id = %s AND first_seq >= %s "
                "AND last_seq <= %s",
                (conversation_id, rows[0][2], seq),
            )
        for start in range(0, len(rows), COLD_BUCKET_MESSAGES):
            chunk = rows[start : start + COLD_BUCKET_MESSAGES]
            self._connection.execute(
                f"INSERT INTO {self.cold}.cold_buckets (conversation_id, first_seq, last_seq, "
                "created_from, created_to, payload) VALUES (%s, %s, %s, %s, %s, %s)",
                (conversation_id, chunk[0][2], chunk[-1][2], chunk[0][5], chunk[-1][5], _pack_bucket(chunk)),
            )
        self._connection.execute(
            "DELETE FROM messages WHERE conversation_id = %s AND seq <= %s", (conversation_id, seq)
        )
        return len(rows)

    def expire_idempotency_keys(self, created_before: float) -> int:
        """Forget idempotency keys of messages sent before the time; returns how many."""
        return int(self._connection.execute(
            "DELETE FROM idempotency_keys WHERE created_at < %s", (created_before,)
        ).rowcount)

    def _tables(self) -> list[tuple[str, str]]:
        return [(str(s), str(t)) for s, t in self._all(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN (%s, %s) ORDER BY 1, 2",
            (self.namespace, self.cold),
        )]

    def table_bytes(self) -> dict[str, int]:
        """Bytes on disk of each table with its indexes and TOAST (``cold.`` prefixed for the
        archive), largest first."""
        sizes: dict[str, int] = {}
        for schema, table in self._tables():
            row = self._one("SELECT pg_total_relation_size(%s::regclass)", (f"{schema}.{table}",))
            assert row is not None
            sizes[("cold." if schema == self.cold else "") + table] = int(row[0])
        return dict(sorted(sizes.items(), key=lambda item: (-item[1], item[0])))

    def compact(self) -> None:
        """Give the space of deleted rows back (``VACUUM FULL`` of this store's tables)."""
        for schema, table in self._tables():
            self._connection.execute(f"VACUUM FULL {schema}.{table}")

    def message_counts(self) -> tuple[int, int]:
        """(hot messages, cold messages)."""
        hot = self._one("SELECT count(*) FROM messages")
        cold = self._one(f"SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM {self.cold}.cold_buckets")
        assert hot is not None and cold is not None
        return int(hot[0]), int(cold[0])

    def size_bytes(self) -> tuple[int, int]:
        """(hot bytes, cold bytes): the two schemas' tables with their indexes, on disk."""
        sizes = self.table_bytes()
        cold = sum(v for k, v in sizes.items() if k.startswith("cold."))
        return sum(sizes.values()) - cold, cold

    def dump(self) -> list[str]:
        """Every stored row, as text, in a stable order: to compare before and after a call."""
        rows: list[str] = []
        for schema, table in self._tables():
            rows += [f"{table}:{row}" for row in self._all(f"SELECT * FROM {schema}.{table} ORDER BY 1, 2")]
        return rows
