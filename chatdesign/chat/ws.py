"""The chat service on the network: WebSockets (the ``websockets`` library, asyncio) plus plain
HTTP on the same port for the web page and attachments.

Theory of operation. The transport only moves bytes and owns the policies that need timers and
queues; every decision is made by :mod:`~chatdesign.chat.protocol` (frames) and
:class:`~chatdesign.chat.server.ChatServer` (rules and storage).

- **One thread.** The :class:`ChatServer` (SQLite) runs in the event loop's thread, so calls
  are serialised without locks. A worker thread was tried and measured slower: every SQLite
  call releases and re-takes the GIL, and with the loop busy each re-take can wait a whole
  switch interval (5 ms), so a batch of 100 sends took seconds. While a commit blocks the
  loop for its fsync, frames pile up in the sockets and form the next batch.
- **Group commit.** Sends from every connection go to one queue. The committer takes up to
  ``batch_max`` of them (waiting at most ``batch_linger_s`` for more once the first arrives),
  commits them in one transaction with one fsync (:meth:`ChatServer.send_batch`) and only then
  acks each one and pushes the messages. While a batch commits, the next one gathers.
- **Pushes.** A committed message is encoded once and the same text is queued to every
  connected device of its members -- except the connection that sent it: that device gets the
  ``ack`` (ids, ``seq``, time) and builds the message itself from what it sent
  (:class:`~chatdesign.chat.client.ChatClient` and the web page do), keeping its positions
  contiguous. The sender's *other* devices get the push as usual. After a batch commits,
  its messages go out in commit order, each one's ack and then its pushes, so every
  connection hears of a conversation's messages in ``seq`` order (no false gaps to resync).
- **Delivery acks** (``delivered`` frames, cumulative up to a ``seq``) are coalesced: per
  device and conversation only the highest waiting one is written, all of them in one
  transaction after each send batch. An ack refused there (beyond the conversation's last
  message, not a member) is answered with its error and the lower acks it had replaced are
  tried again on their own, so coalescing never loses a valid ack. Losing waiting acks to a
  crash only means the device is sent those messages again (at-least-once).
- **Backpressure.** Each connection has a bounded queue of outgoing frames. A consumer that
  lets ``outgoing_queue_frames`` pile up is closed with :data:`CLOSE_SLOW_CONSUMER` and a
  reason; it catches up with ``sync`` when it returns. Server memory per connection is bounded.
- **Limits.** Frames over ``max_frame_bytes`` get a ``frame_too_large`` error (the connection
  carries on); frames over ``hard_max_frame_bytes`` are refused by ``websockets`` itself
  (close code 1009). Sends are rate-limited per connection by a token bucket.
- **Token expiry.** A token is checked when the connection authenticates and on every request;
  a connection whose token expires while it is open is pushed nothing more and is closed with
  :data:`CLOSE_AUTH_FAILED` at the next push, so the device authenticates again and syncs.
- **Liveness and presence.** WebSocket ping/pong detects dead peers. ``heartbeat`` frames (and
  the ``auth`` frame) drive a :class:`~chatdesign.presence.PresenceService`, whose ``flush``
  runs every ``presence_flush_s`` and pushes ``presence_update`` batches to online friends.
  With Redis (``cluster.redis_url``), presence is shared by the nodes: records live in a
  :class:`~chatdesign.presence.RedisTTLStore` on the same Redis, and a
  :class:`~chatdesign.presence.cluster.PresenceRouter` sends each heartbeat to the user's owner
  node and each batch to the viewer's nodes (:mod:`chatdesign.presence.cluster`).
- **HTTP on the same port** (``process_request``): ``/`` serves the web page, ``/attachments``
  takes an authenticated upload (``POST``, ``Authorization: Bearer TOKEN``) and serves a
  download (``GET /attachments/ID?token=TOKEN``) to members of a conversation that references
  it. ``websockets`` reads request heads only, so a small connection subclass reads a POST's
  body (bounded by ``max_attachment_bytes``) before handing the head to ``websockets``.
- **Shutdown.** :meth:`ChatNetworkServer.close` commits and acks what is queued, closes every
  connection with 1001 (going away), and closes the database.

Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import redis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chatdesign.chat.attachments import DEFAULT_MAX_ATTACHMENT_BYTES
from chatdesign.chat.auth import DEFAULT_TOKEN_TTL_S, TokenAuthority, load_or_create_secret
from chatdesign.chat.cluster import ClusterSettings
from chatdesign.chat.core import Message
from chatdesign.chat.errors import ChatError, Forbidden, InvalidRequest
from chatdesign.chat.postgres import PostgresStore
from chatdesign.chat.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_SLOW_CONSUMER,
    DEFAULT_MAX_FRAME_BYTES,
    Authenticate,
    AuthenticationFailed,
    DeliveryAck,
    Heartbeat,
    Identity,
    PresenceQuery,
    Send,
    ServerProtocol,
    ack_frame,
    encode,
    error_frame,
    execute,
    friends_graph,
    message_frame,
    send_request,
)
from chatdesign.chat.routing import RedisRouter
from chatdesign.chat.server import ChatServer
from chatdesign.chat.store import Synchronous
from chatdesign.presence import (
    MemoryTTLStore,
    PresenceBatch,
    PresenceError,
    PresencePolicy,
    PresenceService,
    RedisTTLStore,
    TTLStore,
)
from chatdesign.presence.cluster import PresenceRouter, membership_ttl_s
from chatdesign.presence.errors import UnknownUserError

log = logging.getLogger(__name__)

T = TypeVar("T")

_REBEATS_PER_TURN = 100
"""Devices beaten again per event-loop turn when the presence graph is rebuilt (with 1,000
connected devices one uninterrupted pass held every other connection up for about 0.1 s)."""

DATABASE_FILE = "chat.db"
"""The database's file name inside the data directory."""

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/style.css": ("style.css", "text/css; charset=utf-8")}


