"""Presence benchmark: one batching tick for 1 M users, and naive versus batched pushes.

1. The vectorised cost model (``PresenceCostSimulation``) with 1,000,000 users: every tick
   handles logins, logouts, the friend changes reaching every viewer, windows and due
   batches for the whole population at once. Prints the tick time (median and worst) and the
   ratio of naive fan-out pushes to tiered + batched pushes over the measured ticks.
   Goals: one tick <= 1 s; naive / batched >= 10x.
2. The real ``PresenceService`` (sans-I/O, ``MemoryTTLStore``) with 1,000,000 users of 10
   friends each, 10 % online, every online device beating every 5 s, sessions of 20 minutes
   on average. The server's ``flush(now)`` runs once a simulated second; its time is measured
   alone (the heartbeats are the ingest path, timed separately). Goal: flush <= 1 s.

The naive / batched ratio is against naive fan-out measured in the same run. Run:
``.venv/bin/python benchmarks/presence_tick.py`` (``--quick`` for 100 k users). Prints one
``BENCH-RESULT`` line per figure (``benchmarks/_report.py``) for ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import numpy as np
from _report import result as report

from chatdesign.presence import (
    ManualClock,
    MemoryTTLStore,
    PresenceCostModel,
    PresenceCostSimulation,
    PresenceService,
)
from chatdesign.units import format_count, format_duration

SEED = 2026
FRIENDS_PER_USER = 10
ONLINE_FRACTION = 0.1
MEAN_SESSION_S = 1_200.0
HEARTBEAT_S = 5


def bench_cost_model(users: int, duration_s: float) -> bool:
    """Time each vectorised tick of the cost model; print tick times and the push ratio."""
    model = PresenceCostModel(users=users, duration_s=duration_s, seed=SEED)
    simulation = PresenceCostSimulation(model)
    tick_s = []
    for _ in range(model.ticks):
        started = time.perf_counter()
        simulation.step()
        tick_s.append(time.perf_counter() - started)
    result = simulation.result()
    median, worst = float(np.median(tick_s)), max(tick_s)
    ratio = result.naive_to_batched_ratio
    print(f"\n1. cost model: {format_count(users)} users, {model.ticks} ticks of "
          f"{format_duration(model.tick_s)} ({format_duration(model.warmup_s)} warm-up)")
    print(f"   tick time: median {format_duration(median)}, worst {format_duration(worst)} "
          f"-- goal <= 1 s: {'met' if worst <= 1 else 'MISSED'}")
    print(f"   pushes/s: naive {format_count(result.naive_pushes_per_s)}, online-only "
          f"{format_count(result.online_only_pushes_per_s)}, tiered + batched "
          f"{format_count(result.batched_pushes_per_s)}")
    print(f"   naive / batched = {ratio:.1f}x -- goal >= 10x: {'met' if ratio >= 10 else 'MISSED'}")
    report(f"presence cost model: worst tick, {format_count(users)} users", worst, "s", "<= 1 s",
           worst <= 1)
    report("presence pushes/s, tiered + batched", float(result.batched_pushes_per_s), "pushes/s",
           "naive / batched >= 10x", ratio >= 10, "naive fan-out, same run",
           float(result.naive_pushes_per_s), float(ratio))
    return worst <= 1 and ratio >= 10


def bench_service(users: int, seconds: int) -> bool:
    """Drive the real PresenceService; time each flush tick once the first windows have closed."""
    rng = np.random.default_rng(SEED)
    ids = [f"u{i}" for i in range(users)]
    started = time.perf_counter()
    friend_index = rng.integers(0, users, size=(users, FRIENDS_PER_USER))
    importance = rng.choice([1.0, 2.0, 3.0, 6.0], p=[0.5, 0.25, 0.15, 0.1],
                            size=(users, FRIENDS_PER_USER))
    friends = {
        ids[i]: {ids[j]: float(w) for j, w in zip(row, weights, strict=True) if j != i}
        for i, (row, weights) in enumerate(zip(friend_index.tolist(), importance.tolist(),
                                               strict=True))
    }
    clock = ManualClock(0.0)
    service = PresenceService(MemoryTTLStore(clock), clock, friends=friends)
    build_s = time.perf_counter() - started

    online = rng.random(users) < ONLINE_FRACTION
    p_logout = 1 / MEAN_SESSION_S
    p_login = p_logout * ONLINE_FRACTION / (1 - ONLINE_FRACTION)
    phase = rng.integers(0, HEARTBEAT_S, size=users)
    measure_from = 150  # after the first 2-minute windows opened at t=0 have closed
    heartbeat_s = 0.0
    heartbeats = 0
    flush_s: list[float] = []
    cold_start_worst_s = 0.0
    batches = changes = 0
    for t in range(seconds):
        clock.set(float(t))
        flips = rng.random(users) < np.where(online, p_logout, p_login)
        online ^= flips
        beating = np.flatnonzero(online & (phase == t % HEARTBEAT_S))
        started = time.perf_counter()
        for i in beating.tolist():
            service.heartbeat(ids[i], "phone")
        heartbeat_s += time.perf_counter() - started
        heartbeats += beating.size
        started = time.perf_counter()
        sent = service.flush(float(t))
        elapsed = time.perf_counter() - started
        if t < measure_from:
            cold_start_worst_s = max(cold_start_worst_s, elapsed)
        else:
            flush_s.append(elapsed)
            batches += len(sent)
            changes += sum(len(batch) for batch in sent.values())
    median, worst = float(np.median(flush_s)), max(flush_s)
    print(f"\n2. PresenceService: {format_count(users)} users x {FRIENDS_PER_USER} friends, "
          f"{ONLINE_FRACTION:.0%} online, built in {format_duration(build_s)}")
    print(f"   {format_count(heartbeats)} heartbeats in {seconds} simulated s: "
          f"{format_count(heartbeats / heartbeat_s)} heartbeats/s on one core")
    print(f"   flush tick over the last {len(flush_s)} s: median {format_duration(median)}, worst "
          f"{format_duration(worst)}; {format_count(batches / len(flush_s))} batches/s carrying "
          f"{format_count(changes / len(flush_s))} changes/s "
          f"-- goal <= 1 s: {'met' if worst <= 1 else 'MISSED'}")
    print(f"   cold start (all {format_count(int(ONLINE_FRACTION * users))} online users logging in "
          f"at t=0, their windows closing at 5 s and 2 min): worst flush "
          f"{format_duration(cold_start_worst_s)}")
    report(f"PresenceService flush: worst tick, {format_count(users)} users", worst, "s", "<= 1 s",
           worst <= 1)
    return worst <= 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 k users instead of 1 M")
    args = parser.parse_args()
    users = 100_000 if args.quick else 1_000_000
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {np.__version__}")
    print("running the cost model ...", flush=True)
    bench_cost_model(users, duration_s=300.0)
    print("running PresenceService ...", flush=True)
    bench_service(users, seconds=200)
    return 0  # it ran; goals met or missed are in the BENCH-RESULT lines (benchmarks/_report.py)


if __name__ == "__main__":
    sys.exit(main())
