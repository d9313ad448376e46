"""``python -m chatdesign serve``: the chat service on WebSockets, with its web page.

Example: ``python -m chatdesign serve --host 127.0.0.1 --port 8765 --data ./chatdata --demo``,
then open ``http://127.0.0.1:8765/``. Ctrl-C or SIGTERM stop it cleanly: queued sends are
committed and acknowledged, connections are closed with code 1001, the database is closed.
Explained in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from chatdesign.chat.ws import ChatNetworkServer, ServerSettings, is_loopback, run_server


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
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    """Serve until SIGINT/SIGTERM; returns 0 after a clean shutdown."""
    if args.demo and not is_loopback(args.host):
        raise ValueError("--demo logs anyone in without a password: use a loopback --host")
    settings = ServerSettings(demo=args.demo, synchronous=args.synchronous)

    def ready(server: ChatNetworkServer) -> None:
        print(f"chat server listening on {server.url} (WebSocket {server.ws_url})", flush=True)

    asyncio.run(run_server(args.data, args.host, args.port, settings, ready))
    print("chat server stopped", flush=True)
    sys.stdout.flush()
    return 0
