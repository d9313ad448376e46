"""The live-video delivery graph: players → edge proxy → edge cache → origin cache → origin server.

Theory of operation. :func:`build_topology` places ``pops`` points of presence (PoPs) and
``origin_caches`` origin-cache sites at seeded random positions on a 4,000 km x 2,000 km map and
links them the way Facebook Live (2015) did: each PoP has a player group (its viewers), a few edge
proxies and one edge cache; every edge cache pulls from its nearest origin cache; every origin
cache pulls from the single origin (live stream) server. Edges point the way video flows
(upstream → downstream) and carry a one-way ``latency_ms`` and a ``capacity_gbps``. Each PoP's
edge cache also knows its next-nearest PoP (``neighbour_pop``), where requests spill when the PoP
is full.

:func:`path_delays` reads the graph into the per-PoP arrays the simulations use, so a test or a
notebook can change one link and see the effect. :func:`draw_topology` draws the layers left to
right with a legend.

Taught in ``notebooks/07_live_pipeline.ipynb`` (the drawing) and ``08_edge_cache.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from chatdesign.checks import check_number, check_whole

Role = Literal["players", "edge_proxy", "edge_cache", "origin_cache", "origin_server"]

ROLES: Final[tuple[Role, ...]] = (
    "players",
    "edge_proxy",
    "edge_cache",
    "origin_cache",
    "origin_server",
)
"""Node roles from the viewer's side to the broadcaster's side (the layers of the drawing)."""

ORIGIN_SERVER: Final = "origin-server"
"""Name of the one origin (live stream) server node."""

MAP_WIDTH_KM: Final = 4_000.0
MAP_HEIGHT_KM: Final = 2_000.0
FIBRE_KM_PER_MS: Final = 200.0
"""Light in fibre covers about 200 km per millisecond (two thirds of c)."""
ROUTER_OVERHEAD_MS: Final = 2.0
"""Fixed one-way cost of routers and queues added to every long-haul link."""
SERVER_GBPS: Final = 2.0
"""Rate at which one edge-cache server sends segment bytes (Gbps), an assumption: a cache host's
sustained serving rate. A PoP serves at ``min(servers x SERVER_GBPS, player-facing links)``."""

_COLOURS: Final[dict[str, str]] = {
    "players": "#4c72b0",
    "edge_proxy": "#55a868",
    "edge_cache": "#c44e52",
    "origin_cache": "#8172b2",
    "origin_server": "#333333",
}


def pop_name(pop: int) -> str:
    """Node-name prefix of PoP number ``pop``: ``pop_name(3)`` → ``"pop-03"``."""
    return f"pop-{pop:02d}"


def _long_haul_ms(a: tuple[float, float], b: tuple[float, float]) -> float:
    distance_km = math.hypot(a[0] - b[0], a[1] - b[1])
    return ROUTER_OVERHEAD_MS + distance_km / FIBRE_KM_PER_MS


def build_topology(
    pops: int = 20,
    proxies_per_pop: int = 2,
    origin_caches: int = 1,
    seed: int = 0,
    *,
    zipf_exponent: float = 1.0,
) -> nx.DiGraph[str]:
    """Build the delivery graph for ``pops`` PoPs and ``origin_caches`` origin-cache sites.

    Nodes have a ``role`` (one of :data:`ROLES`), a ``layer`` (0 = players ... 4 = origin
    server) and map coordinates ``x_km``/``y_km``. PoP nodes also carry ``pop`` (its number).
    Player groups carry ``viewer_share``: the share of a stream's viewers near that PoP, a Zipf
    weight ``1 / rank**zipf_exponent`` (PoP 0 is the biggest), normalised to sum to 1. Edge
    caches carry ``servers`` (4-32, seeded), ``server_gbps`` (:data:`SERVER_GBPS`),
    ``origin_cache`` (the nearest one) and
    ``neighbour_pop`` (the nearest other PoP, or -1 when there is only one PoP) with
    ``neighbour_latency_ms`` (one way).

    Edges point downstream and carry one-way ``latency_ms`` and ``capacity_gbps``:
    origin server → origin cache 1 ms, 400 Gbps (same data centre); origin cache → edge cache
    ``2 ms + distance / (200 km/ms)``, 100 Gbps; edge cache → each proxy 0.5 ms, 40 Gbps; each
    proxy → its players 5-30 ms (seeded last mile), 10 Gbps.

    Raises ``ValueError`` when a count is not an integer or below 1, or the exponent is negative.
    """
    check_whole(pops, "pops", minimum=1)
    check_whole(proxies_per_pop, "proxies_per_pop", minimum=1)
    check_whole(origin_caches, "origin_caches", minimum=1)
    check_whole(seed, "seed", minimum=0)
    check_number(zipf_exponent, "zipf_exponent", minimum=0)
    rng = np.random.default_rng(seed)
    pop_xy = rng.uniform((0, 0), (MAP_WIDTH_KM, MAP_HEIGHT_KM), size=(pops, 2))
    origin_xy = rng.uniform((0, 0), (MAP_WIDTH_KM, MAP_HEIGHT_KM), size=(origin_caches, 2))
    servers = rng.integers(4, 33, size=pops)
    last_mile_ms = rng.uniform(5.0, 30.0, size=pops)
    weights = 1.0 / np.arange(1, pops + 1, dtype=float) ** zipf_exponent
    shares = weights / weights.sum()

    graph: nx.DiGraph[str] = nx.DiGraph(name=f"live delivery: {pops} PoPs, {origin_caches} origin caches")
    centre = (MAP_WIDTH_KM / 2, MAP_HEIGHT_KM / 2)
    graph.add_node(ORIGIN_SERVER, role="origin_server", layer=4, x_km=centre[0], y_km=centre[1])
    for o in range(origin_caches):
        name = f"origin-cache-{o}"
        graph.add_node(name, role="origin_cache", layer=3, x_km=float(origin_xy[o, 0]),
                       y_km=float(origin_xy[o, 1]))
        graph.add_edge(ORIGIN_SERVER, name, latency_ms=1.0, capacity_gbps=400.0)
    for p in range(pops):
        here = (float(pop_xy[p, 0]), float(pop_xy[p, 1]))
        to_origins = [_long_haul_ms(here, (origin_xy[o, 0], origin_xy[o, 1]))
                      for o in range(origin_caches)]
        origin = int(np.argmin(to_origins))
        others = [(_long_haul_ms(here, (pop_xy[q, 0], pop_xy[q, 1])), q)
                  for q in range(pops) if q != p]
        neighbour_ms, neighbour = min(others) if others else (0.0, -1)
        prefix = pop_name(p)
        cache = f"{prefix}/edge-cache"
        graph.add_node(cache, role="edge_cache", layer=2, pop=p, x_km=here[0], y_km=here[1],
                       servers=int(servers[p]), server_gbps=SERVER_GBPS, origin_cache=origin,
                       neighbour_pop=neighbour,
                       neighbour_latency_ms=neighbour_ms)
        graph.add_edge(f"origin-cache-{origin}", cache, latency_ms=to_origins[origin],
                       capacity_gbps=100.0)
        players = f"{prefix}/players"
        graph.add_node(players, role="players", layer=0, pop=p, x_km=here[0], y_km=here[1],
                       viewer_share=float(shares[p]))
        for k in range(proxies_per_pop):
            proxy = f"{prefix}/proxy-{k}"
            graph.add_node(proxy, role="edge_proxy", layer=1, pop=p, x_km=here[0], y_km=here[1])
            graph.add_edge(cache, proxy, latency_ms=0.5, capacity_gbps=40.0)
            graph.add_edge(proxy, players, latency_ms=float(last_mile_ms[p]), capacity_gbps=10.0)
    return graph


@dataclass(frozen=True, eq=False)
class PathDelays:
    """One-way delays (seconds) along each PoP's path, read from a topology graph.

    ``player_edge_s[p]``: players → edge cache of PoP ``p`` (last mile + proxy hop).
    ``edge_origin_s[p]``: edge cache → its origin cache. ``origin_of_pop[p]``: that origin
    cache's number. ``origin_server_s[o]``: origin cache ``o`` → origin server.
    ``neighbour_pop[p]`` / ``neighbour_s[p]``: the next-nearest PoP and the one-way delay to it.
    ``viewer_share[p]``: share of viewers near PoP ``p``. ``servers[p]``: PoP server count.
    ``server_gbps[p]``: one server's sending rate; ``link_gbps[p]``: the PoP's player-facing
    bandwidth (over its proxies, the narrower of edge cache → proxy and proxy → players).
    """

    player_edge_s: np.ndarray
    edge_origin_s: np.ndarray
    origin_of_pop: np.ndarray
    origin_server_s: np.ndarray
    neighbour_pop: np.ndarray
    neighbour_s: np.ndarray
    viewer_share: np.ndarray
    servers: np.ndarray
    server_gbps: np.ndarray
    link_gbps: np.ndarray

    def __post_init__(self) -> None:
        pops = len(self.player_edge_s)
        for name in ("edge_origin_s", "origin_of_pop", "neighbour_pop", "neighbour_s",
                     "viewer_share", "servers", "server_gbps", "link_gbps"):
            if len(getattr(self, name)) != pops:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {pops}")
        for name in ("player_edge_s", "edge_origin_s", "origin_server_s", "neighbour_s"):
            values = getattr(self, name)
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"{name} must hold finite delays >= 0")
        if np.any(self.origin_of_pop < 0) or np.any(self.origin_of_pop >= len(self.origin_server_s)):
            raise ValueError("origin_of_pop names an origin cache that does not exist")
        if not math.isclose(float(self.viewer_share.sum()), 1.0, rel_tol=1e-9):
            raise ValueError("viewer_share must sum to 1")
        if np.any(self.servers < 1):
            raise ValueError("every PoP needs at least 1 server")
        for name in ("server_gbps", "link_gbps"):
            values = getattr(self, name)
            if not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError(f"{name} must hold finite rates > 0")
        for array in (self.player_edge_s, self.edge_origin_s, self.origin_of_pop,
                      self.origin_server_s, self.neighbour_pop, self.neighbour_s,
                      self.viewer_share, self.servers, self.server_gbps, self.link_gbps):
            array.setflags(write=False)

    @property
    def pops(self) -> int:
        """Number of PoPs."""
        return len(self.player_edge_s)

    @property
    def edge_hit_s(self) -> np.ndarray:
        """Per PoP, a request answered by the edge cache: player ↔ edge round trip (s)."""
        hit: np.ndarray = self.player_edge_s + self.player_edge_s
        return hit

    @property
    def edge_miss_s(self) -> np.ndarray:
        """Per PoP, what an edge miss adds when the segment is new: edge cache ↔ origin cache ↔
        origin server round trip (s). The herd leaks for about this long after the first miss."""
        one_way = self.edge_origin_s + self.origin_server_s[self.origin_of_pop]
        miss: np.ndarray = one_way + one_way
        return miss

    @property
    def mean_edge_miss_s(self) -> float:
        """What an edge miss adds, averaged over viewers (:attr:`edge_miss_s` weighted by
        ``viewer_share``), in seconds: the one figure notebooks 07 and 08 quote for a map."""
        return float(np.average(self.edge_miss_s, weights=self.viewer_share))

    @property
    def pop_gbps(self) -> np.ndarray:
        """Per PoP, the rate it can send segments to players: ``min(servers x server_gbps,
        link_gbps)`` (Gbps)."""
        rate: np.ndarray = np.minimum(self.servers * self.server_gbps, self.link_gbps)
        return rate

    def capacity_rps(self, segment_bytes: float) -> np.ndarray:
        """Per PoP, segment requests per second it can serve: ``pop_gbps / segment bits``."""
        bits = 8 * check_number(segment_bytes, "segment_bytes", positive=True)
        capacity: np.ndarray = self.pop_gbps * 1e9 / bits
        return capacity

    def service_s(self, segment_bytes: float) -> np.ndarray:
        """Per PoP, how long one server takes to send one segment (s): segment bits over the
        server's share of the PoP's rate. ``servers / capacity_rps``."""
        bits = 8 * check_number(segment_bytes, "segment_bytes", positive=True)
        service: np.ndarray = bits * self.servers / (self.pop_gbps * 1e9)
        return service

    def __repr__(self) -> str:
        return (
            f"PathDelays(pops={self.pops}, origin_caches={len(self.origin_server_s)}, "
            f"player_edge_ms={1000 * self.player_edge_s.min():.1f}-"
            f"{1000 * self.player_edge_s.max():.1f}, edge_origin_ms="
            f"{1000 * self.edge_origin_s.min():.1f}-{1000 * self.edge_origin_s.max():.1f})"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per PoP, delays in milliseconds."""
        return pd.DataFrame(
            {
                "viewer_share": self.viewer_share,
                "servers": self.servers,
                "pop_gbps": self.pop_gbps,
                "player_edge_ms": 1000 * self.player_edge_s,
                "edge_origin_ms": 1000 * self.edge_origin_s,
                "edge_hit_ms": 1000 * self.edge_hit_s,
                "edge_miss_ms": 1000 * self.edge_miss_s,
                "origin_cache": self.origin_of_pop,
                "neighbour_pop": self.neighbour_pop,
                "neighbour_ms": 1000 * self.neighbour_s,
            },
            index=pd.RangeIndex(self.pops, name="pop"),
        )


