"""The authorization matrix (``chatdesign.chat.authorization.MATRIX``) over the network: a real
:class:`ChatNetworkServer` on loopback, each cell in a fresh server and scene.

- **Token columns** (``expired_token``, ``forged_token``), every row: the caller claims to be
  bob's phone (a member), with a token that expired (the server's clock moved past its expiry)
  or that was signed with another secret. The WebSocket must answer ``auth_failed`` to the
  ``auth`` frame and close with 4001; an expired token is also tried on an *open* connection
  (it expires after a successful ``auth``): the row's request frame must get ``auth_failed``
  and the close. The attachment download answers HTTP 401 with ``auth_failed``. Stored state
  must be exactly as before.
- **In-process columns over the wire**, for the rows the protocol carries (:data:`WIRE_ROWS`:
  send, fetch history and conversations, seen, sync, delivery acks, live pushes, attachment
  downloads, an unknown conversation): the caller's identity comes from a token for the
  column's user and device, the request is a frame (or HTTP), and the answer must be the
  table's. A refused frame must change no stored row. The rows without a request on the wire
  (``seen_by``, ``members``, group management, ``delivered_positions``) are answered by the
  token check alone in the token columns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatdesign.chat import ChatServer, ManualClock
from chatdesign.chat.auth import TokenAuthority
from chatdesign.chat.authorization import MATRIX, NETWORK_ROLES, ROLES
from chatdesign.chat.protocol import CLOSE_AUTH_FAILED, FRAME_TYPES
from chatdesign.chat.ws import ChatNetworkServer

from .test_authorization import CALLERS, PNG
from .test_ws import SETTINGS

START_S = 1_750_000_000.0
TTL_S = 60.0


@dataclass
class Scene:
    server: ChatNetworkServer
    clock: ManualClock
    group: str
    attachment: str


def _build(chat: ChatServer) -> tuple[str, str]:
    """The in-process test's scene: G by alice with bob and carol; carol removed after the
    first message reached her phone; dave never a member."""
    for user in ("alice", "bob", "carol", "dave", "erin"):
        chat.register_user(user)
    group = chat.create_group("alice", ["bob", "carol"], "team")
    attachment = chat.upload_attachment("alice", PNG, "image/png", "a.png")
    chat.send_message("alice", group, "first", "k1", [attachment])
    for user in ("bob", "carol"):
        chat.sync(user, "phone")
        chat.ack_delivery(user, "phone", group, 1)
    chat.remove_member("alice", group, "carol")
    chat.send_message("alice", group, "second", "k2")
    return group, attachment


def in_scene(tmp_path: Path, body: Callable[[Scene], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = ManualClock(START_S)
        async with ChatNetworkServer(tmp_path / "data", settings=SETTINGS, clock=clock) as server:
            group, attachment = await server.call(_build)
            await asyncio.wait_for(body(Scene(server, clock, group, attachment)), 30)
    asyncio.run(main())


async def stored(server: ChatNetworkServer) -> list[str]:
    """Every row of the hot and cold databases."""
    def dump(chat: ChatServer) -> list[str]:
        connection: sqlite3.Connection = chat.store._connection  # type: ignore[attr-defined]
        rows: list[str] = []
        for schema in ("main", "cold"):
            for (table,) in connection.execute(
                    f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
                rows += [f"{table}:{row}" for row in connection.execute(f"SELECT * FROM {schema}.{table}")]
        return sorted(rows)
    return await server.call(dump)


async def authenticated(s: Scene, token: str) -> ClientConnection:
    ws = await connect(s.server.ws_url, proxy=None, compression=None)
    await ws.send(json.dumps({"type": "auth", "id": "auth", "token": token}))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["type"] == "welcome", welcome
    return ws


async def reply(ws: ClientConnection, request_id: str = "op") -> dict[str, Any]:
    """The answer to the request ``request_id`` (pushes in between are skipped)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame.get("id") == request_id:
            return frame


def _code_or(frame: dict[str, Any], answer: str) -> str:
    return str(frame["code"]) if frame["type"] == "error" else answer


def _http_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url), timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


# --- the rows the protocol carries: (scene, caller's user, device, connection) -> answer -------

