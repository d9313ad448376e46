"""``make lab``: open the book in JupyterLab and print the one URL that opens ``00_start_here``.

JupyterLab's own log prints a URL to its file browser, among many lines; a reader on a remote
machine or in a container (no browser to open) needs the URL of the first notebook, with the
token. This starts JupyterLab on a free loopback port (or ``--port``) with a fresh token, waits
until it answers, then prints that URL in a banner, and stops JupyterLab on Ctrl-C.

Usage: ``python tools/lab.py [--port N] [--no-browser] [extra jupyter lab arguments]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "notebooks/00_start_here.ipynb"


def book_url(port: int, token: str, host: str = "127.0.0.1") -> str:
    """The URL that opens the start notebook directly in JupyterLab."""
    return f"http://{host}:{port}/lab/tree/{START}?token={token}"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(port: int, token: str, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> bool:
    """True once JupyterLab answers on ``port``; False if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                return True
        except OSError:
            time.sleep(0.25)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Open the book in JupyterLab at 00_start_here.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="only print the URL")
    args, extra = parser.parse_known_args(argv)
    port = args.port or _free_port()
    token = secrets.token_hex(24)
    command = [
        sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
        *(["--no-browser"] if args.no_browser else []), *extra, START,
    ]
    if os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        if wait_until_up(port, token, process):
            line = "=" * 78
            print(f"\n{line}\nThe book is open. Start here:\n\n    {book_url(port, token)}\n\n"
                  f"Stop with Ctrl-C.\n{line}\n", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


if __name__ == "__main__":
    sys.exit(main())
