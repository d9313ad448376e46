"""Fixtures for the chat tests: a manual clock, a server with four users, a table dump."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatdesign.chat import ChatServer, ManualClock

Dump = Callable[[ChatServer], list[str]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_750_000_000.0)


@pytest.fixture
def server(clock: ManualClock, tmp_path: Path) -> Iterator[ChatServer]:
    chat = ChatServer(clock=clock, data_dir=tmp_path / "data")
    for user in ("alice", "bob", "carol", "dave"):
        chat.register_user(user)
    yield chat
    chat.close()


def _dump(chat: ChatServer) -> list[str]:
    connection = chat.store._connection  # type: ignore[attr-defined]
    rows: list[str] = []
    for schema in ("main", "cold"):
        tables = connection.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        for (table,) in tables:
            rows += [f"{table}:{row}" for row in connection.execute(
                f"SELECT * FROM {schema}.{table} ORDER BY 1, 2")]
    return rows


@pytest.fixture
def dump() -> Dump:
    """Every stored row of the hot and cold databases, to compare before and after a call."""
    return _dump