def path_delays(graph: nx.DiGraph[str]) -> PathDelays:
    """Read a graph made by :func:`build_topology` into per-PoP delay arrays (seconds).

    A player group's delay to its edge cache is the slowest proxy path (last mile + proxy hop).
    Raises ``ValueError`` if the graph lacks the roles or attributes :func:`build_topology` sets.
    """
    caches = sorted(
        (data["pop"], node) for node, data in graph.nodes(data=True)
        if data.get("role") == "edge_cache"
    )
    origins = sorted(node for node, data in graph.nodes(data=True)
                     if data.get("role") == "origin_cache")
    if not caches or not origins or ORIGIN_SERVER not in graph:
        raise ValueError("the graph needs edge caches, origin caches and an origin server")
    if [pop for pop, _ in caches] != list(range(len(caches))):
        raise ValueError("edge caches must be numbered 0..pops-1")
    player_edge, edge_origin, origin_of, neighbour, neighbour_ms, share, servers = (
        [], [], [], [], [], [], []
    )
    server_gbps, link_gbps = [], []
    for pop, cache in caches:
        data = graph.nodes[cache]
        players = f"{pop_name(pop)}/players"
        if players not in graph:
            raise ValueError(f"PoP {pop} has no player group {players!r}")
        paths = [graph.edges[cache, proxy]["latency_ms"] + graph.edges[proxy, players]["latency_ms"]
                 for proxy in graph.successors(cache) if graph.has_edge(proxy, players)]
        if not paths:
            raise ValueError(f"PoP {pop} has no proxy between its edge cache and players")
        upstream = f"origin-cache-{data['origin_cache']}"
        player_edge.append(max(paths) / 1000)
        edge_origin.append(graph.edges[upstream, cache]["latency_ms"] / 1000)
        origin_of.append(data["origin_cache"])
        neighbour.append(data["neighbour_pop"])
        neighbour_ms.append(data["neighbour_latency_ms"])
        share.append(graph.nodes[players]["viewer_share"])
        servers.append(data["servers"])
        server_gbps.append(data.get("server_gbps", SERVER_GBPS))
        link_gbps.append(sum(
            min(graph.edges[cache, proxy]["capacity_gbps"], graph.edges[proxy, players]["capacity_gbps"])
            for proxy in graph.successors(cache) if graph.has_edge(proxy, players)))
    return PathDelays(
        player_edge_s=np.array(player_edge, dtype=float),
        edge_origin_s=np.array(edge_origin, dtype=float),
        origin_of_pop=np.array(origin_of, dtype=np.int64),
        origin_server_s=np.array(
            [graph.edges[ORIGIN_SERVER, o]["latency_ms"] / 1000 for o in origins], dtype=float
        ),
        neighbour_pop=np.array(neighbour, dtype=np.int64),
        neighbour_s=np.array(neighbour_ms, dtype=float) / 1000,
        viewer_share=np.array(share, dtype=float),
        servers=np.array(servers, dtype=np.int64),
        server_gbps=np.array(server_gbps, dtype=float),
        link_gbps=np.array(link_gbps, dtype=float),
    )


