"""How a message reaches a phone: polling, long polling and WebSockets, costed side by side.

Theory of operation. :class:`TransportScenario` states a population of online devices, how
many messages each receives, the network's round trip and the byte sizes of the protocol
pieces. :func:`compare_transports` returns, for each transport, the HTTP requests per second
the servers answer, the *exchanges* per second (a request and its response, or a frame and its
reply), how many responses carry nothing, the bytes per second on the wire (both directions,
TCP/IP headers included), and the send → delivery latency (mean, median, 99th percentile).

The models, for messages arriving as a Poisson stream of ``λ`` per device per second, round
trip ``r`` and server time ``s``; every latency is ``r/2`` (sender to server) ``+ s + W + r/2``
(server to receiver), where ``W`` is the time the message waits for a way out:

- **polling** every ``T`` seconds: ``1/T`` requests per device; a message waits for the next
  poll, ``W ~ Uniform(0, T)``; a response is empty with probability ``exp(-λT)``.
- **long polling** with timeout ``H``: the server holds each request until a message arrives or
  ``H`` passes; then the device asks again, which takes one round trip ``r`` during which no
  request is waiting. A cycle lasts ``C = r + exp(-λr)·(1 - exp(-λH))/λ`` on average (a message
  that arrived during the gap is answered at once); a message waits only if it falls in the gap
  (a share ``g = r/C`` of the time), then ``W ~ Uniform(0, r)``.
- **WebSockets**: one handshake per connection lifetime, then frames: each message is pushed in
  a frame (RFC 6455 framing, :func:`websocket_frame_bytes`) and acknowledged by the device in
  another; a ping and pong every ``ping_interval_s`` keep the connection alive; ``W = 0``.

HTTP runs over kept-alive connections (no TCP handshake per poll); every request, response and
frame is counted as one packet with ``packet_overhead_bytes`` of TCP/IP headers.

:class:`LoopbackLatencyModel` is the small model of the real server on one machine that
notebook 06 sets against measurement. Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Final, Literal

import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.units import format_bytes, format_count, format_duration

if TYPE_CHECKING:
    import ipywidgets as widgets

__all__ = [
    "TRANSPORTS",
    "TRANSPORT_PANEL_DEFAULTS",
    "XU_MEMORY_PER_CONNECTION_BYTES",
    "LatencyPrediction",
    "LoopbackLatencyModel",
    "Transport",
    "TransportComparison",
    "TransportCost",
    "TransportScenario",
    "compare_transports",
    "delivery_latency_quantile_ms",
    "transport_panel",
    "transport_sweep",
    "transport_table",
    "websocket_frame_bytes",
]

Transport = Literal["polling", "long polling", "WebSockets"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("polling", "long polling", "WebSockets")

XU_MEMORY_PER_CONNECTION_BYTES: Final = 10_000
"""Alex Xu's assumption (*System Design Interview*, chat chapter): 10 KB of server memory per
connection, so 1 M connections take 10 GB. His figure, quoted; not a measurement of ours."""


def websocket_frame_bytes(payload_bytes: int, masked: bool) -> int:
    """Bytes of one WebSocket frame carrying ``payload_bytes`` (RFC 6455, section 5.2).

    A 2-byte header; a 2-byte extended length for payloads of 126-65,535 bytes or an 8-byte one
    above; a 4-byte masking key on every frame a client sends (``masked=True``).
    """
    size = check_whole(payload_bytes, "payload_bytes")
    extended = 0 if size <= 125 else 2 if size <= 65_535 else 8
    return 2 + extended + (4 if masked else 0) + size


@dataclass(frozen=True)
class TransportScenario:
    """Inputs of :func:`compare_transports`. Sizes in bytes, durations as the names say.

    ``online_users`` devices are connected (or polling); each receives
    ``messages_per_user_per_hour``. ``rtt_ms`` is the device's network round trip (about 100 ms
    on a mobile network) and ``server_ms`` the time the server spends storing and routing a
    message, the same for every transport. The byte sizes are typical, not measured:
    ``http_request_bytes`` (request line and headers with a token or cookie),
    ``http_response_bytes`` (status line and headers), ``ack_bytes`` (a delivery acknowledgement's
    JSON), ``packet_overhead_bytes`` (IPv4 + TCP headers without options). ``ping_interval_s`` is
    the ``websockets`` library's default keepalive (20 s); ``connection_lifetime_s`` is how long a
    phone keeps one WebSocket before the network changes and it reconnects.
    """

    online_users: float = 1_000_000
    messages_per_user_per_hour: float = 60
    message_bytes: int = 100
    poll_interval_s: float = 5.0
    long_poll_timeout_s: float = 30.0
    rtt_ms: float = 100.0
    server_ms: float = 5.0
    http_request_bytes: int = 400
    http_response_bytes: int = 200
    ack_bytes: int = 60
    packet_overhead_bytes: int = 40
    ping_interval_s: float = 20.0
    ping_payload_bytes: int = 4
    connection_lifetime_s: float = 3_600.0

    def __post_init__(self) -> None:
        check_number(self.online_users, "online_users", positive=True)
        check_number(self.messages_per_user_per_hour, "messages_per_user_per_hour", minimum=0)
        for name in ("poll_interval_s", "long_poll_timeout_s", "ping_interval_s", "connection_lifetime_s"):
            check_number(getattr(self, name), name, positive=True, unit="seconds")
        check_number(self.rtt_ms, "rtt_ms", minimum=0, unit="milliseconds")
        check_number(self.server_ms, "server_ms", minimum=0, unit="milliseconds")
        for name in (
            "message_bytes", "http_request_bytes", "http_response_bytes", "ack_bytes",
            "packet_overhead_bytes", "ping_payload_bytes",
        ):
            check_whole(getattr(self, name), name)
        if self.ping_payload_bytes > 125:
            raise ValueError(f"a ping carries at most 125 bytes (RFC 6455), got {self.ping_payload_bytes}")

    @property
    def messages_per_user_per_s(self) -> float:
        """``λ``: messages each device receives per second."""
        return self.messages_per_user_per_hour / 3_600


@dataclass(frozen=True)
class TransportCost:
    """One transport's cost for a :class:`TransportScenario` (rates per second, whole fleet)."""

    transport: Transport
    http_requests_per_s: float
    """HTTP requests the servers answer (for WebSockets: the upgrade handshakes)."""
    exchanges_per_s: float
    """Requests with their responses, or frames with their replies (message + ack, ping + pong)."""
    empty_response_share: float
    """Share of responses that carry no message (0 for WebSockets: nothing is sent unasked)."""
    messages_per_s: float
    """Messages delivered per second (the same for every transport)."""
    bytes_per_s: float
    """Bytes on the wire, both directions, TCP/IP headers included."""
    payload_bytes_per_s: float
    """Of which message content."""
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def overhead_bytes_per_message(self) -> float:
        """Bytes on the wire per message delivered, beyond the message itself."""
        if self.messages_per_s == 0:
            return math.inf
        return (self.bytes_per_s - self.payload_bytes_per_s) / self.messages_per_s

    def __repr__(self) -> str:
        return (
            f"TransportCost({self.transport}: {format_count(self.http_requests_per_s)} HTTP requests/s, "
            f"{format_bytes(self.bytes_per_s)}/s, delivery {self.latency_mean_ms:,.0f} ms mean, "
            f"{self.latency_p99_ms:,.0f} ms p99)"
        )


