"""Many servers, one chat service: what crossing processes and a shared database cost.

1. **Durable sends/s, PostgreSQL against SQLite**, same run, same workload: 1:1 sends between
   random pairs of users through ``ChatServer.send_message``, one committed transaction per
   message, each returning only after its commit is durable (SQLite: WAL with
   ``synchronous=FULL``; PostgreSQL: ``synchronous_commit=on``, ``fsync=on``). The two
   alternate in rounds so both see the same disk. Baseline: SQLite.
2. **Delivery latency across processes against within one process**, same run, same sends:
   node A (this process) sends to a user whose device is on A (same process: delivered by
   the local fan-out) or on node B (a second process subscribed to its Redis channel:
   routed by :class:`~chatdesign.chat.routing.RedisRouter`). Latency is from the call to
   ``send_message`` to the message reaching the device's queue, commit included, on the same
   PostgreSQL store. Baseline: same-process p50/p99.

Loopback only; PostgreSQL and Redis are private instances started by ``chatdesign.services``.
Run: ``.venv/bin/python benchmarks/ws_scale.py`` (``--quick``: the same workloads with 200
durable sends per store and 100 sends per latency path). Prints one ``BENCH-RESULT`` line per
figure (``benchmarks/_report.py``) for ``make bench``; these figures measure a cost and have no
goal (``met`` null).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _report import result as report

from chatdesign.chat import ChatServer, Message
from chatdesign.chat.postgres import PostgresStore
from chatdesign.chat.routing import RedisRouter
from chatdesign.services import start_postgres, start_redis

SEED = 2026

_NODE_B = """
import json, sys, time
import redis
from chatdesign.chat import ChatServer, Message
from chatdesign.chat.postgres import PostgresStore
from chatdesign.chat.routing import RedisRouter
pg_url, namespace, redis_url, expected = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = redis.Redis.from_url(redis_url)
server = ChatServer(store=PostgresStore(pg_url, namespace), worker_id=2)
arrived = {}
def deliver(user_ids, message):
    arrived[message.message_id] = time.time()
router = RedisRouter(client, "b", deliver, time.time)
pubsub = client.pubsub(ignore_subscribe_messages=True)
pubsub.subscribe(router.channel)
router.register("bob")
print("ready", flush=True)
deadline = time.monotonic() + 120
while len(arrived) < expected and time.monotonic() < deadline:
    item = pubsub.get_message(timeout=1.0)
    if item is not None:
        router.handle(item["data"])
print(json.dumps(arrived), flush=True)
server.close()
"""


def durable_send_rates(pg_url: str, root: Path, count: int, users: int, rounds: int) -> tuple[float, float]:
    """(SQLite sends/s, PostgreSQL sends/s) on the same random 1:1 workload, alternating."""
    rng = np.random.default_rng(SEED)
    senders = rng.integers(users, size=count)
    recipients = (senders + rng.integers(1, users, size=count)) % users
    servers = {
        "sqlite": ChatServer(root / "sends.db", synchronous="FULL", clock=time.time),
        "postgres": ChatServer(store=PostgresStore(pg_url, f"bench_{uuid.uuid4().hex[:8]}"), clock=time.time),
    }
    for server in servers.values():
        for u in range(users):
            server.register_user(f"u{u}")
    elapsed = {name: 0.0 for name in servers}
    per_round = count // rounds
    for r in range(rounds):
        for name, server in servers.items():
            start = time.perf_counter()
            for i in range(r * per_round, (r + 1) * per_round):
                server.send_message(f"u{senders[i]}", f"u{recipients[i]}", "hello there", f"{name}-{i}")
            elapsed[name] += time.perf_counter() - start
    sent = per_round * rounds
    for server in servers.values():
        server.close()
    return sent / elapsed["sqlite"], sent / elapsed["postgres"]


def delivery_latencies(pg_url: str, redis_url: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(same-process, cross-process) send-to-delivery latencies in seconds, interleaved sends."""
    import redis

    namespace = f"lat_{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    server = ChatServer(store=PostgresStore(pg_url, namespace), worker_id=1, clock=time.time)
    for user in ("alice", "bob", "carol"):
        server.register_user(user)
    local_arrived: dict[int, float] = {}

    def deliver(user_ids: Sequence[str], message: Message) -> None:
        server.local_fanout.publish(user_ids, message)
        if "carol" in user_ids:
            local_arrived[message.message_id] = time.time()

    router = RedisRouter(client, "a", deliver, time.time)
    server.fanout = router
    router.register("carol")
    node_b = subprocess.Popen(
        [sys.executable, "-c", _NODE_B, pg_url, namespace, redis_url, str(count)],
        stdout=subprocess.PIPE, text=True,
    )
    assert node_b.stdout is not None
    if node_b.stdout.readline().strip() != "ready":
        raise RuntimeError("node b did not start")
    sent_at: dict[int, float] = {}
    sent_local: list[int] = []
    sent_remote: list[int] = []
    for i in range(count * 2):
        to = "carol" if i % 2 == 0 else "bob"
        start = time.time()
        message = server.send_message("alice", to, f"m{i}", f"k{i}")
        sent_at[message.message_id] = start
        (sent_local if to == "carol" else sent_remote).append(message.message_id)
        time.sleep(0.002)  # a steady stream, not a burst: latency, not queueing
    out, _ = node_b.communicate(timeout=180)
    remote_arrived = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    server.close()
    local = np.array([local_arrived[m] - sent_at[m] for m in sent_local])
    remote = np.array([remote_arrived[m] - sent_at[m] for m in sent_remote if m in remote_arrived])
    if remote.size < len(sent_remote):
        raise RuntimeError(f"{len(sent_remote) - remote.size} cross-process deliveries never arrived")
    return local, remote


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="200 durable sends, 100 per latency path")
    args = parser.parse_args()
    count, latency_count = (200, 100) if args.quick else (2_000, 1_000)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"settings: {count} durable sends per store in 10 alternating rounds over 200 users; "
          f"{latency_count} sends per latency path, 2 ms apart", flush=True)
    with start_postgres() as pg, start_redis() as rd, tempfile.TemporaryDirectory() as tmp:
        sqlite_rate, pg_rate = durable_send_rates(pg.url, Path(tmp), count, users=200, rounds=10)
        print(f"durable sends/s: SQLite {sqlite_rate:,.0f} (baseline), PostgreSQL {pg_rate:,.0f}, "
              f"ratio {pg_rate / sqlite_rate:.2f}", flush=True)
        report(f"durable sends/s, PostgreSQL ({count} sends)", pg_rate, "sends/s",
               "none (the cost of a shared database)", None, "SQLite WAL FULL, same sends",
               sqlite_rate, pg_rate / sqlite_rate)
        local, remote = delivery_latencies(pg.url, rd.url, latency_count)
    for name, q in (("p50", 50), ("p99", 99)):
        same, cross = np.percentile(local, q) * 1e3, np.percentile(remote, q) * 1e3
        print(f"delivery latency {name}: same process {same:.2f} ms (baseline), "
              f"cross process {cross:.2f} ms, ratio {cross / same:.2f}")
        report(f"delivery latency {name}, cross process via Redis ({latency_count} sends)", cross,
               "ms", "none (the cost of crossing processes)", None, "same process, same sends",
               same, cross / same)
    return 0  # it ran; the figures are in the BENCH-RESULT lines (benchmarks/_report.py)


if __name__ == "__main__":
    sys.exit(main())
