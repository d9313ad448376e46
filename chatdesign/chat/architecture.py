"""The whole chat system as a graph built from code, with the estimate's numbers on each box.

Theory of operation. :class:`ChatScenario` holds the few habits of the users that notebook 01
starts from (50 M daily users, 40 messages each a day, ...) plus the capacity assumptions of the
boxes (connections per server and how full a server may run). :func:`size_chat_system` turns
it into a :class:`ChatSystemSizing`: every figure comes from :mod:`chatdesign.estimation`
(traffic, storage, connections, bandwidth), called once per box with that box's inputs, so the
picture and notebook 01 cannot disagree. :func:`build_chat_system` puts the figures on the
nodes of a ``networkx.DiGraph`` whose edges are the requests flowing between the boxes:

    clients -> load balancer -> WebSocket connection servers <-> chat service
    chat service -> message store (partitioned by conversation_id)
    connection servers and chat service -> presence store (Redis, TTL keys)
    chat service -> push notifications -> offline clients
    clients -> object store (uploads) and CDN (downloads) -> object store

:func:`draw_chat_system` draws it with matplotlib; :func:`system_table` lists the same figures
as a table. Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

import networkx as nx
import pandas as pd
from matplotlib.axes import Axes

from chatdesign.checks import check_fraction, check_number
from chatdesign.estimation import (
    estimate_bandwidth,
    estimate_connections,
    estimate_storage,
    estimate_traffic,
)
from chatdesign.exercises import CheckResult, not_answered
from chatdesign.units import format_bitrate, format_bytes, format_count

__all__ = [
    "BOXES",
    "EXERCISE_SCENARIO",
    "Box",
    "ChatScenario",
    "ChatSystemSizing",
    "build_chat_system",
    "check_connection_servers",
    "draw_chat_system",
    "size_chat_system",
    "system_table",
]


@dataclass(frozen=True)
class ChatScenario:
    """Inputs of the system picture. The user habits default to notebook 01's messenger.

    User habits (notebook 01): ``daily_active_users``, ``messages_per_user_per_day``,
    ``peak_factor`` (peak / average), ``receivers_per_message`` (1 for 1:1 chat),
    ``bytes_per_message`` (text plus ids), ``media_fraction`` of messages carrying one
    attachment of ``media_bytes``, kept ``retention_days`` in ``replication_factor`` copies,
    and ``online_share`` of the daily users connected at the peak.

    Capacity assumptions (ours, stated): ``memory_per_connection_bytes`` is Alex Xu's 10 KB;
    ``connections_per_server`` is what one connection server can hold (the estimation default,
    1 M; WhatsApp reported 2 M+ in 2012); ``max_utilisation`` is how full a server may run, so
    the connections of a failed server fit on the others; ``partition_bytes`` is the data one
    message-store partition holds (one copy); ``heartbeat_interval_s`` is the presence
    heartbeat (Xu's 5 s, :class:`~chatdesign.presence.PresencePolicy`'s default).
    """

    daily_active_users: float = 50e6
    messages_per_user_per_day: float = 40
    peak_factor: float = 2.0
    receivers_per_message: float = 1
    bytes_per_message: float = 100
    media_fraction: float = 0.02
    media_bytes: float = 200e3
    retention_days: float = 5 * 365
    replication_factor: float = 3
    online_share: float = 0.1
    memory_per_connection_bytes: float = 10_000
    connections_per_server: float = 1_000_000
    max_utilisation: float = 0.7
    partition_bytes: float = 1e12
    heartbeat_interval_s: float = 5.0  # PresencePolicy's default (a test keeps them equal)

    def __post_init__(self) -> None:
        check_number(self.daily_active_users, "daily_active_users", positive=True)
        for name in ("messages_per_user_per_day", "bytes_per_message", "media_bytes"):
            check_number(getattr(self, name), name, minimum=0)
        check_number(self.peak_factor, "peak_factor", minimum=1)
        check_number(self.receivers_per_message, "receivers_per_message", minimum=1)
        check_fraction(self.media_fraction, "media_fraction")
        check_fraction(self.online_share, "online_share")
        for name in (
            "retention_days",
            "replication_factor",
            "memory_per_connection_bytes",
            "connections_per_server",
            "partition_bytes",
            "heartbeat_interval_s",
        ):
            check_number(getattr(self, name), name, positive=True)
        check_number(self.max_utilisation, "max_utilisation", positive=True, maximum=1)


@dataclass(frozen=True, repr=False)
class ChatSystemSizing:
    """The figures on each box of the picture, computed from a :class:`ChatScenario`.

    Rates are per second at the peak unless named ``average``; sizes in bytes; ``*_bps`` in
    bits per second.
    """

    scenario: ChatScenario
    messages_per_day: float
    average_send_rps: float
    peak_send_rps: float
    peak_delivery_rps: float
    connections: float
    connections_per_server: float
    """Connections one server holds when the load is spread evenly over ``servers``."""
    servers: int
    """Connection servers needed when none may run above ``max_utilisation``."""
    servers_at_full_capacity: int
    """Servers needed if every one ran completely full (no headroom)."""
    memory_per_server_bytes: float
    connection_memory_bytes: float
    peak_ingress_bps: float
    peak_egress_bps: float
    heartbeats_per_s: float
    offline_pushes_per_s: float
    text_per_day_bytes: float
    text_stored_bytes: float
    """Message text after ``retention_days``, every replica counted."""
    partitions: int
    """Message-store partitions of ``partition_bytes`` (one copy of the text)."""
    writes_per_partition_per_s: float
    media_per_day_bytes: float
    media_stored_bytes: float
    peak_uploads_per_s: float
    peak_downloads_per_s: float
    cdn_egress_bps: float

    def __repr__(self) -> str:
        return (
            f"ChatSystemSizing(peak_send_rps={format_count(self.peak_send_rps)}, "
            f"connections={format_count(self.connections)}, servers={self.servers}, "
            f"text/day={format_bytes(self.text_per_day_bytes)}, media/day={format_bytes(self.media_per_day_bytes)}, "
            f"partitions={self.partitions})"
        )

    def to_frame(self) -> pd.DataFrame:
        """Every figure as a one-column table (the scenario's inputs left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "scenario"}
        return pd.DataFrame({"value": pd.Series(values, dtype=float)}).rename_axis("figure")


def size_chat_system(scenario: ChatScenario | None = None) -> ChatSystemSizing:
    """Every box's figures for ``scenario`` (notebook 01's messenger by default).

    Traffic, storage, connections and bandwidth come from :mod:`chatdesign.estimation`; the
    only arithmetic here divides a total among servers or partitions and picks the offline
    share of deliveries (a receiver is taken to be offline with probability
    ``1 - online_share``, a simplification: people who chat are online more than average).
    """
    s = scenario or ChatScenario()
    if not isinstance(s, ChatScenario):
        raise ValueError(f"scenario must be a ChatScenario, got {s!r}")
    traffic = estimate_traffic(
        s.daily_active_users, s.messages_per_user_per_day, s.peak_factor, s.receivers_per_message
    )
    media_traffic = estimate_traffic(
        s.daily_active_users,
        s.messages_per_user_per_day * s.media_fraction,
        s.peak_factor,
        s.receivers_per_message,
    )
    text = estimate_storage(float(traffic.per_day), s.bytes_per_message, s.retention_days, s.replication_factor)
    media = estimate_storage(float(media_traffic.per_day), s.media_bytes, s.retention_days, s.replication_factor)
    one_copy_text = estimate_storage(float(traffic.per_day), s.bytes_per_message, s.retention_days)
    online = s.daily_active_users * s.online_share
    usable = s.connections_per_server * s.max_utilisation
    connections = estimate_connections(online, s.memory_per_connection_bytes, usable)
    full = estimate_connections(online, s.memory_per_connection_bytes, s.connections_per_server)
    text_bandwidth = estimate_bandwidth(float(traffic.peak_rps), s.bytes_per_message, s.receivers_per_message)
    media_bandwidth = estimate_bandwidth(float(media_traffic.peak_rps), s.media_bytes, s.receivers_per_message)
    partitions = max(1, math.ceil(float(one_copy_text.total_bytes) / s.partition_bytes))
    per_server = connections.connections / connections.servers if connections.servers else 0.0
    return ChatSystemSizing(
        scenario=s,
        messages_per_day=float(traffic.per_day),
        average_send_rps=float(traffic.average_rps),
        peak_send_rps=float(traffic.peak_rps),
        peak_delivery_rps=float(traffic.read_peak_rps),
        connections=connections.connections,
        connections_per_server=per_server,
        servers=connections.servers,
        servers_at_full_capacity=full.servers,
        memory_per_server_bytes=per_server * s.memory_per_connection_bytes,
        connection_memory_bytes=connections.memory_bytes,
        peak_ingress_bps=text_bandwidth.ingress_bps,
        peak_egress_bps=text_bandwidth.egress_bps,
        heartbeats_per_s=connections.connections / s.heartbeat_interval_s,
        offline_pushes_per_s=float(traffic.read_peak_rps) * (1 - s.online_share),
        text_per_day_bytes=float(text.per_day_bytes),
        text_stored_bytes=float(text.total_bytes),
        partitions=partitions,
        writes_per_partition_per_s=float(traffic.peak_rps) / partitions,
        media_per_day_bytes=float(media.per_day_bytes),
        media_stored_bytes=float(media.total_bytes),
        peak_uploads_per_s=float(media_traffic.peak_rps),
        peak_downloads_per_s=float(media_traffic.read_peak_rps),
        cdn_egress_bps=media_bandwidth.egress_bps,
    )


@dataclass(frozen=True)
class Box:
    """One box of the picture: node name, title (may span lines), position and fill colour."""

    name: str
    title: str
    x: float
    y: float
    colour: str


BOXES: Final[tuple[Box, ...]] = (
    Box("clients", "Clients\n(phones, browsers)", 0.0, 1.0, "#dbe7f5"),
    Box("load_balancer", "Load balancer\n(L4, WebSocket upgrade)", 2.4, 2.2, "#e8e8e8"),
    Box("connection_servers", "WebSocket\nconnection servers", 5.2, 2.2, "#d9f0d3"),
    Box("chat_service", "Chat service\n(send, ack, sync)", 8.4, 2.2, "#fde0c5"),
    Box("message_store", "Message store\npartitioned by conversation_id", 11.8, 2.2, "#f6d5d5"),
    Box("presence_store", "Presence store\n(Redis, TTL keys)", 6.8, 3.9, "#e4dcf2"),
    Box("push", "Push notifications\n(APNs / FCM)", 5.2, 0.5, "#fff2b3"),
    Box("object_store", "Object store\n(attachments)", 8.4, -1.0, "#f6d5d5"),
    Box("cdn", "CDN\n(attachment downloads)", 2.6, -1.0, "#e8e8e8"),
)
"""The boxes of the picture: node name, title and position (left to right, the way a message
travels from sender to storage)."""

_EDGES: Final[tuple[tuple[str, str, str], ...]] = (
    ("clients", "load_balancer", "WebSocket"),
    ("load_balancer", "connection_servers", "sticky TCP"),
    ("connection_servers", "chat_service", "send, ack, sync"),
    ("chat_service", "connection_servers", "push to online devices"),
    ("chat_service", "message_store", "append (conversation_id, seq)"),
    ("connection_servers", "presence_store", "heartbeats"),
    ("chat_service", "presence_store", "who is online?"),
    ("chat_service", "push", "receiver offline"),
    ("push", "clients", "notification"),
    ("clients", "object_store", "upload"),
    ("clients", "cdn", "download"),
    ("cdn", "object_store", "cache miss"),
)


def _figures(sizing: ChatSystemSizing) -> dict[str, tuple[tuple[str, str], ...]]:
    s = sizing
    c = s.scenario
    rate = format_count
    return {
        "clients": (
            ("daily active users", format_count(c.daily_active_users)),
            ("online at the peak", format_count(s.connections)),
            ("peak sends", f"{rate(s.peak_send_rps)}/s"),
        ),
        "load_balancer": (
            ("connections routed", format_count(s.connections)),
            ("peak ingress (text)", format_bitrate(s.peak_ingress_bps)),
        ),
        "connection_servers": (
            (f"servers (max {c.max_utilisation:.0%} full)", str(s.servers)),
            ("connections per server", format_count(s.connections_per_server)),
            ("memory per server at 10 KB", format_bytes(s.memory_per_server_bytes)),
        ),
        "chat_service": (
            ("peak sends", f"{rate(s.peak_send_rps)}/s"),
            ("peak deliveries", f"{rate(s.peak_delivery_rps)}/s"),
        ),
        "message_store": (
            ("text per day", format_bytes(s.text_per_day_bytes)),
            (f"after {c.retention_days / 365:g} y x{c.replication_factor:g}", format_bytes(s.text_stored_bytes)),
            (f"partitions of {format_bytes(c.partition_bytes)}", format_count(s.partitions)),
            ("peak writes per partition", f"{s.writes_per_partition_per_s:.3g}/s"),
        ),
        "presence_store": (
            ("online users", format_count(s.connections)),
            (f"heartbeats (every {c.heartbeat_interval_s:g} s)", f"{rate(s.heartbeats_per_s)}/s"),
        ),
        "push": (("peak pushes to offline devices", f"{rate(s.offline_pushes_per_s)}/s"),),
        "object_store": (
            ("media per day", format_bytes(s.media_per_day_bytes)),
            (f"after {c.retention_days / 365:g} y x{c.replication_factor:g}", format_bytes(s.media_stored_bytes)),
            ("peak uploads", f"{rate(s.peak_uploads_per_s)}/s"),
        ),
        "cdn": (
            ("peak downloads", f"{rate(s.peak_downloads_per_s)}/s"),
            ("peak egress", format_bitrate(s.cdn_egress_bps)),
        ),
    }


def build_chat_system(sizing: ChatSystemSizing | None = None) -> nx.DiGraph[str]:
    """The chat system as a directed graph: one node per box, one edge per kind of request.

    Nodes carry ``title``, ``x``/``y`` (drawing position), ``colour`` and ``figures`` (pairs of
    label and formatted value from ``sizing``); edges carry ``label`` (what flows). With no
    argument, notebook 01's messenger is sized first.
    """
    chosen = sizing if sizing is not None else size_chat_system()
    if not isinstance(chosen, ChatSystemSizing):
        raise ValueError(f"sizing must be a ChatSystemSizing, got {chosen!r}")
    figures = _figures(chosen)
    graph: nx.DiGraph[str] = nx.DiGraph(name="chat system")
    for box in BOXES:
        graph.add_node(box.name, title=box.title, x=box.x, y=box.y, colour=box.colour, figures=figures[box.name])
    for source, target, label in _EDGES:
        graph.add_edge(source, target, label=label)
    return graph


def system_table(graph: nx.DiGraph[str]) -> pd.DataFrame:
    """The figures on every box as a table indexed by (box, figure), values formatted."""
    rows = [
        (data["title"].replace("\n", " "), label, value)
        for _, data in graph.nodes(data=True)
        for label, value in data.get("figures", ())
    ]
    if not rows:
        raise ValueError("the graph has no figures on its boxes; build it with build_chat_system")
    frame = pd.DataFrame(rows, columns=["box", "figure", "value"])
    return frame.set_index(["box", "figure"])


def draw_chat_system(graph: nx.DiGraph[str], ax: Axes | None = None) -> Axes:
    """Draw the boxes with their figures and the requests between them; returns the axes."""
    if graph.number_of_nodes() == 0:
        raise ValueError("the graph is empty")
    for node, data in graph.nodes(data=True):
        if not {"title", "x", "y", "colour"} <= set(data):
            raise ValueError(f"node {node!r} lacks a title, position or colour; build it with build_chat_system")
    if ax is None:
        import matplotlib.pyplot as plt  # only drawing needs pyplot (and a backend)

        _, ax = plt.subplots(figsize=(14, 7))
    texts = {}
    for node, data in graph.nodes(data=True):
        lines = [data["title"]] + [f"{label}: {value}" for label, value in data.get("figures", ())]
        texts[node] = ax.text(
            data["x"], data["y"], "\n".join(lines), ha="center", va="center", fontsize=7.5, zorder=3,
            bbox={"boxstyle": "round,pad=0.5", "facecolor": data["colour"], "edgecolor": "#555555"},
        )
    for source, target, data in graph.edges(data=True):
        a, b = graph.nodes[source], graph.nodes[target]
        both_ways = graph.has_edge(target, source)
        style = "arc3,rad=0.15" if both_ways else "arc3,rad=0.0"
        ax.annotate(
            "", xy=(b["x"], b["y"]), xytext=(a["x"], a["y"]), zorder=5,  # after the boxes, which place their patches
            arrowprops={
                "arrowstyle": "-|>,head_length=0.6,head_width=0.3", "color": "#555555", "lw": 1.0,
                "connectionstyle": style,
                "patchA": texts[source].get_bbox_patch(), "patchB": texts[target].get_bbox_patch(),
            },
        )
        # arc3 bends an edge to the right of its direction: left-to-right below, the way back above
        offset = -0.2 if both_ways and (a["x"], a["y"]) < (b["x"], b["y"]) else 0.2 if both_ways else 0.12
        ax.text(
            (a["x"] + b["x"]) / 2, (a["y"] + b["y"]) / 2 + offset, data.get("label", ""), fontsize=6.5,
            ha="center", va="center", color="#333333", zorder=6,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        )
    xs = [d["x"] for _, d in graph.nodes(data=True)]
    ys = [d["y"] for _, d in graph.nodes(data=True)]
    ax.set_xlim(min(xs) - 1.1, max(xs) + 1.3)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.6)
    ax.set_axis_off()
    ax.set_title("The chat system at the peak, sized from the estimate (arrows: who calls whom)")
    return ax


