"""``python -m chatdesign token USER DEVICE --data DIR``: print a token for a device.

The last line of the output is the token alone (HMAC-SHA256 over user, device and expiry with
the directory's secret, created with mode 0600 on first use). USER is registered if new.
Explained in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatdesign.chat.auth import DEFAULT_TOKEN_TTL_S, TokenAuthority, load_or_create_secret
from chatdesign.chat.core import validate_device_id
from chatdesign.chat.errors import ChatError
from chatdesign.chat.server import ChatServer
from chatdesign.chat.ws import DATABASE_FILE
from chatdesign.cli import argument_type
from chatdesign.units import parse_duration


def add_subcommand(subparsers: Any) -> None:
    """Register ``token`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "token",
        help="print a login token for a user's device (registers the user if new)",
        description="Print a token for USER's DEVICE; its last line is the token alone.",
    )
    add = parser.add_argument
    add("user", metavar="USER", help="user id (1-64 letters, digits, '_', '.', '-')")
    add("device", metavar="DEVICE", help="device id (same rule)")
    add("--data", required=True, help="the server's data directory")
    add("--ttl", type=argument_type(parse_duration), default=DEFAULT_TOKEN_TTL_S,
        help="how long the token is valid, e.g. 1 h or 30 d (30 d)")
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    """Register the user if needed, print the token; 0 on success."""
    import time

    data = Path(args.data)
    try:
        validate_device_id(args.device)
        authority = TokenAuthority(load_or_create_secret(data), time.time)
        with ChatServer(data / DATABASE_FILE) as chat:
            if not chat.has_user(args.user):
                chat.register_user(args.user)
                print(f"registered user {args.user}")
        token = authority.issue(args.user, args.device, args.ttl)
    except ChatError as error:
        raise ValueError(error.message) from None
    print(f"token for {args.user}/{args.device}, valid for {args.ttl:g} s:")
    print(token)
    return 0