@dataclass(frozen=True)
class TransportComparison:
    """The three transports for one scenario; index it by transport name."""

    scenario: TransportScenario
    options: tuple[TransportCost, ...]

    def __getitem__(self, transport: str) -> TransportCost:
        for option in self.options:
            if option.transport == transport:
                return option
        raise KeyError(f"unknown transport {transport!r}; use one of: {', '.join(TRANSPORTS)}")

    def __repr__(self) -> str:
        return "TransportComparison(\n" + "".join(f"  {o!r},\n" for o in self.options) + ")"

    def to_frame(self) -> pd.DataFrame:
        """One row per transport, numbers unformatted."""
        rows = []
        for option in self.options:
            row = {f.name: getattr(option, f.name) for f in fields(option) if f.name != "transport"}
            row["overhead_bytes_per_message"] = option.overhead_bytes_per_message
            rows.append(row)
        return pd.DataFrame(rows, index=pd.Index([o.transport for o in self.options], name="transport"))


def _long_poll_cycle_s(s: TransportScenario) -> tuple[float, float]:
    """Mean cycle length (s) and mean hold time (s) of one long-poll request."""
    rate, rtt = s.messages_per_user_per_s, s.rtt_ms / 1000
    if rate == 0:
        hold = s.long_poll_timeout_s
    else:
        hold = math.exp(-rate * rtt) * -math.expm1(-rate * s.long_poll_timeout_s) / rate
    return rtt + hold, hold


