"""The delivery graph: roles, links, shares, neighbours, delays read back, the drawing."""

from __future__ import annotations

import math

import matplotlib
import networkx as nx
import numpy as np
import pytest

from chatdesign.live import ROLES, PathDelays, build_topology, draw_topology, path_delays, pop_name
from chatdesign.live.topology import SERVER_GBPS

matplotlib.use("Agg")


def test_every_pop_has_players_proxies_and_one_edge_cache() -> None:
    graph = build_topology(pops=4, proxies_per_pop=3, origin_caches=2, seed=1)
    roles = [data["role"] for _, data in graph.nodes(data=True)]
    assert roles.count("players") == 4
    assert roles.count("edge_proxy") == 12
    assert roles.count("edge_cache") == 4
    assert roles.count("origin_cache") == 2
    assert roles.count("origin_server") == 1
    assert set(roles) == set(ROLES)


def test_video_flows_from_origin_server_to_every_player_group() -> None:
    graph = build_topology(pops=5, seed=2)
    for p in range(5):
        path = nx.shortest_path(graph, "origin-server", f"{pop_name(p)}/players")
        assert [graph.nodes[n]["role"] for n in path] == list(reversed(ROLES))


def test_links_carry_latency_and_capacity() -> None:
    graph = build_topology(pops=3, seed=3)
    for _, _, data in graph.edges(data=True):
        assert data["latency_ms"] > 0
        assert data["capacity_gbps"] > 0


def test_viewer_shares_are_zipf_and_sum_to_one() -> None:
    graph = build_topology(pops=4, seed=0, zipf_exponent=1.0)
    shares = [graph.nodes[f"{pop_name(p)}/players"]["viewer_share"] for p in range(4)]
    assert math.isclose(sum(shares), 1.0)
    assert shares[0] / shares[1] == pytest.approx(2.0)
    assert shares[0] / shares[3] == pytest.approx(4.0)


def test_edge_cache_pulls_from_its_nearest_origin_cache() -> None:
    graph = build_topology(pops=6, origin_caches=3, seed=4)
    for p in range(6):
        cache = f"{pop_name(p)}/edge-cache"
        chosen = graph.nodes[cache]["origin_cache"]
        latencies = {o: graph.edges[f"origin-cache-{chosen}", cache]["latency_ms"] for o in [chosen]}
        upstream = list(graph.predecessors(cache))
        assert upstream == [f"origin-cache-{chosen}"]
        assert latencies[chosen] >= 2.0


def test_neighbour_is_the_nearest_other_pop() -> None:
    graph = build_topology(pops=5, seed=5)
    xy = {p: (graph.nodes[f"{pop_name(p)}/edge-cache"]["x_km"],
              graph.nodes[f"{pop_name(p)}/edge-cache"]["y_km"]) for p in range(5)}
    for p in range(5):
        nearest = min((math.dist(xy[p], xy[q]), q) for q in range(5) if q != p)[1]
        assert graph.nodes[f"{pop_name(p)}/edge-cache"]["neighbour_pop"] == nearest


def test_single_pop_has_no_neighbour() -> None:
    graph = build_topology(pops=1)
    assert graph.nodes["pop-00/edge-cache"]["neighbour_pop"] == -1


def test_same_seed_same_graph_and_different_seed_differs() -> None:
    a, b, c = build_topology(seed=9), build_topology(seed=9), build_topology(seed=10)
    assert nx.utils.graphs_equal(a, b)
    assert not nx.utils.graphs_equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pops": 0}, "pops must be at least 1"),
        ({"pops": -3}, "pops must be at least 1"),
        ({"pops": 2.5}, "pops must be a whole number"),
        ({"proxies_per_pop": 0}, "proxies_per_pop"),
        ({"origin_caches": 0}, "origin_caches"),
        ({"seed": -1}, "seed"),
        ({"zipf_exponent": -1.0}, "zipf_exponent must not be negative"),
        ({"zipf_exponent": float("nan")}, "zipf_exponent must be a finite"),
    ],
)
def test_bad_topology_inputs_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_topology(**kwargs)  # type: ignore[arg-type]


