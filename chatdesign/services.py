"""Private instances of the real servers the book runs against: Redis, PostgreSQL and Chromium.

The tests, the benchmarks and the notebooks all start their servers here, so there is one way to
do it: a free loopback port, a fresh temporary directory, no persistence beyond that directory,
and a clean stop (the directory is removed). The programs themselves come from the system
(``tools/system_deps.sh`` installs Debian's ``redis-server``, ``postgresql`` and ``chromium``);
:class:`ServiceUnavailable` says which one is missing and how to install it.

    with start_redis() as redis_server:
        client = redis.Redis.from_url(redis_server.url)

    with start_postgres() as pg:
        conn = psycopg.connect(pg.url)

PostgreSQL's ``initdb`` refuses to run as root; when this process is root the server runs as the
``postgres`` system user (which Debian's package creates), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServiceUnavailable",
    "chromium_path",
    "free_port",
    "postgres_bindir",
    "start_postgres",
    "start_redis",
]

INSTALL_HINT = "install it with: bash tools/system_deps.sh"


class ServiceUnavailable(RuntimeError):
    """A system program the book needs is not installed, or did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None:
                raise ServiceUnavailable(f"{name} exited with code {process.returncode} before listening") from None
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"{name} did not listen on port {port} within {timeout_s:g} s") from None
            time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------------
# Redis


@dataclass(frozen=True)
class RedisServer:
    """A running private ``redis-server``: where to reach it."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``redis://host:port/0``, for ``redis.Redis.from_url`` and ``serve --redis``."""
        return f"redis://{self.host}:{self.port}/0"


@contextmanager
def start_redis(timeout_s: float = 10.0) -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port with no persistence; stop it on exit.

    Raises :class:`ServiceUnavailable` when the binary is missing or the server does not listen
    within ``timeout_s`` seconds.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(f"redis-server not found on PATH ({INSTALL_HINT})")
    workdir = tempfile.mkdtemp(prefix="chatdesign-redis-")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, "redis-server", timeout_s)
        yield RedisServer("127.0.0.1", port)
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (Debian keeps them off PATH)."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise ServiceUnavailable(f"PostgreSQL's initdb not found ({INSTALL_HINT})")
    return Path(candidates[-1]).parent


@dataclass(frozen=True)
class PostgresServer:
    """A running private PostgreSQL server: where to reach it, as superuser ``user``."""

    host: str
    port: int
    user: str
    dbname: str = "postgres"

    @property
    def url(self) -> str:
        """``postgresql://user@host:port/dbname`` (trust authentication on loopback)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def _reachable_tmp() -> str:
    """A temporary directory the ``postgres`` user can enter: ``tempfile``'s own unless it is
    private (``TMPDIR`` pointing at a 0700 directory, as the benchmark runner's is), else ``/tmp``."""
    directory = tempfile.gettempdir()
    return directory if os.stat(directory).st_mode & 0o001 else "/tmp"


def _as_postgres_user() -> tuple[list[str], str]:
    """The command prefix that runs a program as a non-root user, and that user's name."""
    if os.geteuid() != 0:
        import pwd

        return [], pwd.getpwuid(os.geteuid()).pw_name
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceUnavailable("running as root and runuser is missing: PostgreSQL cannot run as root")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable(f"running as root and there is no 'postgres' user ({INSTALL_HINT})") from None
    return [runuser, "-u", "postgres", "--"], "postgres"


@contextmanager
def start_postgres(timeout_s: float = 30.0) -> Iterator[PostgresServer]:
    """``initdb`` a fresh cluster in a temporary directory, start ``postgres`` on a free loopback
    port, and stop and remove it on exit.

    ``initdb --no-sync`` skips flushing the fresh cluster's files (a crash of the machine during
    start-up would only lose a throw-away cluster), but the running server keeps ``fsync`` on:
    the chat store's acknowledgements promise durability, so benchmarks pay for it.
    """
    bindir = postgres_bindir()
    prefix, user = _as_postgres_user()
    workdir = tempfile.mkdtemp(prefix="chatdesign-pg-", dir=_reachable_tmp() if prefix else None)
    datadir = os.path.join(workdir, "data")
    if prefix:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    init = subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", datadir, "-U", user, "-A", "trust", "-E", "UTF8",
         "--no-locale", "--no-sync"],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    port = free_port()
    process = subprocess.Popen(
        [
            *prefix, str(bindir / "postgres"), "-D", datadir,
            "-h", "127.0.0.1", "-p", str(port), "-k", workdir,
            "-c", "max_connections=200", "-c", "shared_buffers=64MB",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, "postgres", timeout_s)
        server = PostgresServer("127.0.0.1", port, user)
        _wait_until_accepting(bindir, server, process, timeout_s)
        yield server
    finally:
        _stop_postgres(process, datadir)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop_postgres(process: subprocess.Popen[bytes], datadir: str) -> None:
    """Ask the postmaster itself for a "fast" shutdown (SIGINT: roll back open transactions, do
    not wait for clients). Under ``runuser`` the Popen process is runuser, which would not pass
    the signal on, so the postmaster's pid is read from its pid file."""
    try:
        with open(os.path.join(datadir, "postmaster.pid"), encoding="ascii") as pid_file:
            os.kill(int(pid_file.readline()), signal.SIGINT)
    except (OSError, ValueError):
        pass
    _stop(process, timeout_s=30.0, sig=signal.SIGINT)


def _wait_until_accepting(
    bindir: Path, server: PostgresServer, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    """The port opens before the server accepts logins ("the database system is starting up")."""
    pg_isready = bindir / "pg_isready"
    if not pg_isready.exists():
        return
    deadline = time.monotonic() + timeout_s
    while True:
        ready = subprocess.run(
            [str(pg_isready), "-h", server.host, "-p", str(server.port), "-U", server.user, "-q"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise ServiceUnavailable(f"postgres on port {server.port} did not accept connections")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# Chromium


CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
"""Flags for headless Chromium here: as root it needs ``--no-sandbox``; the rest keep it from
trying to reach hosts this machine cannot reach."""


def chromium_path() -> str:
    """Debian's Chromium binary, for Playwright's ``executable_path`` (Playwright's own browser
    download does not work here)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise ServiceUnavailable(f"chromium not found on PATH ({INSTALL_HINT})")