def delivery_latency_quantile_ms(scenario: TransportScenario, transport: str, q: float) -> float:
    """The ``q`` quantile (0-1) of send → delivery latency in ms for ``transport``."""
    chosen = _transport(transport)
    quantile = check_fraction(q, "q")
    s = scenario
    base = s.rtt_ms + s.server_ms
    if chosen == "polling":
        return base + quantile * s.poll_interval_s * 1000
    if chosen == "long polling":
        cycle, _ = _long_poll_cycle_s(s)
        gap = (s.rtt_ms / 1000) / cycle
        if gap == 0 or quantile <= 1 - gap:
            return base
        return base + s.rtt_ms * (quantile - (1 - gap)) / gap
    return base


def _transport(transport: str) -> Transport:
    for known in TRANSPORTS:
        if transport == known:
            return known
    raise ValueError(f"unknown transport {transport!r}; use one of: {', '.join(TRANSPORTS)}")


def compare_transports(scenario: TransportScenario | None = None) -> TransportComparison:
    """Cost polling, long polling and WebSockets for ``scenario`` (the defaults: 1 M devices)."""
    s = scenario or TransportScenario()
    if not isinstance(s, TransportScenario):
        raise ValueError(f"scenario must be a TransportScenario, got {s!r}")
    users, rate = s.online_users, s.messages_per_user_per_s
    packet = s.packet_overhead_bytes
    http_round = s.http_request_bytes + s.http_response_bytes + 2 * packet
    payload = users * rate * s.message_bytes

    def latency(transport: Transport) -> tuple[float, float, float]:
        base = s.rtt_ms + s.server_ms
        if transport == "polling":
            mean = base + s.poll_interval_s * 1000 / 2
        elif transport == "long polling":
            cycle, _ = _long_poll_cycle_s(s)
            mean = base + (s.rtt_ms / 1000 / cycle) * s.rtt_ms / 2
        else:
            mean = base
        return (
            mean,
            delivery_latency_quantile_ms(s, transport, 0.5),
            delivery_latency_quantile_ms(s, transport, 0.99),
        )

    polls = users / s.poll_interval_s
    polling = TransportCost(
        "polling", polls, polls, math.exp(-rate * s.poll_interval_s), users * rate,
        polls * http_round + payload, payload, *latency("polling"),
    )
    cycle, _ = _long_poll_cycle_s(s)
    long_polls = users / cycle
    # A cycle ends empty (a timeout) when no message came during the gap nor the hold.
    empty = math.exp(-rate * (s.rtt_ms / 1000 + s.long_poll_timeout_s))
    long_polling = TransportCost(
        "long polling", long_polls, long_polls, empty, users * rate,
        long_polls * http_round + payload, payload, *latency("long polling"),
    )
    handshakes = users / s.connection_lifetime_s
    messages = users * rate
    pings = users / s.ping_interval_s
    message_frames = websocket_frame_bytes(s.message_bytes, masked=False) + websocket_frame_bytes(s.ack_bytes, True)
    ping_frames = websocket_frame_bytes(s.ping_payload_bytes, False) + websocket_frame_bytes(s.ping_payload_bytes, True)
    websocket = TransportCost(
        "WebSockets", handshakes, handshakes + messages + pings, 0.0, messages,
        handshakes * http_round + messages * (message_frames + 2 * packet) + pings * (ping_frames + 2 * packet),
        payload, *latency("WebSockets"),
    )
    return TransportComparison(s, (polling, long_polling, websocket))


TRANSPORT_PANEL_DEFAULTS: Final[dict[str, float]] = {
    "online_users": 1_000_000,
    "messages_per_user_per_hour": 60,
    "poll_interval_s": 5.0,
    "rtt_ms": 100.0,
}
"""The widget's starting values (the :class:`TransportScenario` defaults)."""


def transport_table(
    online_users: float, messages_per_user_per_hour: float, poll_interval_s: float, rtt_ms: float
) -> pd.DataFrame:
    """:func:`compare_transports` for the widget's four inputs, formatted in human units."""
    scenario = replace(
        TransportScenario(),
        online_users=online_users,
        messages_per_user_per_hour=messages_per_user_per_hour,
        poll_interval_s=poll_interval_s,
        rtt_ms=rtt_ms,
    )
    frame = compare_transports(scenario).to_frame()
    return pd.DataFrame(
        {
            "HTTP requests per second": frame["http_requests_per_s"].map(format_count),
            "exchanges per second": frame["exchanges_per_s"].map(format_count),
            "empty responses": frame["empty_response_share"].map("{:.0%}".format),
            "bytes per second": frame["bytes_per_s"].map(lambda b: f"{format_bytes(b)}/s"),
            "delivery latency, mean": frame["latency_mean_ms"].map(lambda ms: format_duration(ms / 1000)),
            "delivery latency, p99": frame["latency_p99_ms"].map(lambda ms: format_duration(ms / 1000)),
        },
        index=frame.index,
    )