Cell = Callable[[Scene, str, str, ClientConnection], Awaitable[str]]


async def _request(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps({**frame, "id": "op"}))
    return await reply(ws)


async def _send(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    frame = await _request(ws, {"type": "send", "to": s.group, "content": "hello", "client_message_id": "k-new"})
    return _code_or(frame, "ok")


async def _messages(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    return _code_or(await _request(ws, {"type": "messages", "conversation_id": s.group}), "ok")


async def _conversations(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    frame = await _request(ws, {"type": "conversations", "page_number": 0, "page_size": 10})
    listed = frame["type"] == "conversations" and s.group in [i["conversation_id"] for i in frame["items"]]
    return _code_or(frame, "ok" if listed else "hidden")


async def _seen(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    return _code_or(await _request(ws, {"type": "seen", "conversation_id": s.group, "seq": 1}), "ok")


async def _sync(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    frame = await _request(ws, {"type": "sync"})
    return _code_or(frame, "ok" if s.group in frame.get("conversations", {}) else "hidden")


async def _delivered(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    """A ``delivered`` frame has no answer when accepted: wait for an error or for a stored
    position to move (bob's phone: ``ok``; only the caller's own device: ``own``)."""
    await ws.send(json.dumps({"type": "delivered", "id": "op", "conversation_id": s.group, "seq": 2}))
    for _ in range(200):
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 0.02))
        except TimeoutError:
            frame = {}
        if frame.get("id") == "op":
            return _code_or(frame, "unexpected answer")
        bobs_phone = await s.server.call(lambda c: c.delivered_positions("bob", "phone").get(s.group))
        mine = await s.server.call(lambda c: c.delivered_positions(user, device).get(s.group))
        if bobs_phone == 2:
            return "ok"
        if mine == 2:
            return "own"
    raise AssertionError("the delivered frame got no error and moved no position")


async def _pushed(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    """alice writes to G, then to the caller directly (a marker that is always delivered):
    G's message arrives before the marker or not at all."""
    await s.server.call(lambda c: c.send_message("alice", s.group, "live", "k-live"))
    await s.server.call(lambda c: c.send_message("alice", user, "marker", "k-marker"))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["type"] != "message":
            continue
        if frame["message"]["conversation_id"] == s.group:
            return "ok"
        if frame["message"]["content"] == "marker":
            return "hidden"


async def _attachment(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    token = s.server.authority.issue(user, device, TTL_S)
    return await _download(s, token)


async def _download(s: Scene, token: str) -> str:
    status, body = await asyncio.to_thread(
        _http_get, f"{s.server.url}attachments/{s.attachment}?token={token}")
    if status == 200:
        assert body == PNG
        return "ok"
    return str(json.loads(body)["code"])


async def _unknown(s: Scene, user: str, device: str, ws: ClientConnection) -> str:
    return _code_or(await _request(ws, {"type": "messages", "conversation_id": "g:404"}), "ok")


WIRE_CELLS: dict[str, Cell] = {
    "send_message": _send,
    "fetch_messages": _messages,
    "fetch_conversations": _conversations,
    "mark_seen": _seen,
    "sync": _sync,
    "ack_delivery": _delivered,
    "live_push": _pushed,
    "fetch_attachment": _attachment,
    "fetch_unknown_conversation": _unknown,
}
WIRE_ROWS = tuple(WIRE_CELLS)
"""The rows with a request on the wire (a frame, or HTTP for the attachment)."""

WIRE_FRAMES: dict[str, dict[str, Any]] = {
    "send_message": {"type": "send", "to": "G", "content": "hello", "client_message_id": "k-new"},
    "fetch_messages": {"type": "messages", "conversation_id": "G"},
    "fetch_conversations": {"type": "conversations"},
    "mark_seen": {"type": "seen", "conversation_id": "G", "seq": 1},
    "sync": {"type": "sync"},
    "ack_delivery": {"type": "delivered", "conversation_id": "G", "seq": 2},
    "fetch_unknown_conversation": {"type": "messages", "conversation_id": "g:404"},
}
"""The frame of each row that has one (``"G"`` stands for the group's id)."""


def _rule(operation: str) -> Any:
    return next(rule for rule in MATRIX if rule.operation == operation)


def test_every_protocol_request_has_a_row() -> None:
    assert set(WIRE_ROWS) <= {rule.operation for rule in MATRIX}
    # every request type is held to the table, except those that touch no conversation
    assert {f["type"] for f in WIRE_FRAMES.values()} | {"auth", "heartbeat", "presence"} == set(FRAME_TYPES)


OVER_THE_WIRE = [(op, role) for op in WIRE_ROWS for role in ROLES if role not in NETWORK_ROLES]


@pytest.mark.parametrize(("operation", "role"), OVER_THE_WIRE)
def test_in_process_cell_over_the_wire(tmp_path: Path, operation: str, role: str) -> None:
    expected = _rule(operation).answer(role)
    user, device = CALLERS[role]

    async def body(s: Scene) -> None:
        ws = await authenticated(s, s.server.authority.issue(user, device, TTL_S))
        before = await stored(s.server)
        observed = await WIRE_CELLS[operation](s, user, device, ws)
        if observed not in ("ok", "own", "hidden"):
            assert await stored(s.server) == before, "a refused request changed stored state"
        assert observed == expected, f"{operation} by {role} over the wire: expected {expected}, got {observed}"
        await ws.close()

    in_scene(tmp_path, body)


def _forged(user: str, device: str) -> str:
    """A well-formed token for ``user``'s ``device`` signed with a secret the server lacks."""
    return TokenAuthority(b"not the server's secret, 32 byte", lambda: START_S).issue(user, device, TTL_S)


async def _refused_at_auth(s: Scene, token: str) -> str:
    ws = await connect(s.server.ws_url, proxy=None, compression=None)
    await ws.send(json.dumps({"type": "auth", "id": "auth", "token": token}))
    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == CLOSE_AUTH_FAILED, ws.close_code
    return _code_or(frame, frame["type"])


TOKEN_CELLS = [(rule.operation, role) for rule in MATRIX for role in NETWORK_ROLES]


@pytest.mark.parametrize(("operation", "role"), TOKEN_CELLS)
def test_token_cell(tmp_path: Path, operation: str, role: str) -> None:
    """bob's phone (a member) with a bad token: refused before the operation, nothing stored."""
    expected = _rule(operation).answer(role)

    async def body(s: Scene) -> None:
        before = await stored(s.server)
        if role == "forged_token":
            token = _forged("bob", "phone")
        else:
            token = s.server.authority.issue("bob", "phone", TTL_S)
            s.clock.advance(TTL_S + 1)
        if operation == "fetch_attachment":
            observed = await _download(s, token)
        else:
            observed = await _refused_at_auth(s, token)
        assert observed == expected, f"{operation} with {role}: expected {expected}, got {observed}"
        if operation == "live_push":  # nobody is connected as bob: a send reaches no one
            await s.server.call(lambda c: c.send_message("alice", s.group, "live", "k-live"))
            assert not s.server.clients_of("bob")
            return
        assert await stored(s.server) == before, "a refused token changed stored state"

    in_scene(tmp_path, body)


@pytest.mark.parametrize("operation", sorted(WIRE_FRAMES))
def test_token_that_expires_on_an_open_connection(tmp_path: Path, operation: str) -> None:
    """bob's phone authenticates, its token then expires: the next request of any kind gets
    ``auth_failed`` (the table's answer) and the connection is closed with 4001."""
    expected = _rule(operation).answer("expired_token")

    async def body(s: Scene) -> None:
        ws = await authenticated(s, s.server.authority.issue("bob", "phone", TTL_S))
        before = await stored(s.server)
        s.clock.advance(TTL_S + 1)
        frame = {k: (s.group if v == "G" else v) for k, v in WIRE_FRAMES[operation].items()}
        answer = await _request(ws, frame)
        assert _code_or(answer, answer["type"]) == expected, answer
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == CLOSE_AUTH_FAILED
        await asyncio.sleep(0.05)  # a delivered frame would be committed by now
        assert await stored(s.server) == before

    in_scene(tmp_path, body)
