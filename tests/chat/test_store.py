"""The chat stores on their own: transactions, cold buckets, receipts, sizes.

The ``store`` fixture runs each test that takes it twice, on :class:`SQLiteStore` (in memory)
and on :class:`PostgresStore` (a fresh schema of the session's private PostgreSQL server), so
one suite holds both to the same :class:`ChatStore` contract. Tests about SQLite's files and
upgrades construct a :class:`SQLiteStore` themselves.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatdesign.chat import Message, SQLiteStore
from chatdesign.chat.core import Conversation, history_window
from chatdesign.chat.postgres import PostgresStore
from chatdesign.chat.store import _SCHEMA, COLD_BUCKET_MESSAGES
from chatdesign.services import PostgresServer

AnyStore = SQLiteStore | PostgresStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[AnyStore]:
    """An empty store of each kind."""
    if request.param == "sqlite":
        sqlite_store = SQLiteStore()
        yield sqlite_store
        sqlite_store.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    pg_store = PostgresStore(server.url, namespace=f"t_{uuid.uuid4().hex[:12]}")
    yield pg_store
    pg_store.drop()
    pg_store.close()


def _count(store: AnyStore, table: str) -> int:
    if table == "cold_buckets":
        table = "cold.cold_buckets" if isinstance(store, SQLiteStore) else f"{store.cold}.cold_buckets"
    row = store._connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _in_transaction(store: AnyStore) -> bool:
    if isinstance(store, SQLiteStore):
        return store._connection.in_transaction
    return store._connection.info.transaction_status.name != "IDLE"


def _store_with_messages(store: AnyStore, count: int) -> None:
    with store.transaction():
        store.add_user("alice", "Alice", 0.0)
        store.add_user("bob", "Bob", 0.0)
        store.add_conversation(
            Conversation("d:1", "direct", "a & b", "alice", 0.0), ("alice", "bob"),
            ("alice", "bob"),
        )
    messages = [Message(100 + i, "d:1", i, "alice", f"message {i} " * 5, float(i), f"k{i}")
                for i in range(1, count + 1)]
    with store.transaction():
        store.import_messages(messages, [f"{i:064x}" for i in range(count)])


def test_file_store_uses_wal_and_memory_does_not(tmp_path: Path) -> None:
    on_disk = SQLiteStore(tmp_path / "chat.db", synchronous="NORMAL")
    assert on_disk.journal_mode == "wal" and (tmp_path / "chat.db.cold").exists()
    assert "chat.db" in repr(on_disk)
    on_disk.close()
    assert SQLiteStore().journal_mode == "memory"


def test_transaction_rolls_back_everything(store: AnyStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_user("alice", "Alice", 0.0)
        with store.transaction():  # joins the outer one
            store.add_user("bob", "Bob", 0.0)
        raise RuntimeError("refused half-way")
    assert not store.has_user("alice") and not store.has_user("bob")


def test_transaction_commits_and_is_usable_again_after_a_rollback(store: AnyStore) -> None:
    with pytest.raises(RuntimeError), store.transaction(), store.transaction():
        store.add_user("alice", "Alice", 0.0)
        raise RuntimeError("refused in the inner block")
    assert not store.has_user("alice")
    with store.transaction():
        store.add_user("bob", "Bob", 0.0)
        with store.transaction():
            store.add_user("carol", "Carol", 0.0)
        assert store.has_user("carol")  # the inner block did not commit on its own
    assert store.has_user("bob") and store.has_user("carol")
    assert not _in_transaction(store)


def test_claim_seq_is_gap_free_and_time_monotone(store: AnyStore) -> None:
    _store_with_messages(store, 3)
    with store.transaction():
        assert store.claim_seq("d:1", 1.0) == (4, 3.0)  # time never before the last message
        assert store.claim_seq("d:1", 9.0) == (5, 9.0)
    with pytest.raises(KeyError):
        store.claim_seq("d:404", 1.0)


def test_import_moves_the_conversation_forward(store: AnyStore) -> None:
    _store_with_messages(store, 5)
    conversation = store.get_conversation("d:1")
    assert conversation is not None and (conversation.last_seq, conversation.updated_at) == (5, 5.0)
    with pytest.raises(ValueError, match="one fingerprint"):
        store.import_messages([], ["x"])


def test_archive_packs_buckets_and_reads_back(store: AnyStore) -> None:
    count = COLD_BUCKET_MESSAGES + 10
    _store_with_messages(store, count)
    hot_before, _ = store.size_bytes()
    with store.transaction():
        assert store.archive_through("d:1", count - 5) == count - 5
        assert store.archive_through("d:1", count - 5) == 0  # idempotent
    assert store.message_counts() == (5, count - 5)
    assert _count(store, "cold_buckets") == 2
    cold = store.get_message("d:1", 1)
    assert cold is not None and cold.cold and cold.content == "message 1 " * 5
    window = store.messages("d:1", history_window(None, None, 10))
    assert [m.seq for m in window] == list(range(count, count - 10, -1))
    if isinstance(store, PostgresStore):
        store.compact()  # PostgreSQL keeps dead rows' pages until a VACUUM; SQLite counts used pages
    hot_after, cold_bytes = store.size_bytes()
    assert hot_after < hot_before and 0 < cold_bytes < hot_before
    assert store.last_message_id() == 100 + count


def test_delete_remembers_largest_id_and_last_time(store: AnyStore) -> None:
    _store_with_messages(store, 4)
    with store.transaction():
        assert store.delete_through("d:1", 4) == 4
    assert store.message_counts() == (0, 0)
    assert store.last_message_id() == 104
    rows = store.conversations_as_of("alice", 10.0, 0, 5)
    assert rows == [("d:1", "direct", "a & b", 4, 4.0)]


def test_store_refuses_a_bad_synchronous_setting() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(synchronous="ALWAYS")  # type: ignore[arg-type]


def test_cold_reads_cross_bucket_boundaries_both_ways(store: AnyStore) -> None:
    count = 2 * COLD_BUCKET_MESSAGES + 20
    _store_with_messages(store, count)
    with store.transaction():
        store.archive_through("d:1", count - 10)  # three buckets, ten hot messages
    middle = COLD_BUCKET_MESSAGES + 3
    back = store.messages("d:1", history_window(middle, None, 10))
    assert [m.seq for m in back] == list(range(middle - 1, middle - 11, -1))
    forward = store.messages("d:1", history_window(None, middle - 8, 10))
    assert [m.seq for m in forward] == list(range(middle - 7, middle + 3))
    across = store.messages("d:1", history_window(None, count - 15, 10))
    assert [(m.seq, m.cold) for m in across][:6] == [(s, True) for s in range(count - 14, count - 9)] + [
        (count - 9, False)]


def test_delete_through_the_middle_of_a_cold_bucket(store: AnyStore) -> None:
    count = COLD_BUCKET_MESSAGES + 20
    _store_with_messages(store, count)
    with store.transaction():
        store.archive_through("d:1", count - 5)
        assert store.delete_through("d:1", 100) == 100
    assert store.message_counts() == (5, count - 105)
    assert store.get_message("d:1", 100) is None
    first = store.get_message("d:1", 101)
    assert first is not None and first.cold
    oldest = store.messages("d:1", history_window(None, 0, 3))
    assert [m.seq for m in oldest] == [101, 102, 103]


def test_last_seq_before_looks_inside_cold_buckets(store: AnyStore) -> None:
    _store_with_messages(store, 50)  # message i was created at time i
    with store.transaction():
        store.archive_through("d:1", 40)
    assert store.last_seq_before(20.5) == {"d:1": 20}  # inside the cold bucket
    assert store.last_seq_before(45.5) == {"d:1": 45}  # in the hot table
    assert store.last_seq_before(0.5) == {}


def test_an_interrupted_archive_is_read_once_and_repaired() -> None:
    store = SQLiteStore()
    _store_with_messages(store, 10)
    with store.transaction():  # what a crash between the two files' commits leaves behind
        rows = store._connection.execute(
            "SELECT message_id, conversation_id, seq, sender_id, content, created_at, "
            "client_message_id, attachments FROM messages WHERE seq <= 6 ORDER BY seq"
        ).fetchall()
        store.archive_through("d:1", 6)
        store._connection.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r[1], r[2], r[0], *r[3:]) for r in rows],
        )
    everything = store.messages("d:1", history_window(None, 0, 100))
    assert [m.seq for m in everything] == list(range(1, 11))
    assert not any(m.cold for m in everything)
    with store.transaction():
        assert store.archive_through("d:1", 6) == 6
    assert store.message_counts() == (4, 6)
    assert [m.cold for m in store.messages("d:1", history_window(None, 0, 100))] == [True] * 6 + [False] * 4


def _old_file(path: Path) -> None:
    """A database file as written before 1:1 receipts moved into ``conversations``: no
    receipt columns there, both 1:1 receipts as rows of ``receipts``."""
    new_columns = (
        ",\n    creator_seen_seq INTEGER NOT NULL DEFAULT 0, other_seen_seq INTEGER NOT NULL "
        "DEFAULT 0\n"
    )
    assert new_columns in _SCHEMA
    connection = sqlite3.connect(str(path), isolation_level=None)
    connection.execute("ATTACH DATABASE ? AS cold", (f"{path}.cold",))
    connection.executescript(_SCHEMA.replace(new_columns, "\n"))
    connection.executescript(
        "INSERT INTO users VALUES ('alice', 'alice', 0), ('bob', 'bob', 0);"
        "INSERT INTO conversations (conversation_id, kind, title, creator_id, created_at, "
        "last_seq, updated_at) VALUES ('d:1', 'direct', 'alice & bob', 'alice', 0, 3, 3);"
        "INSERT INTO members VALUES ('d:1', 'alice', 0), ('d:1', 'bob', 0);"
        "INSERT INTO direct_pairs VALUES ('alice', 'bob', 'd:1');"
        "INSERT INTO receipts VALUES ('d:1', 'alice', 3), ('d:1', 'bob', 1);"
    )
    connection.close()


def test_a_file_from_before_the_direct_receipt_columns_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    store = SQLiteStore(path)
    columns = [r[1] for r in store._connection.execute("PRAGMA table_info(conversations)")]
    assert columns[-2:] == ["creator_seen_seq", "other_seen_seq"]
    assert (store.get_seen("d:1", "alice"), store.get_seen("d:1", "bob")) == (3, 1)
    assert store.seen_by("d:1", 2) == ("alice",)
    with store.transaction():
        store.set_seen("d:1", "bob", 3)  # written to the row; the old receipt row stays behind
    assert (store.get_seen("d:1", "alice"), store.get_seen("d:1", "bob")) == (3, 3)
    assert store.seen_by("d:1", 3) == ("alice", "bob")
    store.close()
    again = SQLiteStore(path)  # upgraded once: opening it again changes nothing
    assert (again.get_seen("d:1", "alice"), again.get_seen("d:1", "bob")) == (3, 3)
    assert again.seen_by("d:1", 3) == ("alice", "bob")
    again.close()


def test_direct_receipts_live_in_the_conversation_row(store: AnyStore) -> None:
    _store_with_messages(store, 3)
    with store.transaction():
        store.add_user("carol", "Carol", 0.0)
        store.set_seen("d:1", "alice", 3)  # the creator
        store.set_seen("d:1", "bob", 2)  # the other member
    assert _count(store, "receipts") == 0
    assert (store.get_seen("d:1", "alice"), store.get_seen("d:1", "bob")) == (3, 2)
    assert store.seen_by("d:1", 3) == ("alice",) and store.seen_by("d:1", 2) == ("alice", "bob")
    # the store does not enforce membership, but a stranger's receipt never lands on a member's
    with store.transaction():
        store.set_seen("d:1", "carol", 1)
    assert (store.get_seen("d:1", "alice"), store.get_seen("d:1", "bob")) == (3, 2)
    assert store.seen_by("d:1", 1) == ("alice", "bob")


def test_group_receipts_stay_rows_of_receipts(store: AnyStore) -> None:
    _store_with_messages(store, 1)
    with store.transaction():
        store.add_conversation(
            Conversation("g:2", "group", "team", "alice", 0.0), ("alice", "bob"), None
        )
        store.set_seen("g:2", "bob", 4)
    assert list(store._connection.execute("SELECT * FROM receipts").fetchall()) == [("g:2", "bob", 4)]
    assert (store.get_seen("g:2", "alice"), store.get_seen("g:2", "bob")) == (0, 4)
    assert store.seen_by("g:2", 4) == ("bob",)
