"""Live-delivery benchmark: the 1 M-viewer run, and the per-request speed against the SimPy oracle.

1. ``simulate_live`` with 1,000,000 viewers for 300 s of 1-s segments (300 M requests), all
   defaults (20 PoPs, coalescing). Goal: <= 10 s on a 2-core machine. Prints the wall time and
   the process's peak memory (max RSS, which includes the interpreter and libraries).
2. ``simulate_live_simpy`` on a small scenario (2,000 viewers x 10 s), in the same run; the
   vectorised model runs that scenario too and the two must agree on every counter. The speed
   ratio is the oracle's seconds per request over the 1 M run's. Goal: >= 100x.

Run: ``.venv/bin/python benchmarks/live_sim.py`` (``--quick`` for 100 k viewers x 60 s).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import time

import numpy as np

from chatdesign.live import simulate_live, simulate_live_simpy
from chatdesign.units import format_bytes, format_count, format_duration

ORACLE_VIEWERS = 2_000
ORACLE_DURATION_S = 10.0


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 k viewers x 60 s instead")
    args = parser.parse_args()
    viewers, duration_s = (100_000, 60.0) if args.quick else (1_000_000, 300.0)

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {np.__version__}")

    rss_before = peak_rss_bytes()
    started = time.perf_counter()
    big = simulate_live(viewers, duration_s)
    big_s = time.perf_counter() - started
    big_per_request = big_s / big.requests
    print(f"\nvectorised: {format_count(viewers)} viewers x {duration_s:g} s = "
          f"{format_count(big.requests)} requests in {format_duration(big_s)} "
          f"({format_count(big.requests / big_s)} requests/s), goal <= 10 s: "
          f"{'met' if big_s <= 10 else 'MISSED'}")
    print(f"peak memory (max RSS): {format_bytes(peak_rss_bytes())} "
          f"(before the run: {format_bytes(rss_before)})")
    print(f"edge hit ratio {big.edge_hit_ratio:.4%}, origin-server requests per segment "
          f"{big.origin_server_requests_per_segment:g}")

    started = time.perf_counter()
    oracle = simulate_live_simpy(ORACLE_VIEWERS, ORACLE_DURATION_S)
    oracle_s = time.perf_counter() - started
    small = simulate_live(ORACLE_VIEWERS, ORACLE_DURATION_S)
    agree = small.counters() == oracle.counters() and bool(
        np.array_equal(small.latency_histogram, oracle.latency_histogram))
    oracle_per_request = oracle_s / oracle.requests
    print(f"\nSimPy oracle: {format_count(ORACLE_VIEWERS)} viewers x {ORACLE_DURATION_S:g} s = "
          f"{format_count(oracle.requests)} requests in {format_duration(oracle_s)} "
          f"({format_count(oracle.requests / oracle_s)} requests/s); counters and latency "
          f"histograms {'agree' if agree else 'DISAGREE'} with the vectorised model")
    ratio = oracle_per_request / big_per_request
    print(f"per-request speed ratio (oracle s/request / vectorised s/request): {ratio:,.0f}x, "
          f"goal >= 100x: {'met' if ratio >= 100 else 'MISSED'}")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
