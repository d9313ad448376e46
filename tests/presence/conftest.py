"""Fixtures for the presence tests: a real redis-server, and one store fixture for both stores.

``redis_client`` starts ``redis-server`` (found on PATH) on a free loopback port with no
persistence in a temporary directory, waits until it answers PING and stops it after the
session. Without the binary the Redis tests skip with a visible reason -- unless ``CI=true``,
where they fail, because CI must run them.

``store_kit`` runs every test that uses it twice: on a :class:`MemoryTTLStore` and on a
:class:`RedisTTLStore`. It yields the store, a :class:`ManualClock` for the presence service,
and ``wait(seconds)``, which lets store time pass: the manual clock for memory, a real sleep
for Redis (whose TTLs run on the server's wall clock).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from chatdesign.presence import ManualClock, MemoryTTLStore, RedisTTLStore, TTLStore


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private redis-server on a free loopback port; yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server not found on PATH (install it: bash tools/system_deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    workdir: Path = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer PING on port {port}", pytrace=False)
                time.sleep(0.02)
        yield port
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_client(redis_server: int) -> Iterator[redis.Redis]:
    """A client of the private server, on an emptied database."""
    client = redis.Redis(host="127.0.0.1", port=redis_server)
    client.flushdb()
    yield client
    client.close()


@dataclass
class StoreKit:
    """A store, a manual clock for the service, and a way to let store time pass."""

    store: TTLStore
    clock: ManualClock
    wait: Callable[[float], None]
    kind: str


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store_kit(request: pytest.FixtureRequest) -> StoreKit:
    """The same tests against :class:`MemoryTTLStore` and a real :class:`RedisTTLStore`."""
    clock = ManualClock(1_000.0)
    if request.param == "memory":

        def advance(seconds: float) -> None:
            clock.advance(seconds)

        return StoreKit(MemoryTTLStore(clock), clock, advance, "memory")
    client: redis.Redis = request.getfixturevalue("redis_client")
    return StoreKit(RedisTTLStore(client), clock, time.sleep, "redis")