def test_path_delays_read_the_graph_in_seconds() -> None:
    graph = build_topology(pops=3, proxies_per_pop=2, seed=6)
    delays = path_delays(graph)
    assert delays.pops == 3
    last_mile = graph.edges["pop-01/proxy-0", "pop-01/players"]["latency_ms"]
    assert delays.player_edge_s[1] == pytest.approx((last_mile + 0.5) / 1000)
    assert delays.origin_server_s[0] == pytest.approx(0.001)
    assert delays.viewer_share.sum() == pytest.approx(1.0)
    frame = delays.to_frame()
    assert list(frame.index) == [0, 1, 2]
    assert frame.loc[1, "player_edge_ms"] == pytest.approx(last_mile + 0.5)
    assert "PathDelays(pops=3" in repr(delays)
    with pytest.raises(ValueError, match="read-only"):
        delays.player_edge_s[0] = 1.0


def test_path_delays_refuse_a_graph_without_the_roles() -> None:
    with pytest.raises(ValueError, match="needs edge caches"):
        path_delays(nx.DiGraph())


def test_path_delays_validate_lengths_and_signs() -> None:
    good = path_delays(build_topology(pops=2, seed=0))
    fields = {name: getattr(good, name).copy() for name in (
        "player_edge_s", "edge_origin_s", "origin_of_pop", "origin_server_s", "neighbour_pop",
        "neighbour_s", "viewer_share", "servers", "server_gbps", "link_gbps")}
    with pytest.raises(ValueError, match="edge_origin_s has 1 entries"):
        PathDelays(**{**fields, "edge_origin_s": np.array([0.01])})
    with pytest.raises(ValueError, match="player_edge_s must hold finite delays"):
        PathDelays(**{**fields, "player_edge_s": np.array([-0.01, 0.01])})
    with pytest.raises(ValueError, match="origin_of_pop names an origin cache"):
        PathDelays(**{**fields, "origin_of_pop": np.array([0, 5])})
    with pytest.raises(ValueError, match="viewer_share must sum to 1"):
        PathDelays(**{**fields, "viewer_share": np.array([0.5, 0.6])})
    with pytest.raises(ValueError, match="link_gbps must hold finite rates"):
        PathDelays(**{**fields, "link_gbps": np.array([0.0, 20.0])})
    with pytest.raises(ValueError, match="at least 1 server"):
        PathDelays(**{**fields, "servers": np.array([0, 4])})


def test_pop_capacity_comes_from_servers_and_links() -> None:
    graph = build_topology(pops=3, proxies_per_pop=2, seed=6)
    delays = path_delays(graph)
    assert list(delays.link_gbps) == [20.0, 20.0, 20.0]  # two 10 Gbps proxy → player links
    servers = delays.servers
    assert np.allclose(delays.pop_gbps, np.minimum(servers * SERVER_GBPS, 20.0))
    capacity = delays.capacity_rps(125_000)  # 1 s at 1 Mbps = 1 Mbit per request
    assert np.allclose(capacity, delays.pop_gbps * 1_000)
    assert np.allclose(delays.service_s(125_000), servers / capacity)
    miss = delays.edge_miss_s
    assert np.allclose(miss, 2 * (delays.edge_origin_s + delays.origin_server_s[0]))
    assert np.allclose(delays.edge_hit_s, 2 * delays.player_edge_s)
    by_viewer = float((miss * delays.viewer_share).sum() / delays.viewer_share.sum())
    assert delays.mean_edge_miss_s == pytest.approx(by_viewer)
    assert miss.min() <= delays.mean_edge_miss_s <= miss.max()
    with pytest.raises(ValueError, match="segment_bytes must be positive"):
        delays.capacity_rps(0)


def test_drawing_has_a_legend_with_every_role() -> None:
    ax = draw_topology(build_topology(pops=3, seed=0))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [role.replace("_", " ") for role in ROLES]
    assert any("PoP 0" in text.get_text() for text in ax.texts)


def test_drawing_refuses_an_empty_or_unknown_graph() -> None:
    with pytest.raises(ValueError, match="empty"):
        draw_topology(nx.DiGraph())
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_node("x", role="router", layer=0)
    with pytest.raises(ValueError, match="no known role"):
        draw_topology(graph)
