"""An asyncio client for the chat service (used by the notebook, the tests and the load test).

::

    async with ChatClient.connect("ws://127.0.0.1:8765/ws", token) as client:
        ack = await client.send("bob", "hi")           # returns after the server committed it
        message = await client.receive(timeout=5)      # the next message pushed to this device

What it does for you:

- **Authenticates** with the token, then **syncs**: it presents its last received ``seq`` per
  conversation (:attr:`ChatClient.positions`; pass ``positions=`` to start from a saved copy)
  and receives everything after them.
- **De-duplicates by seq** and **acknowledges** what it keeps (``delivered`` frames, coalesced
  per conversation), so the server's record of this device moves only for messages that
  arrived: at-least-once delivery plus de-duplication shows each message once. A pushed
  message that skips a seq (one was lost on the way) triggers a resync instead of being shown
  out of order.
- **Its own messages come from the ack.** The server does not push a message back to the
  connection that sent it; the client builds it from the send and the ack and shows it in
  :meth:`~ChatClient.receive` like any other, in ``seq`` order: if the ack's ``seq`` is not the
  next one of the conversation (someone else's message is still on its way), the message
  waits until the positions reach it (and a resync fetches what is missing), so the positions
  stay contiguous and the device never claims a message it does not hold. Its delivery ack
  rides along with the next one for that conversation, or goes alone after
  ``own_ack_delay_s``.
- **Sends idempotently**: each send carries a ``client_message_id`` (a random one unless you
  pass your own); a send whose connection drops before its ack is sent again with the same id
  after reconnecting, and the server answers with the original message.
- **Reconnects** after a dropped connection (also a server restart or a slow-consumer cut-off)
  with exponential backoff and jitter (``backoff_initial_s`` doubling up to ``backoff_max_s``,
  each delay drawn between half and all of it), then resyncs. A refused token is final:
  :class:`~chatdesign.chat.protocol.AuthenticationFailed`.

Errors the server answers come back as the :class:`~chatdesign.chat.errors.ChatError`
subclass of their code (``NotFound``, ``Forbidden``, ``InvalidRequest``, ``RateLimited``, ...).

Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from chatdesign.chat.errors import ChatError, Forbidden, IdempotencyConflict, InvalidRequest, NotFound
from chatdesign.chat.protocol import (
    CLOSE_AUTH_FAILED,
    ActsAsSomeoneElse,
    AuthenticationFailed,
    FrameTooLarge,
    MalformedFrame,
    NotAuthenticated,
    RateLimited,
    UnknownFrameType,
    encode,
)


class InternalServerError(ChatError):
    """The server failed in a way it does not explain (``internal_error``)."""

    code = "internal_error"


class ConnectionLost(ChatError):
    """The client is closed, or could not reach the server for its first connection."""

    code = "connection_lost"


ERRORS_BY_CODE: dict[str, type[ChatError]] = {
    cls.code: cls for cls in (NotFound, Forbidden, InvalidRequest, IdempotencyConflict, MalformedFrame,
                              UnknownFrameType, FrameTooLarge, RateLimited, NotAuthenticated,
                              AuthenticationFailed, InternalServerError)
}
"""The exception class the client raises for each error code a server sends."""
ERRORS_BY_CODE["forbidden"] = Forbidden
_ = ActsAsSomeoneElse  # the server's spoofing refusal arrives as code "forbidden" -> Forbidden


def server_error(frame: dict[str, Any]) -> ChatError:
    """The exception for an ``error`` frame (unknown codes become :class:`InternalServerError`)."""
    cls = ERRORS_BY_CODE.get(str(frame.get("code")), InternalServerError)
    return cls(str(frame.get("message", "")))


@dataclass(frozen=True)
class SendAck:
    """The server's answer to a send: the message is committed (durably) under these ids."""

    message_id: int
    conversation_id: str
    seq: int
    created_at: float
    client_message_id: str


