"""Settings for running the chat service as several server processes ("nodes"): a shared
PostgreSQL store and Redis for routing messages between the nodes.

One process with SQLite in its data directory is the embedded default; ``serve --database
postgresql://... --redis redis://... --node-id NAME --worker-id N`` makes it one node of many.
Every node of one service shares the database, the Redis server and the data directory's token
secret; each needs its own ``node_id`` (its Redis channel) and ``worker_id`` (the snowflake
worker bits, so message ids never collide). See :mod:`chatdesign.chat.routing` for how messages
cross nodes, and :mod:`chatdesign.chat.postgres` for what keeps ``seq`` and idempotency right
when several nodes write at once.

Taught in ``notebooks/06_connections.ipynb`` ("many servers").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import redis

from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.core import MAX_WORKER_ID
from chatdesign.chat.postgres import PostgresStore
from chatdesign.chat.routing import _NODE_ID, DEFAULT_ROUTE_TTL_S, ROUTE_PREFIX
from chatdesign.chat.server import ChatServer
from chatdesign.checks import check_number, check_whole
from chatdesign.services import start_postgres, start_redis

if TYPE_CHECKING:
    from chatdesign.chat.loopback import ServerProcess


@dataclass(frozen=True)
class ClusterSettings:
    """Where the shared store and the router live, and who this node is.

    ``database_url``: ``postgresql://...`` for a shared :class:`PostgresStore` (``None``: SQLite
    in the data directory). ``redis_url``: ``redis://...`` for cross-node fan-out (``None``:
    this process delivers only to its own connections). ``route_ttl_s``: seconds a node's
    routing entries outlive its last refresh.
    """

    database_url: str | None = None
    redis_url: str | None = None
    node_id: str = "node-0"
    worker_id: int = 0
    route_ttl_s: float = DEFAULT_ROUTE_TTL_S

    def __post_init__(self) -> None:
        if self.database_url is not None and not str(self.database_url).startswith(("postgresql://", "postgres://")):
            raise ValueError(f"database_url must start with postgresql://, got {self.database_url!r}")
        if self.redis_url is not None and not str(self.redis_url).startswith(("redis://", "unix://")):
            raise ValueError(f"redis_url must start with redis://, got {self.redis_url!r}")
        if not isinstance(self.node_id, str) or not _NODE_ID.fullmatch(self.node_id):
            raise ValueError(f"node_id must be 1-64 letters, digits, '_', '.' or '-', got {self.node_id!r}")
        check_whole(self.worker_id, "worker_id", minimum=0, maximum=MAX_WORKER_ID)
        check_number(self.route_ttl_s, "route_ttl_s", minimum=0.1)


@dataclass(frozen=True)
class LocalNode:
    """One ``serve`` process of a :class:`LocalCluster`: its name and its process."""

    node_id: str
    server: ServerProcess

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/ws``."""
        return self.server.ws_url

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.server.running


class LocalCluster:
    """A whole multi-process chat service on this machine, for tests and notebook 06: a private
    PostgreSQL and Redis (:mod:`chatdesign.services`) and ``nodes`` processes of ``python -m
    chatdesign serve`` sharing them and one data directory (the token secret, attachments).

    ``with LocalCluster(3, data_dir) as cluster:`` starts everything and stops it on exit.
    :meth:`set_up` registers users and a group; :meth:`token` issues a device token;
    :meth:`kill` sends a node SIGKILL; :meth:`routing_table` reads who is held where.
    ``presence_test_timings=True`` starts the nodes with the hidden ``--presence-test-timings``
    (presence offline 4 s after the last heartbeat; see :mod:`chatdesign.chat.serve_cli`).
    Raises :class:`~chatdesign.services.ServiceUnavailable` if PostgreSQL or Redis is missing.
    """

    def __init__(self, nodes: int, data_dir: str | Path, presence_test_timings: bool = False) -> None:
        self.size = check_whole(nodes, "nodes", minimum=1, maximum=MAX_WORKER_ID)
        self.presence_test_timings = bool(presence_test_timings)
        self.data_dir = Path(data_dir)
        self.nodes: list[LocalNode] = []
        self.database_url = ""
        self.redis_url = ""
        self._stack = contextlib.ExitStack()

    def __repr__(self) -> str:
        alive = sum(node.alive for node in self.nodes)
        return f"LocalCluster({alive}/{len(self.nodes)} nodes alive)"

    def __enter__(self) -> LocalCluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.database_url = self._stack.enter_context(start_postgres()).url
            self.redis_url = self._stack.enter_context(start_redis()).url
            self._stack.callback(self._stop_nodes)
            for index in range(self.size):
                self.nodes.append(self._start_node(index))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start_node(self, index: int) -> LocalNode:
        from chatdesign.chat.loopback import ServerProcess  # loopback imports ws, which imports this module

        server = ServerProcess(self.data_dir, extra_args=[
            "--database", self.database_url, "--redis", self.redis_url,
            "--node-id", f"node-{index}", "--worker-id", str(index + 1),
            *(["--presence-test-timings"] if self.presence_test_timings else [])])
        server.start()
        return LocalNode(f"node-{index}", server)

    def _stop_nodes(self) -> None:
        for node in self.nodes:
            if node.alive:
                node.server.stop()

    def set_up(self, users: Sequence[str], group_title: str | None = None) -> str | None:
        """Register ``users`` in the shared store; with ``group_title``, create a group of them
        (the first user creates it) and return its id."""
        with ChatServer(store=PostgresStore(self.database_url), data_dir=self.data_dir, worker_id=0) as chat:
            for user in users:
                if not chat.has_user(user):
                    chat.register_user(user)
            if group_title is None:
                return None
            return chat.create_group(users[0], list(users[1:]), group_title)

    def token(self, user_id: str, device_id: str, ttl_s: float = 3600.0) -> str:
        """A token for a device of a registered user, valid on every node."""
        return TokenAuthority(load_or_create_secret(self.data_dir), time.time).issue(user_id, device_id, ttl_s)

    def kill(self, index: int) -> int:
        """SIGKILL node ``index`` (no goodbye to anyone); returns its exit code (-9)."""
        return self.nodes[index].server.kill()

    def routing_table(self) -> pd.DataFrame:
        """Who is held where right now: one row per (user, node) entry of the routing table,
        with the seconds until it expires unless refreshed."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            now = time.time()
            rows = []
            for key in sorted(client.scan_iter(match=f"{ROUTE_PREFIX}*")):
                user = key.decode()[len(ROUTE_PREFIX):]
                entries: list[tuple[bytes, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
                for node, expires in entries:
                    if expires > now:
                        rows.append({"user": user, "node": node.decode(), "expires_in_s": round(expires - now)})
        finally:
            client.close()
        return pd.DataFrame(rows, columns=["user", "node", "expires_in_s"])
