"""Chat store benchmark: send rate against a plain sqlite3 insert loop, and history-read latency.

1. ``send_message`` throughput on a file database, as a ratio to a plain ``sqlite3`` loop that
   inserts rows into a table shaped like ``messages`` -- measured in the same run, with the
   same durability: one committed transaction per message, the same ``journal_mode`` (WAL) and
   ``synchronous`` setting. Goal: ratio >= 0.5.
2. ``fetch_messages`` latency (p50, p99) with 1 M stored messages over 10 k conversations.
   Goal: p99 < 5 ms. Baseline: the same page read with one plain ``sqlite3`` query on the
   same file (the ratio is the server's p99 over the plain query's p99). The 10 k
   conversations are created through ``send_message``; the rest of
   the history is loaded with the bulk path ``SQLiteStore.import_messages`` (many rows per
   transaction, the same tables and indexes), because a million one-by-one sends would take
   most of the time budget without changing what the reads see.

Run: ``.venv/bin/python benchmarks/chat_store.py`` (``--quick`` for a small run). Prints one
``BENCH-RESULT`` line per figure (``benchmarks/_report.py``) for ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import result

from chatdesign.chat import ChatServer, Message, SQLiteStore
from chatdesign.chat.core import send_fingerprint
from chatdesign.units import format_count, format_duration

SEED = 2026


def send_rates(root: Path, count: int, synchronous: str, users: int, rounds: int = 10) -> tuple[float, float]:
    """(plain insert loop, ``send_message``) in messages per second.

    The two alternate in ``rounds`` chunks, so that both see the same disk (fsync times on a
    shared machine drift by tens of percent over a minute). The plain loop inserts one row per
    transaction into a table shaped like ``messages``; ``send_message`` sends 1:1 messages
    over ``5 x users`` pairs of users picked at random (so most sends go to an existing
    conversation, as in real traffic; the first message of a pair also creates it).
    """
    plain = sqlite3.connect(str(root / "baseline.db"), isolation_level=None)
    plain.execute("PRAGMA journal_mode=WAL")
    plain.execute(f"PRAGMA synchronous={synchronous}")
    plain.execute(
        "CREATE TABLE messages (conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, "
        "message_id INTEGER NOT NULL, sender_id TEXT NOT NULL, content TEXT NOT NULL, "
        "created_at REAL NOT NULL, client_message_id TEXT NOT NULL, attachments TEXT NOT NULL, "
        "PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID"
    )
    rng = np.random.default_rng(SEED)
    everyone = rng.permutation(users * 10) % users
    partners = (everyone + rng.integers(1, users, size=everyone.size)) % users
    chosen = rng.integers(everyone.size // 2, size=count)  # 5 x users distinct-ish pairs
    plain_s = server_s = 0.0
    with ChatServer(root / "sends.db", synchronous=synchronous) as server:  # type: ignore[arg-type]
        for u in range(users):
            server.register_user(f"user{u}")
        chunk = count // rounds
        for start in range(0, chunk * rounds, chunk):
            began = time.perf_counter()
            for i in range(start, start + chunk):
                plain.execute("BEGIN IMMEDIATE")
                plain.execute(
                    "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"d:{i % 500}", i // 500 + 1, i, "user1", f"message number {i}",
                     time.time(), f"k{i}", ""),
                )
                plain.execute("COMMIT")
            plain_s += time.perf_counter() - began
            began = time.perf_counter()
            for i in range(start, start + chunk):
                a, b = int(everyone[chosen[i]]), int(partners[chosen[i]])
                a, b = (a, b) if i % 2 else (b, a)  # both directions of a pair
                server.send_message(f"user{a}", f"user{b}", f"message number {i}", f"k{i}")
            server_s += time.perf_counter() - began
    plain.close()
    done = chunk * rounds
    return done / plain_s, done / server_s


def build_history(path: Path, stored: int, conversations: int, synchronous: str) -> list[str]:
    """A database with ``stored`` messages over ``conversations`` 1:1 conversations."""
    users = 2
    while users * (users - 1) // 2 < conversations:
        users += 1
    pairs = [(a, b) for a in range(users) for b in range(a + 1, users)][:conversations]
    ids: list[str] = []
    with ChatServer(path, synchronous=synchronous) as server:  # type: ignore[arg-type]
        for u in range(users):
            server.register_user(f"user{u}")
        for i, (a, b) in enumerate(pairs):
            ids.append(server.send_message(f"user{a}", f"user{b}", "hello", f"first{i}").conversation_id)
    store = SQLiteStore(path, synchronous=synchronous)  # type: ignore[arg-type]
    remaining = stored - conversations
    now = time.time()
    batch: list[Message] = []
    for n in range(remaining):
        index = n % conversations
        a, b = pairs[index]
        sender = f"user{a if n % 2 else b}"
        seq = n // conversations + 2
        content = f"history message {n} in a conversation"
        batch.append(Message(10_000_000 + n, ids[index], seq, sender, content, now, f"h{n}"))
        if len(batch) == 50_000 or n == remaining - 1:
            with store.transaction():
                store.import_messages(
                    batch, [send_fingerprint(m.conversation_id, m.content, ()) for m in batch]
                )
            batch = []
    store.close()
    return ids


def plain_fetch_latencies_ms(path: Path, conversation_ids: list[str], reads: int) -> np.ndarray:
    """The baseline: the same pages (same seed, same picks) read with one plain ``sqlite3``
    query each on the same file, no server, no validation, no cold-store probe."""
    rng = np.random.default_rng(SEED + 1)
    latencies = np.empty(reads)
    connection = sqlite3.connect(str(path))
    picks = rng.integers(len(conversation_ids), size=reads)
    scroll = rng.random(reads) < 0.5
    for i, pick in enumerate(picks):
        cid = conversation_ids[pick]
        before = int(rng.integers(2, 100)) if scroll[i] else 2**62
        started = time.perf_counter_ns()
        rows = connection.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT 50",
            (cid, before),
        ).fetchall()
        latencies[i] = (time.perf_counter_ns() - started) / 1e6
        assert rows
    connection.close()
    return latencies


def fetch_latencies_ms(path: Path, conversation_ids: list[str], reads: int) -> np.ndarray:
    """Latency of ``fetch_messages`` (newest 50, or 50 before a random seq), in ms."""
    rng = np.random.default_rng(SEED + 1)
    latencies = np.empty(reads)
    with ChatServer(path) as server:
        members = {cid: server.members(cid)[0] for cid in conversation_ids}
        picks = rng.integers(len(conversation_ids), size=reads)
        scroll = rng.random(reads) < 0.5
        for i, pick in enumerate(picks):
            cid = conversation_ids[pick]
            before = int(rng.integers(2, 100)) if scroll[i] else None
            started = time.perf_counter_ns()
            page = server.fetch_messages(members[cid], cid, before_seq=before, limit=50)
            latencies[i] = (time.perf_counter_ns() - started) / 1e6
            assert page
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (seconds)")
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL"])
    args = parser.parse_args(argv)
    sends, stored, conversations, reads = (
        (5_000, 100_000, 1_000, 2_000) if args.quick else (100_000, 1_000_000, 10_000, 10_000)
    )
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"settings: journal_mode=WAL, synchronous={args.synchronous}, one transaction per "
          "message, plain loop and send_message alternating in 10 rounds;\n"
          f"  {format_count(sends)} sends, {format_count(stored)} stored messages over "
          f"{format_count(conversations)} conversations, {format_count(reads)} reads, seed {SEED}")
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as directory:
        root = Path(directory)
        started = time.perf_counter()
        print(f"sending {format_count(sends)} messages (plain loop and send_message) ...", flush=True)
        baseline, server = send_rates(root, sends, args.synchronous, users=1_000)
        print(f"plain sqlite3 insert loop: {baseline:,.0f} msg/s")
        print(f"send_message:              {server:,.0f} msg/s")
        print(f"ratio send_message / plain insert: {server / baseline:.2f} (goal >= 0.5)")
        result("send_message rate, one commit per message", server, "msg/s", "ratio >= 0.5",
               server / baseline >= 0.5, "plain sqlite3 insert loop", baseline, server / baseline)
        print(f"building a history of {format_count(stored)} messages ...", flush=True)
        ids = build_history(root / "history.db", stored, conversations, args.synchronous)
        print(f"reading {format_count(reads)} pages ...", flush=True)
        latencies = fetch_latencies_ms(root / "history.db", ids, reads)
        plain = plain_fetch_latencies_ms(root / "history.db", ids, reads)
        p50, p99 = np.percentile(latencies, [50, 99])
        plain_p99 = float(np.percentile(plain, 99))
        print(f"fetch_messages at {format_count(stored)} messages: p50 {p50:.3f} ms, "
              f"p99 {p99:.3f} ms (goal p99 < 5 ms); plain query p99 {plain_p99:.3f} ms")
        result(f"fetch_messages p99 at {format_count(stored)} messages", float(p99), "ms",
               "p99 < 5 ms", bool(p99 < 5), "plain sqlite3 query, same pages", plain_p99,
               float(p99) / plain_p99)
        print(f"total run time: {format_duration(time.perf_counter() - started)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
