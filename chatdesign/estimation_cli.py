"""``python -m chatdesign estimate``: a messenger back-of-the-envelope from the shell.

Example: ``python -m chatdesign estimate --dau 50M --messages-per-user 40 --bytes-per-message 100B``.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from chatdesign.cli import argument_type
from chatdesign.estimation import (
    estimate_bandwidth,
    estimate_connections,
    estimate_storage,
    estimate_traffic,
)
from chatdesign.units import format_bitrate, format_bytes, format_count, parse_bytes, parse_count, parse_duration


def add_subcommand(subparsers: Any) -> None:
    """Register ``estimate`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "estimate",
        help="traffic, storage, connections and bandwidth for a chat service",
        description="Back-of-the-envelope estimate for a messenger (notebook 01 explains each line).",
    )
    parser.add_argument(
        "--dau", type=argument_type(parse_count), default=parse_count("50M"), help="daily active users (50M)"
    )
    parser.add_argument("--messages-per-user", type=float, default=40.0, help="messages sent per user per day (40)")
    parser.add_argument("--peak-factor", type=float, default=2.0, help="peak rps / average rps (2)")
    parser.add_argument(
        "--bytes-per-message", type=argument_type(parse_bytes), default=parse_bytes("100 B"), help="100B"
    )
    parser.add_argument("--media-fraction", type=float, default=0.0, help="share of messages with media (0)")
    parser.add_argument(
        "--media-size", type=argument_type(parse_bytes), default=0, help="bytes per media item, e.g. 200KB"
    )
    parser.add_argument(
        "--retention", type=argument_type(parse_duration), default=parse_duration("5 y"), help="history kept (5y)"
    )
    parser.add_argument("--replicas", type=float, default=3.0, help="copies of each byte stored (3)")
    parser.add_argument("--online-share", type=float, default=0.1, help="share of DAU connected at peak (0.1)")
    parser.add_argument("--group-fanout", type=float, default=1.0, help="receivers per message (1 = 1:1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the estimate as a two-column table."""
    if not 0 <= args.online_share <= 1:
        raise ValueError(f"--online-share is a fraction between 0 and 1, got {args.online_share}")
    traffic = estimate_traffic(args.dau, args.messages_per_user, args.peak_factor, args.group_fanout)
    storage = estimate_storage(
        traffic.per_day,
        args.bytes_per_message,
        args.retention / 86_400,
        args.replicas,
        args.media_fraction,
        args.media_size,
    )
    connections = estimate_connections(args.dau * args.online_share)
    bandwidth = estimate_bandwidth(
        float(traffic.peak_rps), args.bytes_per_message + args.media_fraction * args.media_size, args.group_fanout
    )
    rows = {
        "messages per day": format_count(float(traffic.per_day)),
        "average send rps": format_count(float(traffic.average_rps)),
        "peak send rps": format_count(float(traffic.peak_rps)),
        "peak delivery rps": format_count(float(traffic.read_peak_rps)),
        "storage per day (one copy)": format_bytes(float(storage.per_day_bytes)),
        "storage over retention (all replicas)": format_bytes(float(storage.total_bytes)),
        "concurrent connections": format_count(connections.connections),
        "connection memory": format_bytes(connections.memory_bytes),
        "connection servers": str(connections.servers),
        "peak ingress": format_bitrate(bandwidth.ingress_bps),
        "peak egress": format_bitrate(bandwidth.egress_bps),
    }
    print(pd.Series(rows, name="estimate").to_string())
    return 0