@dataclass(frozen=True)
class ReceivedMessage:
    """A message pushed to (or synced by) this device."""

    message_id: int
    conversation_id: str
    seq: int
    sender_id: str
    content: str
    created_at: float
    attachments: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ReceivedMessage:
        """From the protocol's message object."""
        return cls(int(payload["message_id"]), str(payload["conversation_id"]), int(payload["seq"]),
                   str(payload["sender_id"]), str(payload["content"]), float(payload["created_at"]),
                   tuple(str(a) for a in payload.get("attachments", ())))


class ChatClient:
    """One device's connection to the chat service (see the module docstring).

    Build it with :meth:`connect`. ``positions`` seeds the device's record
    ``{conversation_id: last seq received}``; ``seed`` makes the backoff jitter and the
    generated ``client_message_id`` values reproducible. ``own_ack_delay_s`` (seconds) bounds
    how long the delivery ack for this device's own messages waits to ride along with another.
    """

    def __init__(self, url: str, token: str, *, positions: dict[str, int] | None = None,
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 2.0, seed: int | None = None,
                 heartbeats: bool = True, open_timeout_s: float = 10.0, own_ack_delay_s: float = 1.0) -> None:
        if not (0 < backoff_initial_s <= backoff_max_s):
            raise ValueError("backoff needs 0 < backoff_initial_s ≤ backoff_max_s")
        if not own_ack_delay_s >= 0:
            raise ValueError(f"own_ack_delay_s must be ≥ 0 seconds, got {own_ack_delay_s!r}")
        self._own_ack_delay_s = float(own_ack_delay_s)
        self._own_waiting: dict[str, dict[int, ReceivedMessage]] = {}
        self._flush_soon = False
        self._flush_later: asyncio.TimerHandle | None = None
        self.url = url
        self._token = token
        self._positions: dict[str, int] = dict(positions or {})
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._random = random.Random(seed)
        self._heartbeats = heartbeats
        self._open_timeout_s = open_timeout_s
        self._ids = itertools.count(1)
        self._inbox: asyncio.Queue[ReceivedMessage] = asyncio.Queue()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._unacked_sends: dict[str, dict[str, Any]] = {}
        self._to_ack: dict[str, int] = {}
        self._connection: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._fatal: ChatError | None = None
        self._closed = False
        self._runner: asyncio.Task[None] | None = None
        self._resync_wanted = False
        self._syncing = False
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.heartbeat_interval_s = 5.0
        self.reconnects = 0
        self.duplicates_dropped = 0
        self.gaps_resynced = 0

    def __repr__(self) -> str:
        state = "connected" if self._connected.is_set() else "closed" if self._closed else "connecting"
        return f"ChatClient({self.user_id}/{self.device_id}, {state}, {len(self._positions)} conversations)"

    # --- life cycle -----------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, token: str, **options: Any) -> AsyncIterator[ChatClient]:
        """``async with ChatClient.connect(url, token) as client:`` a connected, synced client;
        closed on exit. Raises :class:`AuthenticationFailed` for a refused token and
        :class:`ConnectionLost` if the server cannot be reached."""
        client = cls(url, token, **options)
        await client.start()
        try:
            yield client
        finally:
            await client.close()

    async def start(self) -> None:
        """Connect, authenticate and sync (the first attempt fails fast), then keep the
        connection up in the background."""
        await self._open()
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Close the connection and stop reconnecting (idempotent)."""
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        acks, self._to_ack = self._to_ack, {}
        if self._connection is not None:
            for conversation_id, seq in acks.items():  # what it holds, before it goes
                await self._send_quietly(self._connection, {"type": "delivered",
                                                            "conversation_id": conversation_id, "seq": seq})
            await self._connection.close()
        self._fail_pending(ConnectionLost("the client is closed"))

    async def drop_connection(self) -> None:
        """Cut the TCP connection without a closing handshake, as a network failure would
        (for tests and the notebook); the client reconnects and resyncs by itself."""
        if self._connection is not None:
            self._connection.transport.abort()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected and synced again."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def positions(self) -> dict[str, int]:
        """This device's record: ``{conversation_id: last seq received}`` (a copy)."""
        return dict(self._positions)

    # --- the API --------------------------------------------------------------------------------

    async def send(self, recipient_id: str, content: str, client_message_id: str | None = None,
                   attachments: tuple[str, ...] = (), timeout: float | None = 30.0) -> SendAck:
        """Send and wait for the server's ack (sent only after the commit is durable).

        ``recipient_id`` is a user (1:1) or a conversation id. Resent with the same
        ``client_message_id`` after a reconnect, so it is stored once. Raises the
        :class:`ChatError` of the server's error code, or ``TimeoutError``.
        """
        key = client_message_id if client_message_id is not None else uuid.UUID(
            int=self._random.getrandbits(128), version=4).hex
        frame = {"type": "send", "to": recipient_id, "content": content, "client_message_id": key,
                 "attachments": list(attachments)}
        reply = await self._request(frame, timeout, resend=True)
        return SendAck(int(reply["message_id"]), str(reply["conversation_id"]), int(reply["seq"]),
                       float(reply["created_at"]), key)

    async def receive(self, timeout: float | None = None) -> ReceivedMessage:
        """The next message pushed to this device (each ``seq`` once, in order per
        conversation); ``TimeoutError`` if none arrives within ``timeout`` seconds."""
        return await asyncio.wait_for(self._inbox.get(), timeout)

    async def next_event(self, timeout: float | None = None) -> dict[str, Any]:
        """The next pushed ``receipt`` or ``presence_update`` frame (as a dict)."""
        return await asyncio.wait_for(self._events.get(), timeout)

    async def fetch_conversations(self, page_number: int = 0, page_size: int = 20,
                                  last_updated_timestamp: float | None = None) -> dict[str, Any]:
        """A page of this user's conversations (the ``conversations`` frame)."""
        return await self._request({"type": "conversations", "page_number": page_number,
                                    "page_size": page_size,
                                    "last_updated_timestamp": last_updated_timestamp})

    async def fetch_messages(self, conversation_id: str, before_seq: int | None = None,
                             after_seq: int | None = None, limit: int = 50) -> list[ReceivedMessage]:
        """History of a conversation (newest first, or oldest first after ``after_seq``)."""
        reply = await self._request({"type": "messages", "conversation_id": conversation_id,
                                     "before_seq": before_seq, "after_seq": after_seq, "limit": limit})
        return [ReceivedMessage.from_payload(m) for m in reply["messages"]]

    async def mark_seen(self, conversation_id: str, seq: int) -> int:
        """Seen up to and including ``seq``; returns the receipt's seq."""
        reply = await self._request({"type": "seen", "conversation_id": conversation_id, "seq": seq})
        return int(reply["seq"])

    async def presence(self, user_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Friends' presence: the most important ones, or ``user_ids``."""
        reply = await self._request({"type": "presence", "user_ids": user_ids})
        return list(reply["statuses"])

    async def sync(self) -> int:
        """Ask for everything after this device's positions now; returns how many new messages
        it delivered to :meth:`receive`."""
        reply = await self._request(self._sync_frame())
        return self._take_sync(reply)

    async def send_raw(self, frame: dict[str, Any] | str, timeout: float | None = 10.0) -> dict[str, Any]:
        """Send any frame (tests use it for malformed ones) and return the answer with its id;
        an ``error`` answer is returned, not raised."""
        if isinstance(frame, dict):
            return await self._request(frame, timeout, raise_errors=False)
        assert self._connection is not None
        await self._connection.send(frame)
        return await self.next_error(timeout)

    async def next_error(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """The next ``error`` frame with no request id (for raw frames)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending["<none>"] = future
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop("<none>", None)

    # --- internals ------------------------------------------------------------------------------

    async def _request(self, frame: dict[str, Any], timeout: float | None = 30.0, resend: bool = False,
                       raise_errors: bool = True) -> dict[str, Any]:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise ConnectionLost("the client is closed")
        request_id = f"r{next(self._ids)}"
        frame = {**frame, "id": request_id}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if resend:
            self._unacked_sends[request_id] = frame
        try:
            if self._connection is not None and self._connected.is_set():
                with contextlib.suppress(ConnectionClosed):
                    await self._connection.send(encode(frame))
            elif not resend:
                await asyncio.wait_for(self._connected.wait(), timeout)
                assert self._connection is not None
                await self._connection.send(encode(frame))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
            self._unacked_sends.pop(request_id, None)
        if reply.get("type") == "error" and raise_errors:
            raise server_error(reply)
        return reply

    def _fail_pending(self, error: ChatError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _sync_frame(self) -> dict[str, Any]:
        return {"type": "sync", "positions": dict(self._positions)}

    async def _open(self) -> None:
        """One connection: connect, auth, resend unacked sends, sync."""
        try:
            connection = await ws_connect(self.url, compression=None, proxy=None, max_size=2**20,
                                          open_timeout=self._open_timeout_s, ping_interval=20,
                                          ping_timeout=20, close_timeout=2)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            raise ConnectionLost(f"cannot reach {self.url}: {error}") from None
        try:
            await connection.send(encode({"type": "auth", "id": "auth", "token": self._token}))
            welcome = json.loads(await asyncio.wait_for(connection.recv(), self._open_timeout_s))
        except (ConnectionClosed, TimeoutError) as error:
            await connection.close()
            raise ConnectionLost(f"the server closed the connection during auth: {error}") from None
        if welcome.get("type") == "error":
            await connection.close()
            refused = server_error(welcome)
            if isinstance(refused, AuthenticationFailed):
                self._fatal = refused
            raise refused
        self.user_id, self.device_id = str(welcome["user_id"]), str(welcome["device_id"])
        self.heartbeat_interval_s = float(welcome.get("heartbeat_interval_s", 5.0))
        self._connection = connection
        for frame in list(self._unacked_sends.values()):
            await connection.send(encode(frame))
        await connection.send(encode({**self._sync_frame(), "id": "resync"}))
        self._syncing = True
        self._connected.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            assert self._connection is not None
            heartbeat = asyncio.get_running_loop().create_task(self._beat()) if self._heartbeats else None
            try:
                await self._read(self._connection)
                attempt = 0
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                self._connected.clear()
            close_code = self._connection.close_code
            if self.closed:
                return
            if close_code == CLOSE_AUTH_FAILED:
                self._fatal = AuthenticationFailed("the server refused the token")
                self._fail_pending(self._fatal)
                return
            for request_id, future in list(self._pending.items()):
                if request_id not in self._unacked_sends and not future.done():
                    future.set_exception(ConnectionLost("the connection dropped before the answer"))
            while not self._closed:
                attempt += 1
                ceiling = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
                await asyncio.sleep(ceiling * self._random.uniform(0.5, 1.0))
                try:
                    await self._open()
                except AuthenticationFailed as error:
                    self._fail_pending(error)
                    return
                except ChatError:
                    continue
                self.reconnects += 1
                break

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if self._connection is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._connection.send(encode({"type": "heartbeat", "active": True}))

    async def _read(self, connection: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in connection:
                self._dispatch(json.loads(data))

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._take_push(ReceivedMessage.from_payload(frame["message"]))
            return
        if kind in ("receipt", "presence_update"):
            self._events.put_nowait(frame)
            return
        request_id = frame.get("id")
        if request_id == "resync":
            self._take_sync(frame)
            return
        key = "<none>" if request_id is None else str(request_id)
        sent = self._unacked_sends.get(key)
        if kind == "ack" and sent is not None and self.user_id is not None:
            # taken now, in the order frames arrive, so the next push finds the positions moved
            self._take_own(ReceivedMessage(
                int(frame["message_id"]), str(frame["conversation_id"]), int(frame["seq"]), self.user_id,
                str(sent["content"]), float(frame["created_at"]), tuple(sent.get("attachments", ()))))
        future = self._pending.get(key)
        if future is not None and not future.done():
            future.set_result(frame)

    def _take_own(self, message: ReceivedMessage) -> None:
        """This device's own message, built from its ack (the server does not push it back)."""
        cid = message.conversation_id
        if message.seq <= self._positions.get(cid, 0):
            return  # a retry's ack, or a sync brought it first
        self._own_waiting.setdefault(cid, {})[message.seq] = message
        self._take_own_waiting(cid)
        if cid in self._own_waiting:  # a gap before it: fetch what is missing
            self.gaps_resynced += 1
            self._want_resync()

    def _take_own_waiting(self, conversation_id: str) -> None:
        """Show the own messages that are next in line (positions stay contiguous)."""
        waiting = self._own_waiting.get(conversation_id)
        if not waiting:
            return
        position = self._positions.get(conversation_id, 0)
        for seq in [s for s in waiting if s <= position]:
            del waiting[seq]
        while (own := waiting.pop(position + 1, None)) is not None:
            self._accept(own, own=True)
            position += 1
        if not waiting:
            del self._own_waiting[conversation_id]

    def _take_push(self, message: ReceivedMessage) -> None:
        position = self._positions.get(message.conversation_id)
        if position is not None and message.seq <= position:
            self.duplicates_dropped += 1
            return
        if message.seq > (position or 0) + 1:  # also for a conversation this device has not seen yet
            self.gaps_resynced += 1  # one went missing on the way: let the sync bring both
            self._want_resync()
            return
        self._accept(message)

    def _take_sync(self, frame: dict[str, Any]) -> int:
        self._syncing = False
        if frame.get("type") == "error":
            return 0
        taken = 0
        for messages in frame.get("conversations", {}).values():
            for payload in messages:
                message = ReceivedMessage.from_payload(payload)
                if message.seq <= self._positions.get(message.conversation_id, 0):
                    self.duplicates_dropped += 1
                    continue
                self._accept(message)
                taken += 1
        if self._resync_wanted:
            self._resync_wanted = False
            self._want_resync()
        return taken

    def _want_resync(self) -> None:
        if self._syncing:
            self._resync_wanted = True
            return
        if self._connection is None or not self._connected.is_set():
            return
        self._syncing = True
        connection = self._connection
        asyncio.get_running_loop().create_task(self._send_quietly(connection, {**self._sync_frame(), "id": "resync"}))

    def _accept(self, message: ReceivedMessage, own: bool = False) -> None:
        self._positions[message.conversation_id] = message.seq
        self._inbox.put_nowait(message)
        self._to_ack[message.conversation_id] = message.seq
        loop = asyncio.get_running_loop()
        if not own:
            if not self._flush_soon:
                self._flush_soon = True
                loop.call_soon(self._flush_acks)
        elif not self._flush_soon and self._flush_later is None:
            self._flush_later = loop.call_later(self._own_ack_delay_s, self._flush_acks)
        if not own and message.conversation_id in self._own_waiting:
            self._take_own_waiting(message.conversation_id)

    def _flush_acks(self) -> None:
        self._flush_soon = False
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        acks, self._to_ack = self._to_ack, {}
        connection = self._connection
        if connection is None:
            return
        for conversation_id, seq in acks.items():
            asyncio.get_running_loop().create_task(self._send_quietly(
                connection, {"type": "delivered", "conversation_id": conversation_id, "seq": seq}))

    @staticmethod
    async def _send_quietly(connection: ClientConnection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await connection.send(encode(frame))