def _layered_positions(graph: nx.DiGraph[str]) -> dict[str, tuple[float, float]]:
    """Layer on x; PoPs stacked on y in PoP order, each PoP's proxies fanned around it, origin
    caches at the mean height of the PoPs they feed (so few lines cross)."""
    pop_of = {n: d["pop"] for n, d in graph.nodes(data=True) if "pop" in d}
    pops = sorted(set(pop_of.values()))
    pop_y = {p: -2.0 * i for i, p in enumerate(pops)}
    positions: dict[str, tuple[float, float]] = {}
    for node, data in graph.nodes(data=True):
        layer = float(data["layer"])
        if data["role"] == "edge_proxy":
            siblings = sorted(n for n in graph.nodes if graph.nodes[n]["role"] == "edge_proxy"
                              and pop_of[n] == pop_of[node])
            spread = np.linspace(-0.6, 0.6, len(siblings)) if len(siblings) > 1 else [0.0]
            positions[node] = (layer, pop_y[pop_of[node]] + spread[siblings.index(node)])
        elif node in pop_of:
            positions[node] = (layer, pop_y[pop_of[node]])
    for node, data in graph.nodes(data=True):
        if data["role"] == "origin_cache":
            fed = [positions[c][1] for c in graph.successors(node)]
            positions[node] = (float(data["layer"]), float(np.mean(fed)) if fed else 0.0)
    mean_y = float(np.mean([y for _, y in positions.values()])) if positions else 0.0
    for node, data in graph.nodes(data=True):
        if node not in positions:
            positions[node] = (float(data["layer"]), mean_y)
    return positions