def transport_panel() -> widgets.interactive:
    """Sliders for the transport comparison; ``panel.result`` is the current table.

    Display it (the last line of a cell): the table is re-drawn under the sliders as they move.
    """
    import ipywidgets as widgets  # only the panel needs it

    d = TRANSPORT_PANEL_DEFAULTS
    style = {"description_width": "initial"}
    return widgets.interactive(
        transport_table,
        {"auto_display": True},  # show the table under the sliders, as ``interact`` does
        online_users=widgets.FloatLogSlider(
            value=d["online_users"], base=10, min=3, max=8, step=0.25, readout_format=",.0f",
            description="devices online", style=style,
        ),
        messages_per_user_per_hour=widgets.FloatSlider(
            value=d["messages_per_user_per_hour"], min=0, max=600, step=5, readout_format=".0f",
            description="messages received per device per hour", style=style,
        ),
        poll_interval_s=widgets.FloatSlider(
            value=d["poll_interval_s"], min=0.5, max=60, step=0.5, readout_format=".1f",
            description="polling interval (seconds)", style=style,
        ),
        rtt_ms=widgets.FloatSlider(
            value=d["rtt_ms"], min=1, max=500, step=1, readout_format=".0f",
            description="network round trip (milliseconds)", style=style,
        ),
    )


def transport_sweep(parameter: str, values: list[float], scenario: TransportScenario | None = None) -> pd.DataFrame:
    """What one input does: for each value of ``parameter`` (a :class:`TransportScenario` field),
    the HTTP requests/s, bytes/s and p99 latency of each transport, one row per value."""
    base = scenario or TransportScenario()
    names = {f.name for f in fields(TransportScenario)}
    if parameter not in names:
        raise ValueError(f"unknown parameter {parameter!r}; use a TransportScenario field: {', '.join(sorted(names))}")
    if not values:
        raise ValueError("values must not be empty")
    rows = []
    for value in values:
        comparison = compare_transports(replace(base, **{parameter: value}))  # type: ignore[arg-type]
        row: dict[str, float] = {parameter: value}
        for option in comparison.options:
            row[f"{option.transport}: requests/s"] = option.http_requests_per_s
            row[f"{option.transport}: bytes/s"] = option.bytes_per_s
            row[f"{option.transport}: p99 ms"] = option.latency_p99_ms
        rows.append(row)
    return pd.DataFrame(rows).set_index(parameter)


@dataclass(frozen=True)
class LatencyPrediction:
    """Predicted send → delivery latency on loopback, in milliseconds."""

    mean_ms: float
    p50_ms: float
    p99_ms: float

    def __repr__(self) -> str:
        return f"LatencyPrediction(mean={self.mean_ms:.2f} ms, p50={self.p50_ms:.2f} ms, p99={self.p99_ms:.2f} ms)"


@dataclass(frozen=True)
class LoopbackLatencyModel:
    """Send → delivery on one machine: two loopback hops, the send itself, and the group commit.

    ``hop_ms`` is one WebSocket frame from one event loop to another over loopback (calibrate it:
    half a ping round trip measured in the same run); ``send_ms`` is the chat core and store
    handling one send including its durable commit (calibrate it: the in-process server timed in
    the same directory); a send then waits between ``batch_wait_min_ms`` and
    ``batch_wait_max_ms`` (uniformly) for its group commit to close, as the server is configured.
    Latency = ``2 x hop_ms + send_ms + wait``. Every parameter is named so that the notebook can
    state it and show what it does.
    """

    hop_ms: float
    send_ms: float
    batch_wait_min_ms: float = 0.0
    batch_wait_max_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hop_ms", "send_ms", "batch_wait_min_ms", "batch_wait_max_ms"):
            check_number(getattr(self, name), name, minimum=0, unit="milliseconds")
        if self.batch_wait_max_ms < self.batch_wait_min_ms:
            raise ValueError(
                f"batch_wait_max_ms ({self.batch_wait_max_ms:g}) must not be below "
                f"batch_wait_min_ms ({self.batch_wait_min_ms:g})"
            )

    def quantile_ms(self, q: float) -> float:
        """The ``q`` quantile (0-1) of the predicted latency in ms."""
        quantile = check_fraction(q, "q")
        spread = self.batch_wait_max_ms - self.batch_wait_min_ms
        return 2 * self.hop_ms + self.send_ms + self.batch_wait_min_ms + quantile * spread

    def predict(self) -> LatencyPrediction:
        """Mean, median and 99th percentile of the predicted latency."""
        return LatencyPrediction(self.quantile_ms(0.5), self.quantile_ms(0.5), self.quantile_ms(0.99))
