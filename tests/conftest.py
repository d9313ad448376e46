"""Session fixtures for the real servers some tests need: Redis, PostgreSQL and Chromium.

Each starts a private instance through :mod:`chatdesign.services`. When a program is missing the
tests that need it skip with the reason -- unless ``CI=true``, where they fail, because CI must
run them (``tools/system_deps.sh``, run by ``make test``, installs them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chatdesign.services import (
    PostgresServer,
    RedisServer,
    ServiceUnavailable,
    chromium_path,
    start_postgres,
    start_redis,
)


def _unavailable(error: ServiceUnavailable) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {error}", pytrace=False)
    pytest.skip(str(error))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, for the whole session."""
    try:
        with start_redis() as server:
            yield server
    except ServiceUnavailable as error:
        _unavailable(error)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster on a free loopback port, for the whole session."""
    try:
        with start_postgres() as server:
            yield server
    except ServiceUnavailable as error:
        _unavailable(error)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium, for Playwright's ``executable_path``."""
    try:
        return chromium_path()
    except ServiceUnavailable as error:
        _unavailable(error)
        raise
