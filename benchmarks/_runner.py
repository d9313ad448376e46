"""Run every benchmark and print one table (``make bench``).

Every ``benchmarks/<name>.py`` whose name does not start with ``_`` is a benchmark. Each runs
in its own process (``python benchmarks/<name>.py [--quick]``), with ``TMPDIR`` pointing at a
directory this runner creates and removes afterwards, so nothing it leaves behind survives.
Its output is shown as it comes, prefixed with the benchmark's name and the elapsed time, and a
"still running" line appears when a benchmark is silent for a while. The ``BENCH-RESULT``
lines it prints (the convention in ``benchmarks/_report.py``) are collected into the table:
each figure, its baseline measured in the same run, the ratio and the goal. A benchmark that
prints no result line, fails, or runs past ``--timeout`` is listed under the table.

Run: ``.venv/bin/python benchmarks/_runner.py [--quick] [--only NAME ...] [--markdown]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import PREFIX

HERE = Path(__file__).resolve().parent
SILENCE_S = 30.0
"""Print a "still running" line after this many seconds without output."""


def discover(only: list[str] | None) -> list[Path]:
    """The benchmark scripts, by name (``only``: just these names, with or without ``.py``)."""
    scripts = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_"))
    if only:
        wanted = {name.removesuffix(".py") for name in only}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))}")
        scripts = [p for p in scripts if p.stem in wanted]
    return scripts


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def run_one(script: Path, quick: bool, tmp: Path, timeout_s: float) -> tuple[list[dict[str, object]], str]:
    """Run one benchmark, echoing its output; return its result rows and a status."""
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=HERE.parent)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    rows: list[dict[str, object]] = []
    started = last_output = time.monotonic()
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            now = time.monotonic()
            if now - started > timeout_s:
                process.kill()
                process.wait()
                return rows, f"killed after {_clock(timeout_s)} (--timeout)"
            if now - last_output > SILENCE_S:
                print(f"  [{script.stem} {_clock(now - started)}] ... still running", flush=True)
                last_output = now
            continue
        if line is None:
            break
        last_output = time.monotonic()
        if line.startswith(PREFIX + " "):
            row = json.loads(line[len(PREFIX) + 1:])
            row["benchmark"] = script.stem
            rows.append(row)
        print(f"  [{script.stem} {_clock(last_output - started)}] {line}", flush=True)
    code = process.wait()
    status = "ok" if code == 0 else f"exit code {code}"
    if code == 0 and not rows:
        status = "no BENCH-RESULT lines"
    return rows, f"{status} in {_clock(time.monotonic() - started)}"


def _number(value: object, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(rows: list[dict[str, object]], markdown: bool) -> str:
    """The results as a plain-text or Markdown table."""
    header = ["benchmark", "figure", "value", "baseline (same run)", "ratio", "goal", "met"]
    body = []
    for r in rows:
        unit = str(r.get("unit", ""))
        baseline = "—" if r.get("baseline") is None else (
            f"{r['baseline']}: {_number(r.get('baseline_value'), unit)}")
        ratio = r.get("ratio")
        met = {True: "yes", False: "NO", None: "—"}[r.get("met")]  # type: ignore[index]
        body.append([str(r["benchmark"]), str(r["figure"]), _number(r.get("value"), unit), baseline,
                     "—" if not isinstance(ratio, int | float) else f"{ratio:.3g}x",
                     str(r.get("goal", "—")), met])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     for row in [header, *body])


def machine() -> str:
    """The machine the table was measured on."""
    import numpy as np

    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
            f"SQLite {sqlite3.sqlite_version}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run just these benchmarks")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    parser.add_argument("--timeout", type=float, default=3_600.0,
                        help="seconds before a benchmark is killed (default 3600)")
    args = parser.parse_args(argv)
    scripts = discover(args.only)
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"{len(scripts)} benchmarks: {', '.join(p.stem for p in scripts)}", flush=True)
    rows: list[dict[str, object]] = []
    statuses: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="chatdesign-bench-"))
    started = time.monotonic()
    try:
        for i, script in enumerate(scripts, 1):
            print(f"[{i}/{len(scripts)}] {script.name} (total {_clock(time.monotonic() - started)})",
                  flush=True)
            found, statuses[script.stem] = run_one(script, args.quick, tmp, args.timeout)
            rows += found
            print(f"[{i}/{len(scripts)}] {script.name}: {statuses[script.stem]}", flush=True)
    finally:
        leftovers = sum(1 for _ in tmp.rglob("*"))
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"cleaned up the temporary directory ({leftovers} files the benchmarks left behind)")
    print(f"\nresults ({'quick' if args.quick else 'full'} run, {_clock(time.monotonic() - started)}):")
    print(table(rows, markdown=False))
    problems = {name: status for name, status in statuses.items() if not status.startswith("ok")}
    for name, status in problems.items():
        print(f"  {name}: {status}")
    if args.markdown:
        print("\n" + table(rows, markdown=True))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
