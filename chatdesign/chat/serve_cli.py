"""``python -m chatdesign serve``: the chat service on WebSockets, with its web page.

Example: ``python -m chatdesign serve --host 127.0.0.1 --port 8765 --data ./chatdata --demo``,
then open ``http://127.0.0.1:8765/``. Ctrl-C or SIGTERM stop it cleanly: queued sends are
committed and acknowledged, connections are closed with code 1001, the database is closed.
Explained in ``notebooks/06_connections.ipynb``.

Hidden flag, for tests of a running cluster only: ``--presence-test-timings`` uses
:data:`~chatdesign.presence.cluster.TEST_PRESENCE_POLICY` (beat every 0.5 s, offline 4 s after
the last beat, pushed within 1-2 s) and a 0.25 s presence tick, so a test can watch a user go
offline after a node's death in seconds (``LocalCluster(..., presence_test_timings=True)``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from typing import Any

from chatdesign.chat.cluster import ClusterSettings
from chatdesign.chat.core import MAX_WORKER_ID
from chatdesign.chat.ws import ChatNetworkServer, ServerSettings, is_loopback, run_server
from chatdesign.presence.cluster import TEST_PRESENCE_POLICY


def add_subcommand(subparsers: Any) -> None:
    """Register ``serve`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "serve",
        help="run the chat service (WebSockets + web page) on one port",
        description="The chat service: ws://HOST:PORT/ws and the page at http://HOST:PORT/.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    add("--port", type=int, default=8765, help="port; 0 picks a free one (8765)")
    add("--data", required=True, help="data directory: database, attachments, token secret")
    add("--demo", action="store_true",
        help="create demo users with history and let the page log in as them (loopback only)")
    add("--synchronous", choices=("OFF", "NORMAL", "FULL", "EXTRA"), default="FULL",
        help="SQLite synchronous setting (FULL: an acked message survives a power cut)")
    many = parser.add_argument_group("many servers", "run this process as one node of several")
    many.add_argument("--database", metavar="URL",
                      help="postgresql://user@host:port/db: a PostgreSQL store shared by every node "
                           "(default: SQLite in --data)")
    many.add_argument("--redis", metavar="URL",
                      help="redis://host:port/0: route messages to devices connected to other nodes")
    many.add_argument("--node-id", default="node-0",
                      help="this node's name, unique among the nodes (its Redis channel) (node-0)")
    many.add_argument("--worker-id", type=int, default=0,
                      help=f"snowflake worker id, unique among the nodes, 0-{MAX_WORKER_ID} (0)")
    add("--presence-test-timings", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    """Serve until SIGINT/SIGTERM; returns 0 after a clean shutdown."""
    if args.demo and not is_loopback(args.host):
        raise ValueError("--demo logs anyone in without a password: use a loopback --host")
    settings = ServerSettings(demo=args.demo, synchronous=args.synchronous)
    if getattr(args, "presence_test_timings", False):
        settings = replace(settings, presence_policy=TEST_PRESENCE_POLICY, presence_flush_s=0.25)
    try:
        cluster = ClusterSettings(database_url=args.database, redis_url=args.redis, node_id=args.node_id,
                                  worker_id=args.worker_id)
    except ValueError as error:
        raise ValueError(f"--database/--redis/--node-id/--worker-id: {error}") from None

    def ready(server: ChatNetworkServer) -> None:
        print(f"chat server listening on {server.url} (WebSocket {server.ws_url})", flush=True)

    asyncio.run(run_server(args.data, args.host, args.port, settings, ready, cluster=cluster))
    print("chat server stopped", flush=True)
    sys.stdout.flush()
    return 0