def draw_topology(graph: nx.DiGraph[str], ax: Axes | None = None) -> Axes:
    """Draw the graph in layers, players on the left and the origin server on the right.

    Edge caches are labelled with their PoP number and server count; a legend names each role.
    Returns the axes (a new figure's when ``ax`` is None).
    """
    if graph.number_of_nodes() == 0:
        raise ValueError("the graph is empty")
    for node, data in graph.nodes(data=True):
        if data.get("role") not in ROLES:
            raise ValueError(f"node {node!r} has no known role")
    if ax is None:
        import matplotlib.pyplot as plt  # only drawing needs pyplot (and a backend)

        _, ax = plt.subplots(figsize=(9, 5))
    positions = _layered_positions(graph)
    for role in ROLES:
        nodes = [n for n, d in graph.nodes(data=True) if d["role"] == role]
        nx.draw_networkx_nodes(graph, positions, nodelist=nodes, node_color=_COLOURS[role],
                               node_size=120 if role in ("players", "edge_proxy") else 260, ax=ax)
    nx.draw_networkx_edges(graph, positions, ax=ax, arrows=True, arrowsize=8, width=0.6,
                           edge_color="#999999")
    labels = {n: f"PoP {d['pop']} ({d['servers']} srv)"
              for n, d in graph.nodes(data=True) if d["role"] == "edge_cache"}
    labels |= {n: n for n, d in graph.nodes(data=True)
               if d["role"] in ("origin_cache", "origin_server")}
    label_positions = {n: (x, y + 0.28) for n, (x, y) in positions.items()}
    nx.draw_networkx_labels(graph, label_positions, labels=labels, font_size=7, ax=ax,
                            verticalalignment="bottom")
    handles = [Line2D([], [], marker="o", linestyle="", color=_COLOURS[r],
                      label=r.replace("_", " ")) for r in ROLES]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False,
              bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Live video delivery: players ask to the right; arrows show video flowing back")
    ax.set_axis_off()
    return ax
