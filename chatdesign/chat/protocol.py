"""The chat protocol without I/O: JSON frames in, calls on a :class:`ChatServer`, frames out.

Theory of operation (in the manner of ``h11`` and the ``websockets`` protocol layer): a
:class:`ServerProtocol` holds one connection's state -- waiting for ``auth``, open, closed --
and turns each incoming text frame into a typed request (:func:`parse_request`), refusing what
is too large, malformed, unknown, out of turn, over the send rate or acting as someone else.
:func:`execute` runs a request against the server and returns the :class:`Effects`: frames for
this connection and frames for every connection of some users. Sends are different: the
transport collects them from many connections and commits them together
(:meth:`ChatServer.send_batch`), then answers each with :func:`ack_frame`. The transport
(:mod:`chatdesign.chat.ws`) only moves bytes, owns the timers and queues, and never decides
anything this module decides. Nothing here reads a clock or a socket: ``now`` is passed in.

Every frame is a JSON object with a ``"type"``. A request may carry an ``"id"`` (a string or an
integer chosen by the client); the answer and any error carry the same ``id``.

===================  =========================================================  ======================================
client → server      fields                                                     answer
===================  =========================================================  ======================================
``auth``             ``token`` (first frame of every connection)                ``welcome``: ``user_id``, ``device_id``
``send``             ``to`` (user or conversation id), ``content``,             ``ack``: ``message_id``,
                     ``client_message_id``, ``attachments`` (ids, optional)     ``conversation_id``, ``seq``,
                                                                                ``created_at`` -- only after the commit
                                                                                is durable
``delivered``        ``conversation_id``, ``seq`` (up to and including)         none (an ``error`` if refused)
``conversations``    ``page_number`` (0), ``page_size`` (20),                   ``conversations``: ``items`` (with
                     ``last_updated_timestamp`` (optional)                      ``members``, ``seen``), ``has_more``,
                                                                                ``last_updated_timestamp``
``messages``         ``conversation_id``, ``before_seq`` / ``after_seq``,       ``messages``: ``conversation_id``,
                     ``limit`` (50)                                             ``messages``
``seen``             ``conversation_id``, ``seq``                               ``seen``: ``conversation_id``, ``seq``;
                                                                                members get a ``receipt``
``heartbeat``        ``active`` (true)                                          none (presence goes to friends)
``presence``         ``user_ids`` (optional: the most important friends)        ``presence``: ``statuses``
``sync``             ``positions`` ``{conversation_id: last seq held}``         ``sync``: ``conversations``
                                                                                ``{conversation_id: [message, ...]}``
===================  =========================================================  ======================================

=====================  ==================================================================
server → client push   fields
=====================  ==================================================================
``message``            ``message``: ``message_id``, ``conversation_id``, ``seq``,
                       ``sender_id``, ``content``, ``created_at``, ``attachments``
``receipt``            ``conversation_id``, ``user_id``, ``seq`` (seen up to and including)
``presence_update``    ``changes``: ``user_id``, ``status``, ``changed_at_s`` (a batch from
                       :class:`~chatdesign.presence.PresenceService`, per importance tier)
``error``              ``id`` (of the request, or null), ``code``, ``message``
=====================  ==================================================================

Error codes: the chat errors' (``invalid_request``, ``not_found``, ``forbidden``,
``idempotency_conflict``) and this module's (``malformed_frame``, ``unknown_type``,
``frame_too_large``, ``rate_limited``, ``not_authenticated``, ``auth_failed``, and
``forbidden`` for a frame that names a user or device: it may only act as its own), plus
``internal_error`` for anything unexpected (details only in the server's log). Refused frames
change nothing; the connection carries on, except after a failed ``auth`` (closed with
:data:`CLOSE_AUTH_FAILED`).

Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from chatdesign.chat.core import ConversationPage, Message
from chatdesign.chat.errors import ChatError
from chatdesign.chat.server import ChatServer, SendRequest

DEFAULT_MAX_FRAME_BYTES = 64 * 1024
"""Largest text frame accepted (bytes of UTF-8); larger ones get a ``frame_too_large`` error."""

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
"""The server is shutting down (reconnect later)."""
CLOSE_AUTH_FAILED = 4001
"""The first frame was not a valid ``auth``."""
CLOSE_SLOW_CONSUMER = 4008
"""The connection fell too far behind its outgoing queue; reconnect and ``sync``."""

FRAME_TYPES: tuple[str, ...] = (
    "auth", "send", "delivered", "conversations", "messages", "seen", "heartbeat", "presence", "sync",
)
"""The request types a client may send (see the module docstring's table)."""

_ACTING_FIELDS = ("user_id", "sender_id", "device_id", "from")


class ProtocolError(ChatError):
    """A frame the protocol refuses before any call on the server. ``request_id`` is the
    frame's ``id`` when it could be read (so the error frame can name the request)."""

    code: ClassVar[str] = "protocol_error"

    def __init__(self, message: str, request_id: RequestId = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class MalformedFrame(ProtocolError):
    """Not JSON, not an object, a missing or ill-typed field."""

    code: ClassVar[str] = "malformed_frame"


class ActsAsSomeoneElse(ProtocolError):
    """A frame naming a user or device: every request acts as the authenticated device."""

    code: ClassVar[str] = "forbidden"


class UnknownFrameType(ProtocolError):
    """A ``type`` the protocol does not know."""

    code: ClassVar[str] = "unknown_type"


class FrameTooLarge(ProtocolError):
    """A frame over the connection's maximum size."""

    code: ClassVar[str] = "frame_too_large"


class RateLimited(ProtocolError):
    """More sends than the connection's token bucket allows."""

    code: ClassVar[str] = "rate_limited"


class NotAuthenticated(ProtocolError):
    """A request before ``auth`` succeeded (or a second ``auth``)."""

    code: ClassVar[str] = "not_authenticated"


class AuthenticationFailed(ProtocolError):
    """A token that is forged, expired or malformed."""

    code: ClassVar[str] = "auth_failed"


RequestId = str | int | None


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authenticate:
    request_id: RequestId
    token: str


@dataclass(frozen=True)
class Send:
    request_id: RequestId
    recipient_id: str
    content: str
    client_message_id: str
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryAck:
    request_id: RequestId
    conversation_id: str
    seq: int


@dataclass(frozen=True)
class FetchConversations:
    request_id: RequestId
    page_number: int = 0
    page_size: int = 20
    last_updated_timestamp: float | None = None


@dataclass(frozen=True)
class FetchMessages:
    request_id: RequestId
    conversation_id: str
    before_seq: int | None = None
    after_seq: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class Seen:
    request_id: RequestId
    conversation_id: str
    seq: int


@dataclass(frozen=True)
class Heartbeat:
    request_id: RequestId
    active: bool = True


@dataclass(frozen=True)
class PresenceQuery:
    request_id: RequestId
    user_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Sync:
    request_id: RequestId
    positions: dict[str, int] = field(default_factory=dict)


Request = (Authenticate | Send | DeliveryAck | FetchConversations | FetchMessages | Seen | Heartbeat
           | PresenceQuery | Sync)


def _field(frame: Mapping[str, Any], name: str, kind: type | tuple[type, ...], request_id: RequestId,
           default: Any = ..., optional: bool = False) -> Any:
    """``frame[name]`` if it has the right JSON type (bools are not ints)."""
    if name not in frame or (optional and frame[name] is None):
        if default is ...:
            raise MalformedFrame(f"{frame.get('type')} frame needs {name!r}", request_id)
        return default
    value = frame[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise MalformedFrame(f"{name!r} must be {names}, got {value!r}", request_id)
    return value


def _id_of(data: str | bytes) -> RequestId:
    """The ``id`` of a frame refused before parsing, if it has a readable one."""
    try:
        request_id = json.loads(data).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None


def parse_request(data: str | bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Request:
    """One client frame as a typed request, or a :class:`ProtocolError` (never anything else).

    Checks only the frame's shape; the server checks the values (ids, lengths, membership).
    """
    if isinstance(data, bytes):
        size = len(data)
    elif len(data) * 4 <= max_frame_bytes:  # ≤ 4 bytes a character: under the limit in any case
        size = 0
    else:
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_frame_bytes:  # the transport bounds frames too, so reading the id is bounded
        raise FrameTooLarge(f"frame of {size} bytes is over the limit of {max_frame_bytes} bytes",
                            _id_of(data))
    if isinstance(data, bytes):
        raise MalformedFrame("frames are JSON text, not binary")
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        raise MalformedFrame("frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise MalformedFrame("a frame is a JSON object with a 'type'")
    request_id = frame.get("id")
    if request_id is not None and (isinstance(request_id, bool)
                                   or not isinstance(request_id, str | int)
                                   or (isinstance(request_id, str) and len(request_id) > 64)):
        raise MalformedFrame("'id' must be a string (≤ 64 characters) or an integer")
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise MalformedFrame("a frame needs a string 'type'", request_id)
    if kind not in FRAME_TYPES:
        raise UnknownFrameType(f"unknown frame type {kind[:40]!r}; known: {', '.join(FRAME_TYPES)}",
                               request_id)
    rid = request_id
    if kind == "auth":
        return Authenticate(rid, _field(frame, "token", str, rid))
    spoofed = [name for name in _ACTING_FIELDS if name in frame]
    if spoofed:
        raise ActsAsSomeoneElse(f"a {kind} frame acts as the authenticated device; it may not "
                                f"name {', '.join(spoofed)}", rid)
    if kind == "send":
        # the common case, checked in one go; anything else takes the path that names the fault
        to, content = frame.get("to"), frame.get("content", "")
        key, attachments = frame.get("client_message_id"), frame.get("attachments", ())
        if (type(to) is str and type(content) is str and type(key) is str
                and (attachments == () or (type(attachments) is list
                                           and all(type(a) is str for a in attachments)))):
            return Send(rid, to, content, key, tuple(attachments))
        attachments = _field(frame, "attachments", list, rid, default=[])
        if not all(isinstance(a, str) for a in attachments):
            raise MalformedFrame("'attachments' must be a list of attachment ids", rid)
        return Send(rid, _field(frame, "to", str, rid), _field(frame, "content", str, rid, default=""),
                    _field(frame, "client_message_id", str, rid), tuple(attachments))
    if kind == "delivered":
        conversation_id, seq = frame.get("conversation_id"), frame.get("seq")
        if type(conversation_id) is str and type(seq) is int:
            return DeliveryAck(rid, conversation_id, seq)
        return DeliveryAck(rid, _field(frame, "conversation_id", str, rid), _field(frame, "seq", int, rid))
    if kind == "conversations":
        stamp = _field(frame, "last_updated_timestamp", (int, float), rid, default=None, optional=True)
        return FetchConversations(rid, _field(frame, "page_number", int, rid, default=0),
                                  _field(frame, "page_size", int, rid, default=20),
                                  None if stamp is None else float(stamp))
    if kind == "messages":
        return FetchMessages(rid, _field(frame, "conversation_id", str, rid),
                             _field(frame, "before_seq", int, rid, default=None, optional=True),
                             _field(frame, "after_seq", int, rid, default=None, optional=True),
                             _field(frame, "limit", int, rid, default=50))
    if kind == "seen":
        return Seen(rid, _field(frame, "conversation_id", str, rid), _field(frame, "seq", int, rid))
    if kind == "heartbeat":
        return Heartbeat(rid, _field(frame, "active", bool, rid, default=True))
    if kind == "presence":
        user_ids = _field(frame, "user_ids", list, rid, default=None, optional=True)
        if user_ids is not None and not all(isinstance(u, str) for u in user_ids):
            raise MalformedFrame("'user_ids' must be a list of user ids", rid)
        return PresenceQuery(rid, None if user_ids is None else tuple(user_ids))
    positions = _field(frame, "positions", dict, rid, default={})
    for conversation_id, seq in positions.items():
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise MalformedFrame(f"position of {conversation_id!r} must be an integer seq", rid)
    return Sync(rid, dict(positions))


# --- limits -------------------------------------------------------------------------------------


class TokenBucket:
    """``rate_per_s`` tokens a second up to ``burst``; :meth:`take` spends one if there is one.
    Time comes in as ``now`` (seconds, any monotonic origin)."""

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0 and math.isfinite(burst) and burst >= 1):
            raise ValueError(f"a token bucket needs rate_per_s > 0 and burst ≥ 1, got {rate_per_s!r}, {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = float(now)

    def __repr__(self) -> str:
        return f"TokenBucket({self.rate_per_s:g}/s, burst {self.burst:g}, {self._tokens:.1f} left)"

    def take(self, now: float) -> bool:
        """Spend one token at ``now`` if one is there; ``False`` (nothing spent) otherwise."""
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


# --- one connection -----------------------------------------------------------------------------


class ConnectionState(Enum):
    """A connection's life: ``auth`` first, then requests, then closed."""

    AWAITING_AUTH = "awaiting auth"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Identity:
    """Who a connection is, once its token checked out."""

    user_id: str
    device_id: str
    expires_at: float


class ServerProtocol:
    """One connection's protocol state (see the module docstring).

    ``verify`` turns a token into an :class:`Identity` or raises :class:`AuthenticationFailed`
    (:meth:`chatdesign.chat.auth.TokenAuthority.verify`); ``sends_per_s`` and ``send_burst``
    size the token bucket for ``send`` frames; ``max_frame_bytes`` bounds a frame.
    """

    def __init__(self, verify: Callable[[str], Identity], now: float, *,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, sends_per_s: float = 20.0,
                 send_burst: float = 40.0) -> None:
        self._verify = verify
        self.max_frame_bytes = max_frame_bytes
        self.state = ConnectionState.AWAITING_AUTH
        self.identity: Identity | None = None
        self._bucket = TokenBucket(sends_per_s, send_burst, now)

    def __repr__(self) -> str:
        who = "" if self.identity is None else f" {self.identity.user_id}/{self.identity.device_id}"
        return f"ServerProtocol({self.state.value}{who})"

    def receive(self, data: str | bytes, now: float) -> Request:
        """The request in one incoming frame, checked for this connection's state and limits.

        Raises :class:`ProtocolError` (or :class:`Forbidden` for a spoofed sender); a failed
        ``auth`` also moves the connection to ``CLOSED`` (:attr:`close_expected`).
        """
        if self.state is ConnectionState.CLOSED:
            raise NotAuthenticated("the connection is closed")
        try:
            request = parse_request(data, self.max_frame_bytes)
        except ProtocolError:
            if self.state is ConnectionState.AWAITING_AUTH:
                self.state = ConnectionState.CLOSED
            raise
        if self.state is ConnectionState.AWAITING_AUTH:
            if not isinstance(request, Authenticate):
                self.state = ConnectionState.CLOSED
                raise NotAuthenticated("the first frame must be 'auth' with a token", request.request_id)
            try:
                self.identity = self._verify(request.token)
            except ProtocolError as error:
                self.state = ConnectionState.CLOSED
                error.request_id = request.request_id
                raise
            self.state = ConnectionState.OPEN
            return request
        if isinstance(request, Authenticate):
            raise NotAuthenticated("already authenticated", request.request_id)
        assert self.identity is not None
        if self.identity.expires_at <= now:
            self.state = ConnectionState.CLOSED
            raise AuthenticationFailed("the token has expired", request.request_id)
        if isinstance(request, Send) and not self._bucket.take(now):
            raise RateLimited(f"more than {self._bucket.rate_per_s:g} sends/s "
                              f"(burst {self._bucket.burst:g}); retry later", request.request_id)
        return request

    @property
    def close_expected(self) -> bool:
        """Whether the transport should close the connection (after sending the error)."""
        return self.state is ConnectionState.CLOSED

    def welcome_frame(self, request: Authenticate) -> dict[str, Any]:
        """The answer to a successful ``auth``."""
        assert self.identity is not None
        return {"type": "welcome", "id": request.request_id, "user_id": self.identity.user_id,
                "device_id": self.identity.device_id}


# --- frames out ---------------------------------------------------------------------------------


def encode(frame: Mapping[str, Any]) -> str:
    """A frame as compact JSON text. Text that cannot travel as UTF-8 (an error message quoting
    a lone surrogate the peer sent) is escaped as ``\\uXXXX``, so answering bad input never
    breaks the connection."""
    text = _COMPACT.encode(frame)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _COMPACT_ASCII.encode(frame)
    return text


# One encoder each, made once: ``json.dumps`` with any non-default argument builds a new
# encoder on every call, which cost about as much as the encoding itself (notebook 06's load test).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def message_payload(message: Message) -> dict[str, Any]:
    """A message as the protocol carries it (JSON-ready)."""
    return {"message_id": str(message.message_id), "conversation_id": message.conversation_id,
            "seq": message.seq, "sender_id": message.sender_id, "content": message.content,
            "created_at": message.created_at, "attachments": list(message.attachments)}


def message_frame(message: Message) -> dict[str, Any]:
    """The push of a committed message to a device."""
    return {"type": "message", "message": message_payload(message)}


def error_frame(error: BaseException, request_id: RequestId = None) -> dict[str, Any]:
    """The error frame for any exception: a :class:`ChatError` says its code and message;
    anything else is ``internal_error`` with no details (the server logs those)."""
    if isinstance(error, ProtocolError) and request_id is None:
        request_id = error.request_id
    if isinstance(error, ChatError):
        return {"type": "error", "id": request_id, "code": error.code, "message": error.message}
    return {"type": "error", "id": request_id, "code": "internal_error", "message": "internal error"}


def ack_frame(request: Send, result: Message) -> dict[str, Any]:
    """The answer to a ``send`` whose batch has committed."""
    return {"type": "ack", "id": request.request_id, "message_id": str(result.message_id),
            "conversation_id": result.conversation_id, "seq": result.seq,
            "created_at": result.created_at}


def send_request(identity: Identity, request: Send) -> SendRequest:
    """A ``send`` frame as one entry of :meth:`ChatServer.send_batch`: the sender is always the
    authenticated user."""
    return (identity.user_id, request.recipient_id, request.content, request.client_message_id,
            request.attachments)


@dataclass(frozen=True)
class Effects:
    """What one request causes: ``replies`` to this connection, ``broadcasts`` as
    ``(user_ids, frame)`` to every connection of those users."""

    replies: tuple[dict[str, Any], ...] = ()
    broadcasts: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()


def _page_frame(server: ChatServer, user_id: str, request: FetchConversations,
                page: ConversationPage) -> dict[str, Any]:
    items = []
    for item in page.items:
        seen = server.seen_positions(user_id, item.conversation_id)
        items.append({
            "conversation_id": item.conversation_id, "kind": item.kind, "title": item.title,
            "updated_at": item.updated_at, "last_seq": item.last_seq,
            "last_sender_id": item.last_sender_id, "last_message_preview": item.last_message_preview,
            "unread_count": item.unread_count, "members": list(seen), "seen": seen,
        })
    return {"type": "conversations", "id": request.request_id, "items": items,
            "page_number": page.page_number, "page_size": page.page_size, "has_more": page.has_more,
            "last_updated_timestamp": page.last_updated_timestamp}


def execute(server: ChatServer, identity: Identity, request: Request) -> Effects:
    """Run one non-``send``, non-presence request for ``identity`` on ``server``.

    Raises the server's :class:`ChatError` (which :func:`error_frame` answers); a refused
    request changes nothing stored.
    """
    user, device, rid = identity.user_id, identity.device_id, request.request_id
    if isinstance(request, DeliveryAck):
        server.ack_delivery(user, device, request.conversation_id, request.seq)
        return Effects()
    if isinstance(request, FetchConversations):
        page = server.fetch_conversations(user, request.page_number, request.page_size,
                                          request.last_updated_timestamp)
        return Effects((_page_frame(server, user, request, page),))
    if isinstance(request, FetchMessages):
        found = server.fetch_messages(user, request.conversation_id, request.before_seq,
                                      request.after_seq, request.limit)
        return Effects(({"type": "messages", "id": rid, "conversation_id": request.conversation_id,
                         "messages": [message_payload(m) for m in found]},))
    if isinstance(request, Seen):
        seq = server.mark_seen(user, request.conversation_id, request.seq)
        members = server.members(request.conversation_id)
        receipt = {"type": "receipt", "conversation_id": request.conversation_id, "user_id": user,
                   "seq": seq}
        return Effects(({"type": "seen", "id": rid, "conversation_id": request.conversation_id,
                         "seq": seq},), ((members, receipt),))
    if isinstance(request, Sync):
        result = server.sync(user, device, request.positions)
        return Effects(({"type": "sync", "id": rid, "conversations": {
            cid: [message_payload(m) for m in messages]
            for cid, messages in sorted(result.messages_by_conversation.items())}},))
    raise TypeError(f"execute does not run {type(request).__name__} requests")


def friends_graph(conversations: Sequence[tuple[str, Sequence[str]]],
                  direct_importance: float = 10.0, group_importance: float = 1.0,
                  users: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """Who hears whose presence: people who share a conversation, ``direct_importance`` for a
    1:1 partner (the "very important" tier by default) and ``group_importance`` for a group
    co-member. ``conversations`` is ``[(kind, member_ids), ...]``; ``users`` adds users with
    no conversation yet (they have no friends, but the presence service knows them)."""
    graph: dict[str, dict[str, float]] = {user: {} for user in users}
    for kind, members in conversations:
        weight = direct_importance if kind == "direct" else group_importance
        for a in members:
            mine = graph.setdefault(a, {})
            for b in members:
                if a != b:
                    mine[b] = max(mine.get(b, 0.0), weight)
    return graph
