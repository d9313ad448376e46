"""``python -m chatdesign estimate``: a messenger back-of-the-envelope from the shell.

Example: ``python -m chatdesign estimate --dau 50M --messages-per-user 40 --bytes-per-message 100B``.
Each line is explained in ``notebooks/01_estimation.ipynb``.

Every flag is checked when it is parsed, so an error names the flag (``argument --receivers:
must be at least 1, got 0``) and shows an example of its own kind of value (a count ``50M``, a
size ``1.5 TB``, a duration ``5y``). A duration needs its unit: ``--retention 5`` is refused
rather than read as 5 seconds.
"""

from __future__ import annotations

import argparse
from typing import Any

from chatdesign.cli import argument_type, number_type
from chatdesign.estimation import estimate_messenger
from chatdesign.units import SECONDS_PER_DAY, parse_bytes, parse_count, parse_duration

FLAGS: dict[str, str] = {
    "daily_active_users": "--dau",
    "messages_per_user_per_day": "--messages-per-user",
    "peak_factor": "--peak-factor",
    "bytes_per_message": "--bytes-per-message",
    "media_fraction": "--media-fraction",
    "media_bytes": "--media-size",
    "retention_days": "--retention",
    "replication_factor": "--replicas",
    "online_share": "--online-share",
    "receivers_per_message": "--receivers",
}
"""The estimate's parameter names and the flags that set them, to word errors in flags."""


def _duration_with_unit(text: str) -> float:
    return parse_duration(text, require_unit=True)


def add_subcommand(subparsers: Any) -> None:
    """Register ``estimate`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "estimate",
        help="traffic, storage, connections and bandwidth for a chat service",
        description="Back-of-the-envelope estimate for a messenger (notebook 01 explains each line).",
    )
    add = parser.add_argument
    add("--dau", type=argument_type(parse_count), default=parse_count("50M"), help="daily active users, e.g. 50M (50M)")
    add("--messages-per-user", type=number_type(minimum=0), default=40.0,
        help="messages sent per user per day (40)")
    add("--peak-factor", type=number_type(minimum=1, example="2"), default=2.0, help="peak rps / average rps (2)")
    add("--bytes-per-message", type=argument_type(parse_bytes), default=100, help="text bytes per message (100B)")
    add("--media-fraction", type=number_type(minimum=0, maximum=1, example="0.02"), default=0.0,
        help="share of messages with media, 0 to 1 (0)")
    add("--media-size", type=argument_type(parse_bytes), default=0, help="bytes per media item, e.g. 200KB (0)")
    add("--retention", type=argument_type(_duration_with_unit), default=5 * 365 * SECONDS_PER_DAY,
        help="how long history is kept, with a unit: 90d, 5y (5y)")
    add("--replicas", type=number_type(minimum=1, example="3"), default=3.0, help="copies of each byte stored (3)")
    add("--online-share", type=number_type(minimum=0, maximum=1, example="0.1"), default=0.1,
        help="share of DAU connected at the peak, 0 to 1 (0.1)")
    add("--receivers", type=number_type(minimum=1, example="1"), default=1.0,
        help="receivers per message, at least 1 (1 = 1:1 chat)")
    parser.set_defaults(handler=run)


def in_flags(message: str) -> str:
    """An error message with the estimate's parameter names replaced by the flags that set them."""
    for name, flag in sorted(FLAGS.items(), key=lambda item: -len(item[0])):
        message = message.replace(name, flag)
    return message


def run(args: argparse.Namespace) -> int:
    """Print the estimate as a two-column table."""
    try:
        estimate = estimate_messenger(
            daily_active_users=args.dau,
            messages_per_user_per_day=args.messages_per_user,
            bytes_per_message=args.bytes_per_message,
            retention_days=args.retention / SECONDS_PER_DAY,
            peak_factor=args.peak_factor,
            receivers_per_message=args.receivers,
            media_fraction=args.media_fraction,
            media_bytes=args.media_size,
            replication_factor=args.replicas,
            online_share=args.online_share,
        )
    except ValueError as error:
        raise ValueError(in_flags(str(error))) from None
    print(estimate.summary().to_string())
    return 0
