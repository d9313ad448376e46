"""The authorization matrix (``chatdesign.chat.authorization.MATRIX``), cell by cell, on a real
server: every operation x every in-process role, each in a fresh scene, the observed answer
compared with the table's. Refusals must also leave stored state unchanged. The README shows
the same table (checked here too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatdesign.chat import ChatError, ChatServer, ManualClock
from chatdesign.chat.authorization import (
    MATRIX,
    NETWORK_ANSWER,
    NETWORK_ROLES,
    ROLE_CALLERS,
    ROLES,
    markdown_table,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels"
CALLERS: dict[str, tuple[str, str]] = {
    "member": ("bob", "phone"),
    "non_member": ("dave", "tablet"),
    "removed_member": ("carol", "phone"),
    "same_user_other_device": ("bob", "laptop"),
    "other_users_device": ("dave", "phone"),
}


@dataclass
class Scene:
    server: ChatServer
    group: str
    attachment: str


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    server = ChatServer(clock=ManualClock(1_750_000_000.0), data_dir=tmp_path)
    for user in ("alice", "bob", "carol", "dave", "erin"):
        server.register_user(user)
    group = server.create_group("alice", ["bob", "carol"], "team")
    attachment = server.upload_attachment("alice", PNG, "image/png", "a.png")
    server.send_message("alice", group, "first", "k1", [attachment])
    for user in ("bob", "carol"):
        server.sync(user, "phone")
        server.ack_delivery(user, "phone", group, 1)
    server.remove_member("alice", group, "carol")
    server.send_message("alice", group, "second", "k2")
    yield Scene(server, group, attachment)
    server.close()


def dump(server: ChatServer) -> list[str]:
    connection: sqlite3.Connection = server.store._connection  # type: ignore[attr-defined]
    rows: list[str] = []
    for schema in ("main", "cold"):
        for (table,) in connection.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall():
            rows += [f"{table}:{row}" for row in connection.execute(f"SELECT * FROM {schema}.{table}")]
    return sorted(rows)


def _listed(s: Scene, user: str, device: str) -> str:
    page = s.server.fetch_conversations(user, 0, 10)
    return "ok" if s.group in [i.conversation_id for i in page.items] else "hidden"


def _synced(s: Scene, user: str, device: str) -> str:
    return "ok" if s.group in s.server.sync(user, device).messages_by_conversation else "hidden"


def _acked(s: Scene, user: str, device: str) -> str:
    s.server.ack_delivery(user, device, s.group, 2)
    bobs_phone = s.server.delivered_positions("bob", "phone")[s.group]
    return "ok" if bobs_phone == 2 else "own"


def _positions(s: Scene, user: str, device: str) -> str:
    shown = s.server.delivered_positions(user, device)
    return "ok" if (user, device) == ("bob", "phone") and s.group in shown else "hidden"


def _pushed(s: Scene, user: str, device: str) -> str:
    session = s.server.connect(user, device)
    s.server.send_message("alice", s.group, "live", "k-live")
    return "ok" if any(m.conversation_id == s.group for m in session.drain()) else "hidden"


def _ok(call: Callable[[Scene, str, str], object]) -> Callable[[Scene, str, str], str]:
    def run(s: Scene, user: str, device: str) -> str:
        call(s, user, device)
        return "ok"
    return run


CELLS: dict[str, Callable[[Scene, str, str], str]] = {
    "send_message": _ok(lambda s, u, d: s.server.send_message(u, s.group, "hello", "k-new")),
    "fetch_messages": _ok(lambda s, u, d: s.server.fetch_messages(u, s.group)),
    "fetch_conversations": _listed,
    "mark_seen": _ok(lambda s, u, d: s.server.mark_seen(u, s.group, 1)),
    "seen_by": _ok(lambda s, u, d: s.server.seen_by(s.group, 1, viewer_id=u)),
    "members": _ok(lambda s, u, d: s.server.members(s.group, viewer_id=u)),
    "add_member": _ok(lambda s, u, d: s.server.add_member(u, s.group, "erin")),
    "remove_other": _ok(lambda s, u, d: s.server.remove_member(u, s.group, "alice")),
    "leave": _ok(lambda s, u, d: s.server.remove_member(u, s.group, u)),
    "sync": _synced,
    "ack_delivery": _acked,
    "delivered_positions": _positions,
    "live_push": _pushed,
    "fetch_attachment": _ok(lambda s, u, d: s.server.fetch_attachment(u, s.attachment)),
    "fetch_unknown_conversation": _ok(lambda s, u, d: s.server.fetch_messages(u, "g:404")),
}

IN_PROCESS = [(rule.operation, role) for rule in MATRIX for role in ROLES if role not in NETWORK_ROLES]


def test_every_row_has_a_cell_and_every_role_a_caller() -> None:
    assert sorted(CELLS) == sorted(rule.operation for rule in MATRIX)
    assert set(CALLERS) | set(NETWORK_ROLES) == set(ROLES) == set(ROLE_CALLERS)
    for rule in MATRIX:
        assert all(rule.answer(role) == NETWORK_ANSWER for role in NETWORK_ROLES)  # run in test_authorization_ws


@pytest.mark.parametrize(("operation", "role"), IN_PROCESS)
def test_matrix_cell(scene: Scene, operation: str, role: str) -> None:
    expected = next(r for r in MATRIX if r.operation == operation).answer(role)
    user, device = CALLERS[role]
    before = dump(scene.server)
    try:
        observed = CELLS[operation](scene, user, device)
    except ChatError as error:
        observed = error.code
        assert dump(scene.server) == before, "a refused call changed stored state"
    assert observed == expected, f"{operation} by {role}: expected {expected}, got {observed}"


def test_readme_shows_the_current_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README's authorization table is stale: paste markdown_table()"
