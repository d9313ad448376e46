"""Fixtures for the presence tests: a client of the real redis-server, and one store fixture for
both stores.

``redis_client`` talks to the private ``redis-server`` that ``tests/conftest.py`` starts through
:mod:`chatdesign.services` (skipped without the binary, failing under ``CI=true``).

``store_kit`` runs every test that uses it twice: on a :class:`MemoryTTLStore` and on a
:class:`RedisTTLStore`. It yields the store, a :class:`ManualClock` for the presence service,
and ``wait(seconds)``, which lets store time pass: the manual clock for memory, a real sleep
for Redis (whose TTLs run on the server's wall clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from chatdesign.presence import ManualClock, MemoryTTLStore, RedisTTLStore, TTLStore
from chatdesign.services import RedisServer


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the private server (``tests/conftest.py``), on an emptied database."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
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