@dataclass(frozen=True)
class ServerSettings:
    """The transport's limits and timings (bytes, frames, seconds)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    hard_max_frame_bytes: int = 1024 * 1024
    sends_per_s: float = 20.0
    send_burst: float = 40.0
    outgoing_queue_frames: int = 1000
    batch_max: int = 256
    batch_linger_s: float = 0.002
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    presence_flush_s: float = 1.0
    presence_policy: PresencePolicy = field(default_factory=PresencePolicy)
    synchronous: Synchronous = "FULL"
    max_attachment_bytes: int = min(DEFAULT_MAX_ATTACHMENT_BYTES, 10 * 1024 * 1024)
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    demo: bool = False

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "hard_max_frame_bytes", "outgoing_queue_frames", "batch_max",
                     "max_attachment_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if self.hard_max_frame_bytes < self.max_frame_bytes:
            raise ValueError("hard_max_frame_bytes must be at least max_frame_bytes")
        for name in ("sends_per_s", "presence_flush_s", "token_ttl_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.send_burst < 1 or self.batch_linger_s < 0:
            raise ValueError("send_burst must be ≥ 1 and batch_linger_s ≥ 0")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Client:
    """One authenticated connection: its identity and bounded outgoing queue."""

    def __init__(self, connection: ServerConnection, identity: Identity, queue_limit: int) -> None:
        self.connection = connection
        self.identity = identity
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_limit)
        self.closing = False
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def __repr__(self) -> str:
        return f"_Client({self.identity.user_id}/{self.identity.device_id}, {self.queue.qsize()} queued)"

    def push(self, frame: dict[str, Any] | str) -> None:
        """Queue a frame; a full queue closes the connection (slow consumer)."""
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame if isinstance(frame, str) else encode(frame))
        except asyncio.QueueFull:
            self.closing = True
            reason = f"slow consumer: {self.queue.maxsize} frames queued; reconnect and sync"
            asyncio.get_running_loop().create_task(self.connection.close(CLOSE_SLOW_CONSUMER, reason))

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.connection.send(await self.queue.get())


class _HttpConnection(ServerConnection):
    """A ``websockets`` connection that can also take one HTTP POST with a body.

    ``websockets`` parses request heads only (a WebSocket handshake has no body). For a POST
    this class reads the head and ``Content-Length`` bytes of body itself (at most
    ``max_body_bytes``), keeps the body in :attr:`body`, and hands ``websockets`` the same head
    as a GET without the length, so ``process_request`` answers it like any other request.
    """

    max_body_bytes = 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mode = "sniff"
        self._buffer = bytearray()
        self._head = b""
        self._expected = 0
        self.body: bytes | None = None
        self.body_error: tuple[http.HTTPStatus, str] | None = None

    def data_received(self, data: bytes) -> None:
        if self._mode == "pass":
            super().data_received(data)
            return
        if self._mode == "discard":
            return
        self._buffer += data
        if self._mode == "sniff":
            if len(self._buffer) < 5 and b"POST ".startswith(bytes(self._buffer)):
                return
            if not self._buffer.startswith(b"POST "):
                self._mode = "pass"
                super().data_received(bytes(self._buffer))
                self._buffer.clear()
                return
            self._mode = "head"
        if self._mode == "head":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 16 * 1024:
                    self.transport.abort()
                return
            head = bytes(self._buffer[:end])
            del self._buffer[:end + 4]
            lines = head.split(b"\r\n")
            kept = [b"GET " + lines[0][5:]]
            length: int | None = None
            for line in lines[1:]:
                name = line.split(b":", 1)[0].strip().lower()
                if name == b"content-length":
                    with contextlib.suppress(ValueError):
                        length = int(line.split(b":", 1)[1].strip())
                elif name != b"transfer-encoding":
                    kept.append(line)
            self._head = b"\r\n".join(kept) + b"\r\n\r\n"
            if length is None or length < 0:
                self.body_error = (http.HTTPStatus.LENGTH_REQUIRED, "a POST needs Content-Length")
            elif length > self.max_body_bytes:
                self.body_error = (http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                   f"body over the limit of {self.max_body_bytes} bytes")
            if self.body_error is not None:
                self._mode = "discard"
                super().data_received(self._head)
                return
            assert length is not None
            self._expected = length
            self._mode = "body"
        if self._mode == "body" and len(self._buffer) >= self._expected:
            self.body = bytes(self._buffer[:self._expected])
            self._buffer.clear()
            self._mode = "discard"
            super().data_received(self._head)


class _LoopFanout:
    """:class:`Fanout` for the network server: after a commit, push the message to the
    connections of its users."""

    def __init__(self, server: ChatNetworkServer) -> None:
        self._server = server

    def publish(self, user_ids: Any, message: Message) -> None:
        self._server._deliver_message(tuple(user_ids), message)


@dataclass
class ServerStats:
    """Counters for tests, the notebook and the benchmark."""

    connections: int = 0
    batches: int = 0
    committed_sends: int = 0
    refused_frames: int = 0
    slow_consumers_closed: int = 0
    presence_batches: int = 0
    expired_closed: int = 0
    coalesced_acks: int = 0


class ChatNetworkServer:
    """The chat service on ``ws://HOST:PORT/ws`` with the page at ``http://HOST:PORT/``.

    ``data_dir`` holds the database (``chat.db``), attachments and the token secret. ``port=0``
    picks a free port (read :attr:`port` after :meth:`start`). ``clock`` returns seconds since
    the epoch (token expiry, message times). ``cluster`` makes this process one node of many:
    a shared PostgreSQL store and Redis routing (:class:`~chatdesign.chat.cluster.ClusterSettings`).
    Use it as ``async with ChatNetworkServer(...) as server:`` or call :meth:`start` and
    :meth:`close`.
    """

    def __init__(self, data_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                 settings: ServerSettings | None = None, clock: Callable[[], float] | None = None,
                 cluster: ClusterSettings | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.cluster = cluster if cluster is not None else ClusterSettings()
        self.router: RedisRouter | None = None
        self._redis: redis.Redis | None = None
        self._subscriber: Any = None
        self.host = host
        self._requested_port = port
        self.settings = settings if settings is not None else ServerSettings()
        if self.settings.demo and not is_loopback(host):
            raise ValueError("--demo logs anyone in without a password: loopback hosts only")
        self._clock: Callable[[], float] = clock if clock is not None else time.time
        self._anchor = (self._clock(), time.monotonic())
        self.stats = ServerStats()
        self._chat: ChatServer | None = None
        self._server: Server | None = None
        self._clients: dict[str, set[_Client]] = {}
        self._pending: list[tuple[_Client, Send]] = []
        self._pending_acks: dict[tuple[str, str, str], list[tuple[_Client, DeliveryAck]]] = {}
        self._sending: dict[tuple[str, str], _Client] = {}
        self._held_pushes: list[tuple[tuple[str, ...], Message]] | None = None
        self._presence_dirty = False
        self._deferred_beats: dict[tuple[str, str], bool] = {}
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._presence: PresenceService | None = None
        self._presence_store: TTLStore | None = None
        self.presence_router: PresenceRouter | None = None
        self.authority = TokenAuthority(load_or_create_secret(self.data_dir), self._clock)
        self.port = port

    def _presence_clock(self) -> float:
        """Wall time that never steps back (the presence service refuses a clock that does)."""
        return self._anchor[0] + (time.monotonic() - self._anchor[1])

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"ChatNetworkServer({self.host}:{self.port}, {state}, {self.stats.connections} connections)"

    @property
    def url(self) -> str:
        """The web page: ``http://HOST:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint: ``ws://HOST:PORT/ws``."""
        return f"ws://{self.host}:{self.port}/ws"

    async def __aenter__(self) -> ChatNetworkServer:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    # --- the database thread ------------------------------------------------------------------

    async def call(self, function: Callable[[ChatServer], T]) -> T:
        """Run ``function(chat_server)`` and return its result (in the event loop's thread, so
        calls are serialised; see the module docstring for why not in a worker thread)."""
        if self._chat is None:
            raise RuntimeError("the server is not running (start it first)")
        return function(self._chat)

    async def issue_token(self, user_id: str, device_id: str, ttl_s: float | None = None,
                          display_name: str | None = None) -> str:
        """A token for ``device_id`` of ``user_id``, registering the user if new."""
        def register(chat: ChatServer) -> None:
            if not chat.has_user(user_id):
                chat.register_user(user_id, display_name)
        await self.call(register)
        return self.authority.issue(user_id, device_id, self.settings.token_ttl_s if ttl_s is None else ttl_s)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, start the committer and presence tasks, and listen."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        cluster = self.cluster
        fanout = _LoopFanout(self)
        if cluster.database_url is not None:
            self._chat = ChatServer(store=PostgresStore(cluster.database_url), data_dir=self.data_dir,
                                    clock=self._clock, fanout=fanout, worker_id=cluster.worker_id,
                                    max_attachment_bytes=settings.max_attachment_bytes)
        else:
            self._chat = ChatServer(self.data_dir / DATABASE_FILE, clock=self._clock, fanout=fanout,
                                    synchronous=settings.synchronous, worker_id=cluster.worker_id,
                                    max_attachment_bytes=settings.max_attachment_bytes)
        if cluster.redis_url is not None:
            self._start_routing(cluster.redis_url, fanout, loop)
        if settings.demo:
            from chatdesign.chat.demo import seed_demo
            await self.call(seed_demo)
        if self._presence_store is None:  # one process: presence in this process's memory
            self._presence_store = MemoryTTLStore(self._presence_clock)
        await self._rebuild_presence()
        self._wakeup = asyncio.Event()
        connection_class = type("_BoundedHttpConnection", (_HttpConnection,),
                                {"max_body_bytes": settings.max_attachment_bytes})
        self._server = await serve(
            self._handle, self.host, self._requested_port,
            process_request=self._process_request, create_connection=connection_class,
            max_size=settings.hard_max_frame_bytes, ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s, max_queue=16, close_timeout=2, open_timeout=30,
            server_header="chatdesign",
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._tasks = [loop.create_task(self._commit_loop()), loop.create_task(self._presence_loop())]
        if self.router is not None:
            self._tasks.append(loop.create_task(self._refresh_routes()))

    def _start_routing(self, redis_url: str, fanout: _LoopFanout, loop: asyncio.AbstractEventLoop) -> None:
        """Deliveries to and from the other nodes: the chat server publishes through the router
        (local connections directly, other nodes over Redis), and a subscriber thread hands what
        arrives on this node's channel to the event loop's thread."""
        self._redis = redis.Redis.from_url(redis_url)
        self.router = RedisRouter(self._redis, self.cluster.node_id, fanout.publish, self._clock,
                                  self.cluster.route_ttl_s)
        assert self._chat is not None
        self._chat.fanout = self.router
        router = self.router

        def handle(payload: bytes) -> None:
            try:
                router.handle(payload)
            except ValueError:
                log.warning("dropped a malformed routing payload on %s", router.channel)

        def arrived(item: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(handle, item["data"])

        # shared presence: records in Redis, heartbeats to each user's owner node, batches to
        # the viewers' nodes; the service is replaced when the friends graph is rebuilt
        self._presence_store = RedisTTLStore(self._redis)
        policy = self.settings.presence_policy
        service = PresenceService(self._presence_store, self._presence_clock, policy, {}, shared_viewers=True)
        presence = PresenceRouter(service, router, self._deliver_presence, self._presence_clock,
                                  membership_ttl_s(policy, self.settings.presence_flush_s))
        self.presence_router = presence

        def handle_presence(payload: bytes) -> None:
            try:
                presence.handle(payload)
            except ValueError:
                log.warning("dropped a presence payload on %s", presence.channel, exc_info=True)

        def arrived_presence(item: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(handle_presence, item["data"])

        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(**{router.channel: arrived, presence.channel: arrived_presence})
        self._subscriber = pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    async def _refresh_routes(self) -> None:
        assert self.router is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.router.ttl_s / 3)
            try:
                await loop.run_in_executor(None, self.router.refresh)
            except redis.RedisError:
                log.exception("refreshing routes failed")

    async def close(self) -> None:
        """Commit and ack what is queued, close every connection (1001), close the database
        (idempotent)."""
        if self._server is None:
            return
        await self._commit_pending()
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._commit_pending()
        if self.presence_router is not None:  # a clean exit: the others adopt its users now
            with contextlib.suppress(redis.RedisError):
                self.presence_router.leave()
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        if self._chat is not None:
            self._chat.close()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        self._chat = None

    # --- connections --------------------------------------------------------------------------

    def clients_of(self, user_id: str) -> tuple[_Client, ...]:
        """The connected devices of a user (for tests and the notebook)."""
        return tuple(self._clients.get(user_id, ()))

    def _deliver_message(self, user_ids: tuple[str, ...], message: Message) -> None:
        """Push a committed message (encoded once) to every connection of ``user_ids`` but the
        one that sent it (it has the ack; see the module docstring). During a batch's commit
        the pushes wait and go out in commit order, each after its own ack (see
        :meth:`_commit_once`), so every device hears of a conversation's messages in seq order."""
        if self._held_pushes is not None:
            self._held_pushes.append((user_ids, message))
            return
        sender = self._sending.get((message.sender_id, message.client_message_id))
        text = encode(message_frame(message))
        for user_id in user_ids:
            for client in tuple(self._clients.get(user_id, ())):
                if client is not sender:
                    self._push(client, text)

    def _broadcast(self, user_ids: tuple[str, ...], frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else encode(frame)
        for user_id in user_ids:
            for client in tuple(self._clients.get(user_id, ())):
                self._push(client, text)

    def _push(self, client: _Client, text: str) -> None:
        """Push to ``client`` unless its token has expired: an expired connection hears nothing
        more and is closed with :data:`CLOSE_AUTH_FAILED` (its device authenticates again and
        syncs), as its next request would have been refused."""
        if client.identity.expires_at <= self._clock():
            if not client.closing:
                client.closing = True
                self.stats.expired_closed += 1
                asyncio.get_running_loop().create_task(
                    client.connection.close(CLOSE_AUTH_FAILED, "the token has expired; authenticate again"))
            return
        before = client.closing
        client.push(text)
        if client.closing and not before:
            self.stats.slow_consumers_closed += 1

    async def _handle(self, connection: ServerConnection) -> None:
        protocol = ServerProtocol(self.authority.verify, self._clock(),
                                  max_frame_bytes=self.settings.max_frame_bytes,
                                  sends_per_s=self.settings.sends_per_s, send_burst=self.settings.send_burst)
        client: _Client | None = None
        try:
            async for data in connection:
                try:
                    request = protocol.receive(data, self._clock())
                except ChatError as error:
                    self.stats.refused_frames += 1
                    if client is None or protocol.close_expected:  # before the close, not queued behind it
                        await connection.send(encode(error_frame(error)))
                    else:
                        client.push(error_frame(error))
                    if protocol.close_expected:
                        code = CLOSE_AUTH_FAILED
                        await connection.close(code, error.message[:120])
                        return
                    continue
                if isinstance(request, Authenticate):
                    assert protocol.identity is not None
                    client = _Client(connection, protocol.identity, self.settings.outgoing_queue_frames)
                    self._clients.setdefault(client.identity.user_id, set()).add(client)
                    self.stats.connections += 1
                    if self.router is not None:
                        self.router.register(client.identity.user_id)
                    welcome = protocol.welcome_frame(request)
                    welcome["heartbeat_interval_s"] = self.settings.presence_policy.heartbeat_interval_s
                    client.push(welcome)
                    await self._heartbeat(client, True)
                    continue
                assert client is not None
                await self._dispatch(client, request)
        except ConnectionClosed:
            pass
        finally:
            if client is not None:
                self.stats.connections -= 1
                self._clients.get(client.identity.user_id, set()).discard(client)
                if self.router is not None:
                    with contextlib.suppress(redis.RedisError):
                        self.router.unregister(client.identity.user_id)
                client.writer.cancel()

    async def _dispatch(self, client: _Client, request: Any) -> None:
        identity = client.identity
        try:
            if isinstance(request, Send | DeliveryAck):  # writes: committed in batches
                if isinstance(request, Send):
                    self._pending.append((client, request))
                else:
                    key = (identity.user_id, identity.device_id, request.conversation_id)
                    self._pending_acks.setdefault(key, []).append((client, request))
                assert self._wakeup is not None
                self._wakeup.set()
                return
            if isinstance(request, Heartbeat):
                await self._heartbeat(client, request.active)
                return
            if isinstance(request, PresenceQuery):
                client.push(self._presence_frame(identity, request))
                return
            effects = await self.call(lambda chat: execute(chat, identity, request))
        except ChatError as error:
            self.stats.refused_frames += 1
            client.push(error_frame(error, request.request_id))
            return
        except Exception as error:  # details stay in the log; the peer hears "internal error"
            log.exception("request %r failed", request)
            client.push(error_frame(error, request.request_id))
            return
        for frame in effects.replies:
            client.push(frame)
        for user_ids, frame in effects.broadcasts:
            self._broadcast(user_ids, frame)

    # --- group commit ---------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            if self.settings.batch_linger_s > 0 and len(self._pending) < self.settings.batch_max:
                await asyncio.sleep(self.settings.batch_linger_s)
            await self._commit_once()
            await self._commit_acks()
            if not self._pending and not self._pending_acks:
                self._wakeup.clear()

    async def _commit_pending(self) -> None:
        while self._pending and self._chat is not None:
            await self._commit_once()
        if self._chat is not None:
            await self._commit_acks()

    async def _commit_acks(self) -> None:
        """Delivery acks in one transaction, coalesced to the highest per device and
        conversation (see the module docstring): losing one to a crash only means a repeat."""
        waiting, self._pending_acks = self._pending_acks, {}
        if not waiting:
            return
        batch: list[tuple[_Client, DeliveryAck]] = []
        replaced: list[list[tuple[_Client, DeliveryAck]]] = []
        for entries in waiting.values():
            best = max(range(len(entries)), key=lambda i: entries[i][1].seq)
            batch.append(entries[best])
            replaced.append(entries[:best] + entries[best + 1:])
        self.stats.coalesced_acks += sum(len(r) for r in replaced)
        acks = [(c.identity.user_id, c.identity.device_id, r.conversation_id, r.seq) for c, r in batch]
        try:
            results = await self.call(lambda chat: chat.ack_deliveries(acks))
        except Exception as error:
            log.exception("a batch of %d delivery acks failed", len(batch))
            for entries in waiting.values():
                for client, request in entries:
                    client.push(error_frame(error, request.request_id))
            return
        for (client, request), result, lower in zip(batch, results, replaced, strict=True):
            if isinstance(result, ChatError):
                self.stats.refused_frames += 1
                client.push(error_frame(result, request.request_id))
                retry = [(c, r) for c, r in lower if r.seq < request.seq]
                for c, r in lower:
                    if r.seq >= request.seq:  # the same refused position: the same answer
                        self.stats.refused_frames += 1
                        c.push(error_frame(result, r.request_id))
                if retry:  # acks the refused one had replaced: on their own, next round
                    key = (client.identity.user_id, client.identity.device_id, request.conversation_id)
                    self._pending_acks.setdefault(key, []).extend(retry)
                    assert self._wakeup is not None
                    self._wakeup.set()

    async def _commit_once(self) -> None:
        batch = self._pending[:self.settings.batch_max]
        del self._pending[:self.settings.batch_max]
        if not batch:
            return
        sends = [send_request(client.identity, request) for client, request in batch]
        self._sending = {(client.identity.user_id, request.client_message_id): client for client, request in batch}
        held: list[tuple[tuple[str, ...], Message]] = []
        self._held_pushes = held
        try:
            results = await self.call(lambda chat: chat.send_batch(sends))
        except Exception as error:
            log.exception("a batch of %d sends failed to commit", len(batch))
            for client, request in batch:
                client.push(error_frame(error, request.request_id))
            self._sending = {}
            return
        finally:
            self._held_pushes = None
        self.stats.batches += 1
        new_conversation = False
        # in commit order, each message's ack and then its pushes: every connection hears of a
        # conversation's messages in seq order, its own (acks) included
        pushes = {(message.sender_id, message.client_message_id): (user_ids, message) for user_ids, message in held}
        for (client, request), result in zip(batch, results, strict=True):
            if isinstance(result, Message):
                self.stats.committed_sends += 1
                client.push(ack_frame(request, result))
                new_conversation |= result.seq == 1
                push = pushes.pop((result.sender_id, result.client_message_id), None)
                if push is not None:
                    self._deliver_message(*push)
            else:
                self.stats.refused_frames += 1
                client.push(error_frame(result, request.request_id))
        for user_ids, message in pushes.values():  # none expected: every push has its send
            self._deliver_message(user_ids, message)
        self._sending = {}
        if new_conversation:
            self._presence_dirty = True  # new friends: rebuilt at the next presence tick

    # --- presence -------------------------------------------------------------------------------

    async def _rebuild_presence(self) -> None:
        """(Re)build the presence service's friends graph from the conversations: people who
        share one are friends. Connected devices beat again so their state carries over."""
        def read(chat: ChatServer) -> list[tuple[str, tuple[str, ...]]]:
            return [(c.kind, chat.store.member_ids(c.conversation_id)) for c in chat.store.all_conversations()]
        conversations = await self.call(read)
        users = set(self._clients) | {user for user, _ in self._deferred_beats}
        graph = friends_graph(conversations, users=sorted(users))
        assert self._presence_store is not None
        router = self.presence_router
        self._presence = PresenceService(self._presence_store, self._presence_clock,
                                         self.settings.presence_policy, graph, shared_viewers=router is not None)
        if router is not None:
            longest = max(tier.max_delay_s for tier in self.settings.presence_policy.tiers)
            since = self._presence_clock() - router.membership.ttl_s - longest
            try:
                router.replace_service(self._presence, since)  # adopt the owned users' timers
                for clients in self._clients.values():
                    for client in clients:
                        with contextlib.suppress(PresenceError):
                            router.heartbeat(client.identity.user_id, client.identity.device_id, True)
            except redis.RedisError:
                log.exception("rebuilding shared presence failed")
            return
        connected = [client for clients in self._clients.values() for client in clients]
        for done, client in enumerate(connected):
            if done and done % _REBEATS_PER_TURN == 0:
                await asyncio.sleep(0)  # let the loop serve frames between slices
            if client not in self._clients.get(client.identity.user_id, ()):
                continue  # gone meanwhile
            with contextlib.suppress(PresenceError):
                self._presence.heartbeat(client.identity.user_id, client.identity.device_id, True)

    def _beat(self, user_id: str, device_id: str, active: bool) -> None:
        """One heartbeat: to this node's service, or (many nodes) to the user's owner node."""
        assert self._presence is not None
        if self.presence_router is None:
            self._presence.heartbeat(user_id, device_id, active)
            return
        try:
            self.presence_router.heartbeat(user_id, device_id, active)
        except redis.RedisError:
            log.exception("forwarding a heartbeat failed")

    def _deliver_presence(self, batch: PresenceBatch) -> None:
        """A batch for a viewer connected here (from this node's service or another node's)."""
        self.stats.presence_batches += 1
        self._broadcast((batch.viewer_id,), {"type": "presence_update", "changes": batch.to_event()["changes"]})

    async def _heartbeat(self, client: _Client, active: bool) -> None:
        try:
            self._beat(client.identity.user_id, client.identity.device_id, active)
        except PresenceError:  # a user the graph does not know yet: beat after the next rebuild
            self._deferred_beats[(client.identity.user_id, client.identity.device_id)] = active
            self._presence_dirty = True

    def _presence_frame(self, identity: Identity, request: PresenceQuery) -> dict[str, Any]:
        assert self._presence is not None
        try:
            if request.user_ids is None:
                statuses = self._presence.initial_statuses(identity.user_id, 50).statuses
            else:
                statuses = self._presence.statuses(identity.user_id, request.user_ids)
        except UnknownUserError as error:
            if request.user_ids is not None:
                raise InvalidRequest(str(error)) from None
            # the viewer's conversations are newer than the friends graph (rebuilt at the next
            # presence tick): no friends known yet
            self._presence_dirty = True
            statuses = ()
        except PresenceError as error:
            raise InvalidRequest(str(error)) from None
        return {"type": "presence", "id": request.request_id, "statuses": [
            {"user_id": s.user_id, "status": s.status.value, "last_active_ago_s": s.last_active_ago_s}
            for s in statuses]}

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_flush_s)
            router = self.presence_router
            if router is not None and router.unknown_beats:  # forwarded for users not in the graph yet
                self._deferred_beats.update(router.unknown_beats)
                router.unknown_beats.clear()
                self._presence_dirty = True
            if self._presence_dirty:  # at most one rebuild per tick, however many joined
                self._presence_dirty = False
                await self._rebuild_presence()
            assert self._presence is not None
            beats, self._deferred_beats = self._deferred_beats, {}
            for (user_id, device_id), active in beats.items():
                with contextlib.suppress(PresenceError):
                    self._beat(user_id, device_id, active)
            if router is not None:
                try:
                    router.tick()  # delivers to local viewers and publishes to the others
                except (PresenceError, redis.RedisError):
                    log.exception("shared presence tick failed")
                continue
            try:
                batches = self._presence.flush(self._presence_clock())
            except PresenceError:
                log.exception("presence flush failed")
                continue
            for batch in batches.values():
                self._deliver_presence(batch)

    # --- HTTP -----------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        query = parse_qs(url.query)
        body = getattr(connection, "body", None)
        body_error = getattr(connection, "body_error", None)
        if body_error is not None:
            return _response(body_error[0], {"code": "invalid_request", "message": body_error[1]})
        if body is not None:
            if path != "/attachments":
                return _response(http.HTTPStatus.NOT_FOUND, {"code": "not_found", "message": "no such endpoint"})
            return await self._upload(request, body)
        if path == "/ws":
            return None
        if path in _STATIC:
            name, content_type = _STATIC[path]
            data = resources.files("chatdesign.chat").joinpath("web", name).read_bytes()
            return _response(http.HTTPStatus.OK, data, content_type)
        if path == "/healthz":
            return _response(http.HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        if path.startswith("/attachments/"):
            return await self._download(path.removeprefix("/attachments/"), query)
        if path == "/api/demo":
            return await self._demo_login(connection, query)
        return _response(http.HTTPStatus.NOT_FOUND, {"code": "not_found", "message": f"nothing at {path[:80]}"})

    def _bearer(self, request: Request, query: dict[str, list[str]]) -> Identity:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        if token is None and query.get("token"):
            token = query["token"][0]
        if not token:
            raise AuthenticationFailed("an Authorization: Bearer token (or ?token=) is required")
        return self.authority.verify(token)

    async def _upload(self, request: Request, body: bytes) -> Response:
        try:
            identity = self._bearer(request, {})
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            filename = request.headers.get("X-Filename", "upload")
            attachment_id = await self.call(
                lambda chat: chat.upload_attachment(identity.user_id, body, content_type, filename))
        except ChatError as error:
            return _error_response(error)
        return _response(http.HTTPStatus.CREATED, {"attachment_id": attachment_id})

    async def _download(self, attachment_id: str, query: dict[str, list[str]]) -> Response:
        try:
            identity = self.authority.verify(query.get("token", [""])[0])
            attachment = await self.call(lambda chat: chat.fetch_attachment(identity.user_id, attachment_id))
        except ChatError as error:
            return _error_response(error)
        return _response(http.HTTPStatus.OK, attachment.data, attachment.info.content_type,
                         cache="private, max-age=86400")

    async def _demo_login(self, connection: ServerConnection, query: dict[str, list[str]]) -> Response:
        remote = connection.remote_address[0] if connection.remote_address else ""
        if not self.settings.demo or not is_loopback(str(remote)):
            return _error_response(Forbidden("demo logins are off (start the server with --demo)"))
        from chatdesign.chat.demo import DEMO_USERS
        user = query.get("user", [""])[0]
        device = query.get("device", ["web"])[0]
        if user not in DEMO_USERS:
            return _response(http.HTTPStatus.OK, {"users": list(DEMO_USERS)})
        try:
            token = self.authority.issue(user, device)
        except ChatError as error:
            return _error_response(error)
        return _response(http.HTTPStatus.OK, {"token": token, "user_id": user, "device_id": device})


_STATUS_OF = {"not_found": http.HTTPStatus.NOT_FOUND, "forbidden": http.HTTPStatus.FORBIDDEN,
              "auth_failed": http.HTTPStatus.UNAUTHORIZED}


def _error_response(error: ChatError) -> Response:
    status = _STATUS_OF.get(error.code, http.HTTPStatus.BAD_REQUEST)
    return _response(status, {"code": error.code, "message": error.message})


def _response(status: http.HTTPStatus, body: bytes | dict[str, Any], content_type: str = "application/json",
              cache: str = "no-store") -> Response:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data))),
                       ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff"),
                       ("Connection", "close")])
    return Response(status.value, status.phrase, headers, data)


async def run_server(data_dir: str | Path, host: str, port: int, settings: ServerSettings,
                     ready: Callable[[ChatNetworkServer], None] | None = None,
                     cluster: ClusterSettings | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (what ``python -m chatdesign
    serve`` runs). ``ready`` is called once the server listens."""
    import signal
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with ChatNetworkServer(data_dir, host, port, settings, cluster=cluster) as server:
            if ready is not None:
                ready(server)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
