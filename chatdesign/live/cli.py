"""``python -m chatdesign simulate-live``: the vectorised live-delivery simulation from the shell.

Example: ``python -m chatdesign simulate-live --viewers 1M --duration 300``. Prints the headline
numbers, per-layer latency percentiles and the busiest PoPs, what the map's PoPs admit per
segment (capacity is derived from their servers and links unless ``--pop-capacity-rps`` says
otherwise: a number, or ``none``) and how many requests were refused, then the wall time and
peak memory. Runs of more than about ten million requests print a progress line to stderr.
The model is explained in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any, TextIO

from chatdesign.cli import argument_type
from chatdesign.live.arrivals import HERD_SPREAD, LiveScenario
from chatdesign.live.simulate import ProgressCallback, run_vectorised
from chatdesign.units import format_bytes, format_duration, parse_count, parse_duration

PROGRESS_ABOVE_REQUESTS = 10_000_000
"""Runs with more requests than this (a few seconds or more) report progress on stderr."""


def _whole_count(text: str) -> float:
    value = parse_count(text)
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number")
    return value


def _capacity(text: str) -> float | str | None:
    if text.strip() in ("derived", "none"):
        return None if text.strip() == "none" else "derived"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number of requests per second, 'derived' nor 'none'") from None


def add_subcommand(subparsers: Any) -> None:
    """Register ``simulate-live`` on the top-level parser's subparsers."""
    parser = subparsers.add_parser(
        "simulate-live",
        help="simulate viewers of one live stream through edge and origin caches",
        description="Vectorised live-video delivery simulation (notebook 08 explains it).",
    )
    add = parser.add_argument
    add("--viewers", type=argument_type(_whole_count), default=1_000_000.0,
        help="concurrent viewers, e.g. 1M (1M)")
    add("--duration", type=argument_type(parse_duration), default=300.0,
        help="stream length, e.g. 300 s or 5 min (300 s)")
    add("--segment", type=argument_type(parse_duration), default=1.0,
        help="segment length, e.g. 1 s or 3 s (1 s)")
    add("--pops", type=int, default=20, help="points of presence (20)")
    add("--origin-caches", type=int, default=1, help="origin-cache sites (1)")
    add("--no-coalescing", action="store_true", help="turn request coalescing off")
    add("--push", choices=("none", "all", "watched"), default="none",
        help="push each segment to all PoPs or to those watched last segment (none)")
    add("--pop-capacity-rps", type=_capacity, default="derived",
        help="requests per second one PoP admits: 'derived' from its servers and links, a "
             "number for every PoP, or 'none' for no limit (derived)")
    add("--queueing", action="store_true",
        help="each PoP's servers queue requests: waiting and transfer time count in latency")
    add("--overflow", choices=("spill", "refuse"), default="spill",
        help="what happens above capacity (spill)")
    add("--ramp", type=argument_type(parse_duration), default=0.0,
        help="viewers join over this long, a flash crowd (0 s)")
    add("--herd-spread", type=float, default=HERD_SPREAD,
        help="share of the playlist refresh interval over which players ask for a new segment "
             f"(calibrated, {HERD_SPREAD:g})")
    add("--herd-window", type=argument_type(parse_duration), default=None,
        help="the players' spread in seconds, overriding --herd-spread (unset)")
    add("--playlist-refresh", type=argument_type(parse_duration), default=None,
        help="how often players re-read the playlist (the segment length)")
    add("--clock-offset", type=argument_type(parse_duration), default=0.0,
        help="players' clocks are up to this far behind the packager's (0 s)")
    add("--jitter", type=argument_type(parse_duration), default=0.02,
        help="network jitter per request, up to (20 ms)")
    add("--seed", type=int, default=0, help="random seed of the topology and, by default, the traffic (0)")
    add("--traffic-seed", type=int, default=None,
        help="random seed of the traffic alone, to rerun it over the same map (--seed)")
    parser.set_defaults(handler=run)


def progress_printer(stream: TextIO) -> ProgressCallback:
    """A callback that prints ``simulating: segment k/n (p %)`` every 10 %: rewritten in place on
    a terminal, as whole lines when the stream is a file or a pipe (a CI log, ``2> log``)."""
    last_tenth = [-1]
    in_place = stream.isatty()

    def report(done: int, total: int) -> None:
        tenth = 10 * done // total
        if tenth != last_tenth[0]:
            last_tenth[0] = tenth
            line = f"simulating: segment {done}/{total} ({100 * done // total} %)"
            if in_place:
                print(f"\r{line}", end="\n" if done == total else "", file=stream, flush=True)
            else:
                print(line, file=stream, flush=True)

    return report


def run(args: argparse.Namespace) -> int:
    """Run the simulation and print its tables."""
    scenario = LiveScenario(
        int(args.viewers), args.duration, segment_s=args.segment, pops=args.pops,
        origin_caches=args.origin_caches, coalescing=not args.no_coalescing,
        push=args.push != "none", push_to="watched" if args.push == "watched" else "all",
        pop_capacity_rps=args.pop_capacity_rps, overflow=args.overflow, ramp_s=args.ramp,
        seed=args.seed, herd_spread=args.herd_spread, herd_window_s=args.herd_window,
        playlist_refresh_s=args.playlist_refresh, clock_offset_s=args.clock_offset,
        jitter_s=args.jitter, traffic_seed=args.traffic_seed, queueing=args.queueing,
    )
    expected_requests = scenario.viewers * scenario.segments
    progress = progress_printer(sys.stderr) if expected_requests > PROGRESS_ABOVE_REQUESTS else None
    started = time.perf_counter()
    result = run_vectorised(scenario, progress)
    elapsed = time.perf_counter() - started
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(result.to_frame()["text"].to_string())
    print()
    print(result.latency.to_string())
    print()
    busiest = result.pop_load.sort_values("peak_served_per_segment", ascending=False).head(5)
    print(busiest[["requests", "served", "spilled_out", "spilled_in", "refused", "capacity_rps",
                   "peak_rps", "peak_rps_10ms", "burst_over_capacity",
                   "mean_queue_wait_ms"]].to_string())
    print()
    if scenario.pop_capacity_rps is None:
        print("PoP capacity: no limit (--pop-capacity-rps none)")
    else:
        admitted = int(result.pop_load["capacity_per_segment"].sum())
        how = ("derived from servers and links" if scenario.pop_capacity_rps == "derived"
               else f"{scenario.pop_capacity_rps:g} requests/s each")
        print(f"PoP capacity ({how}): the {scenario.pops} PoPs admit at most {admitted:,} "
              f"requests per segment, so the map carries at most {admitted:,} viewers; "
              f"{result.refused:,} of {result.requests:,} requests were refused")
    print(f"ran in {format_duration(elapsed)}, peak memory (max RSS) {format_bytes(peak_bytes)}")
    return 0
