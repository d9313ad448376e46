"""PostgresStore under several server processes at once, and ChatServer on top of it.

The store contract itself (transactions, cold buckets, receipts) runs against both stores in
``test_store.py``; here are what only a shared database has: concurrent writers in different
processes, and a schema that many processes create at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from chatdesign.chat import ChatServer, InvalidRequest, ManualClock
from chatdesign.chat.postgres import PostgresStore
from chatdesign.services import PostgresServer

pytestmark = pytest.mark.postgres

# One server process: sends `count` messages from alice into the group and `count` more with
# keys shared by every process (the same retried send arriving at several servers), plus a
# first 1:1 message between the same pair that every process races to create.
_WORKER = """
import json, sys
from chatdesign.chat import ChatServer, ManualClock
from chatdesign.chat.postgres import PostgresStore
url, namespace, worker, group, count = sys.argv[1:6]
worker, count = int(worker), int(count)
server = ChatServer(clock=ManualClock(1_750_000_000.0 + worker), worker_id=worker,
                    store=PostgresStore(url, namespace))
out = {"own": [], "shared": [], "direct": None}
for i in range(count):
    m = server.send_message("alice", group, f"w{worker} m{i}", f"own-{worker}-{i}")
    out["own"].append([m.seq, m.message_id])
    m = server.send_message("alice", group, f"shared {i}", f"shared-{i}")
    out["shared"].append([i, m.seq, m.message_id])
m = server.send_message("bob", "carol", "first!", f"first-{worker}")
out["direct"] = m.conversation_id
server.close()
print(json.dumps(out))
"""


@pytest.fixture
def namespace(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh schema name, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    store = PostgresStore(postgres_server.url, name)
    store.drop()
    store.close()


def test_processes_sending_at_once_keep_seq_gap_free_and_sends_idempotent(
    postgres_server: PostgresServer, namespace: str
) -> None:
    setup = ChatServer(clock=ManualClock(1_750_000_000.0), store=PostgresStore(postgres_server.url, namespace))
    for user in ("alice", "bob", "carol"):
        setup.register_user(user)
    group = setup.create_group("alice", ["bob", "carol"], "team")
    setup.close()

    workers, count = 4, 25
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, postgres_server.url, namespace, str(w + 1), group, str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in range(workers)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))

    own = [tuple(pair) for r in results for pair in r["own"]]
    shared = [tuple(triple) for r in results for triple in r["shared"]]
    # every retried key got one answer, the same in every process
    by_key: dict[int, set[tuple[int, int]]] = {}
    for key, seq, message_id in shared:
        by_key.setdefault(key, set()).add((seq, message_id))
    assert all(len(answers) == 1 for answers in by_key.values())
    stored_seqs = [seq for seq, _ in own] + [next(iter(a))[0] for a in by_key.values()]
    # gap-free and duplicate-free: exactly 1..N, N = own sends + one per shared key
    assert sorted(stored_seqs) == list(range(1, workers * count + count + 1))
    message_ids = [mid for _, mid in own] + [next(iter(a))[1] for a in by_key.values()]
    assert len(set(message_ids)) == len(message_ids)  # distinct worker ids: ids never collide
    # the racing first 1:1 messages created one conversation
    assert len({r["direct"] for r in results}) == 1

    check = ChatServer(clock=ManualClock(1_750_000_100.0), store=PostgresStore(postgres_server.url, namespace))
    history = check.fetch_messages("alice", group, limit=100)
    everything = []
    while history:
        everything += history
        history = check.fetch_messages("alice", group, before_seq=history[-1].seq, limit=100)
    assert [m.seq for m in everything] == list(range(workers * count + count, 0, -1))
    assert Counter(m.client_message_id for m in everything).most_common(1)[0][1] == 1
    direct = check.fetch_messages("bob", results[0]["direct"], limit=10)
    assert len(direct) == workers  # four different keys: four messages, one conversation
    check.close()


def test_many_processes_create_the_schema_once(postgres_server: PostgresServer, namespace: str) -> None:
    code = (
        "import sys; from chatdesign.chat.postgres import PostgresStore; "
        "s = PostgresStore(sys.argv[1], sys.argv[2]); print(s.message_counts()); s.close()"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, postgres_server.url, namespace],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert out.strip() == "(0, 0)"


def test_a_chat_server_on_postgres_survives_a_restart(postgres_server: PostgresServer, namespace: str) -> None:
    clock = ManualClock(1_750_000_000.0)
    first = ChatServer(clock=clock, store=PostgresStore(postgres_server.url, namespace))
    first.register_user("alice")
    first.register_user("bob")
    sent = first.send_message("alice", "bob", "hello", "k1")
    first.close()
    second = ChatServer(clock=clock, store=PostgresStore(postgres_server.url, namespace))
    assert second.send_message("alice", "bob", "hello", "k1") == sent  # the retry finds it
    after = second.send_message("alice", "bob", "again", "k2")
    assert after.seq == 2 and after.message_id > sent.message_id
    second.close()


def test_store_and_path_together_are_refused(postgres_server: PostgresServer, namespace: str) -> None:
    store = PostgresStore(postgres_server.url, namespace)
    with pytest.raises(ValueError, match="path or a store"):
        ChatServer("chat.db", store=store)
    store.close()


@pytest.mark.parametrize(
    ("url", "namespace", "message"),
    [
        ("sqlite:///x.db", "chat", "postgresql://"),
        ("postgresql://u@127.0.0.1:1/db", "Robert'); DROP", "namespace"),
        ("postgresql://u@127.0.0.1:1/db", "", "namespace"),
    ],
)
def test_bad_settings_are_refused_before_connecting(url: str, namespace: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresStore(url, namespace)


def test_a_failed_send_on_postgres_changes_nothing(postgres_server: PostgresServer, namespace: str) -> None:
    store = PostgresStore(postgres_server.url, namespace)
    server = ChatServer(clock=ManualClock(1_750_000_000.0), store=store)
    server.register_user("alice")
    server.register_user("bob")
    server.send_message("alice", "bob", "hello", "k1")
    before = store.dump()
    with pytest.raises(InvalidRequest):
        server.send_message("alice", "bob", "", "k2")
    assert store.dump() == before
    assert "PostgresStore(" in repr(store) and namespace in repr(store)
    server.close()
