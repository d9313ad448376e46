"""``python -m chatdesign estimate``: a messenger back-of-the-envelope from the shell.

Example: ``python -m chatdesign estimate --dau 50M --messages-per-user 40 --bytes-per-message 100B``.
Each line is explained in ``notebooks/01_estimation.ipynb``.
"""

from __future__ import annotations

import argparse
from typing import Any

from chatdesign.cli import argument_type
from chatdesign.estimation import estimate_messenger
from chatdesign.units import SECONDS_PER_DAY, parse_bytes, parse_count, parse_duration


def add_subcommand(subparsers: Any) -> None:
    """Register ``estimate`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "estimate",
        help="traffic, storage, connections and bandwidth for a chat service",
        description="Back-of-the-envelope estimate for a messenger (notebook 01 explains each line).",
    )
    add = parser.add_argument
    add("--dau", type=argument_type(parse_count), default=parse_count("50M"), help="daily active users (50M)")
    add("--messages-per-user", type=float, default=40.0, help="messages sent per user per day (40)")
    add("--peak-factor", type=float, default=2.0, help="peak rps / average rps (2)")
    add("--bytes-per-message", type=argument_type(parse_bytes), default=100, help="text bytes per message (100B)")
    add("--media-fraction", type=float, default=0.0, help="share of messages with media (0)")
    add("--media-size", type=argument_type(parse_bytes), default=0, help="bytes per media item, e.g. 200KB (0)")
    add("--retention", type=argument_type(parse_duration), default=5 * 365 * SECONDS_PER_DAY, help="e.g. 5y (5 y)")
    add("--replicas", type=float, default=3.0, help="copies of each byte stored (3)")
    add("--online-share", type=float, default=0.1, help="share of DAU connected at the peak (0.1)")
    add("--receivers", type=float, default=1.0, help="receivers per message (1 = 1:1 chat)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the estimate as a two-column table."""
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
    print(estimate.summary().to_string())
    return 0