EXERCISE_SCENARIO: Final = ChatScenario(
    daily_active_users=200e6, online_share=0.2, connections_per_server=500_000, max_utilisation=0.6
)
"""Notebook 06's exercise: a bigger messenger whose connection servers hold fewer connections."""

_SERVERS_HINT = (
    "count the devices connected at the peak, divide by what one server may hold (its capacity "
    "times the utilisation limit), and round up"
)


def check_connection_servers(answer: float | None, scenario: ChatScenario = EXERCISE_SCENARIO) -> CheckResult:
    """Notebook 06's exercise: how many connection servers does ``scenario`` need?

    The answer is a whole number of servers. ``None`` gives "not answered yet" and a hint; a
    wrong answer is diagnosed -- every server run completely full, every daily user counted as
    connected, a fraction of a server rounded down -- without giving the expected count away.
    """
    name = "connection servers"
    if answer is None:
        return not_answered(name, _SERVERS_HINT)
    if isinstance(answer, bool) or not isinstance(answer, int | float) or not math.isfinite(answer):
        raise ValueError(f"{name}: the answer must be a number of servers, got {answer!r}")
    sizing = size_chat_system(scenario)
    expected = sizing.servers
    usable = scenario.connections_per_server * scenario.max_utilisation
    if answer == expected:
        return CheckResult(
            name, True,
            f"{expected} servers: {format_count(sizing.connections)} connections, at most "
            f"{format_count(usable)} on each",
        )
    if answer == sizing.servers_at_full_capacity:
        why = "that runs every server completely full: keep each under the utilisation limit"
    elif answer == math.ceil(scenario.daily_active_users / usable):
        why = "that connects every daily user at once: only the online share holds a connection at the peak"
    elif not float(answer).is_integer():
        why = "a server is a whole machine: round up"
    elif answer == math.floor(sizing.connections / usable):
        why = "rounded down: a fraction of a server is still a server, so round up"
    else:
        direction = "high" if answer > expected else "low"
        far = " by more than a factor of 3" if not 1 / 3 < answer / expected < 3 else ""
        why = f"too {direction}{far}; {_SERVERS_HINT}"
    return CheckResult(name, False, f"{answer:,g} servers is wrong: {why}")
