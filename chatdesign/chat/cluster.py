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

from dataclasses import dataclass

from chatdesign.chat.core import MAX_WORKER_ID
from chatdesign.chat.routing import _NODE_ID, DEFAULT_ROUTE_TTL_S
from chatdesign.checks import check_number, check_whole


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
