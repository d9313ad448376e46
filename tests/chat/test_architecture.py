"""The chat system picture: every figure agrees with chatdesign.estimation, and the graph is whole."""

from __future__ import annotations

import math
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import networkx as nx
import pytest

from chatdesign import estimation as est
from chatdesign.chat.architecture import (
    BOXES,
    ChatScenario,
    build_chat_system,
    draw_chat_system,
    size_chat_system,
    system_table,
)
from chatdesign.presence import PresencePolicy
from chatdesign.widgets import MESSENGER_PANEL_DEFAULTS


def test_default_scenario_is_notebook_01s_messenger() -> None:
    scenario = ChatScenario()
    assert scenario.daily_active_users == MESSENGER_PANEL_DEFAULTS["daily_active_users"]
    assert scenario.messages_per_user_per_day == MESSENGER_PANEL_DEFAULTS["messages_per_user_per_day"]
    assert scenario.bytes_per_message == MESSENGER_PANEL_DEFAULTS["bytes_per_message"]
    assert scenario.receivers_per_message == MESSENGER_PANEL_DEFAULTS["receivers_per_message"]
    assert scenario.retention_days == MESSENGER_PANEL_DEFAULTS["retention_years"] * 365
    assert scenario.heartbeat_interval_s == PresencePolicy().heartbeat_interval_s


def test_sizing_matches_estimate_messenger() -> None:
    s = ChatScenario()
    sizing = size_chat_system(s)
    whole = est.estimate_messenger(
        s.daily_active_users, s.messages_per_user_per_day, s.bytes_per_message, s.retention_days, s.peak_factor,
        s.receivers_per_message, s.media_fraction, s.media_bytes, s.replication_factor, s.online_share,
    )
    assert sizing.peak_send_rps == pytest.approx(float(whole.traffic.peak_rps))
    assert sizing.peak_delivery_rps == pytest.approx(float(whole.traffic.read_peak_rps))
    assert sizing.connections == pytest.approx(whole.connections.connections)
    assert sizing.text_per_day_bytes + sizing.media_per_day_bytes == pytest.approx(float(whole.storage.per_day_bytes))
    assert sizing.text_stored_bytes + sizing.media_stored_bytes == pytest.approx(float(whole.storage.total_bytes))
    assert sizing.servers_at_full_capacity == whole.connections.servers


def test_headroom_adds_servers_and_no_server_runs_above_the_limit() -> None:
    sizing = size_chat_system()
    s = sizing.scenario
    assert sizing.servers > sizing.servers_at_full_capacity
    assert sizing.connections_per_server <= s.connections_per_server * s.max_utilisation
    assert sizing.servers * sizing.connections_per_server == pytest.approx(sizing.connections)
    # one server fewer would break the limit: the count is the smallest that keeps it
    assert sizing.connections / (sizing.servers - 1) > s.connections_per_server * s.max_utilisation
    assert sizing.memory_per_server_bytes == pytest.approx(sizing.connections_per_server * 10_000)


def test_figures_scale_with_the_inputs() -> None:
    base = size_chat_system()
    double = size_chat_system(replace(ChatScenario(), daily_active_users=100e6))
    assert double.peak_send_rps == pytest.approx(2 * base.peak_send_rps)
    assert double.heartbeats_per_s == pytest.approx(2 * base.heartbeats_per_s)
    assert double.partitions >= 2 * base.partitions - 1
    group = size_chat_system(replace(ChatScenario(), receivers_per_message=10))
    assert group.peak_delivery_rps == pytest.approx(10 * base.peak_delivery_rps)
    assert group.text_per_day_bytes == pytest.approx(base.text_per_day_bytes)  # stored once
    no_media = size_chat_system(replace(ChatScenario(), media_fraction=0.0))
    assert no_media.media_per_day_bytes == 0 and no_media.peak_uploads_per_s == 0


def test_partitions_hold_one_copy_of_the_text() -> None:
    sizing = size_chat_system()
    s = sizing.scenario
    one_copy = sizing.text_stored_bytes / s.replication_factor
    assert sizing.partitions == math.ceil(one_copy / s.partition_bytes)
    assert sizing.writes_per_partition_per_s == pytest.approx(sizing.peak_send_rps / sizing.partitions)


def test_graph_has_every_box_and_named_edges() -> None:
    graph = build_chat_system()
    assert set(graph.nodes) == {box.name for box in BOXES}
    assert nx.is_weakly_connected(graph)
    assert graph.has_edge("chat_service", "message_store")
    assert graph.has_edge("connection_servers", "chat_service") and graph.has_edge("chat_service", "connection_servers")
    assert all(data["label"] for _, _, data in graph.edges(data=True))
    # a message can travel from a client to the store
    assert nx.has_path(graph, "clients", "message_store")
    assert nx.has_path(graph, "chat_service", "clients")  # via push notifications


def test_table_shows_the_sizing() -> None:
    sizing = size_chat_system()
    table = system_table(build_chat_system(sizing))
    servers = table.loc[("WebSocket connection servers", "servers (max 70% full)"), "value"]
    assert servers == str(sizing.servers)
    assert len(table) == sum(len(d["figures"]) for _, d in build_chat_system(sizing).nodes(data=True))


def test_drawing_makes_one_box_per_node() -> None:
    graph = build_chat_system()
    fig, ax = plt.subplots()
    draw_chat_system(graph, ax)
    titles = [t.get_text() for t in ax.texts]
    for box in BOXES:
        assert any(text.startswith(box.title) for text in titles)
    plt.close(fig)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"daily_active_users": 0}, "daily_active_users must be positive"),
        ({"peak_factor": 0.5}, "peak_factor must be at least 1"),
        ({"media_fraction": 1.5}, "media_fraction must be a fraction"),
        ({"max_utilisation": 0}, "max_utilisation must be positive"),
        ({"max_utilisation": 1.2}, "max_utilisation must be at most 1"),
        ({"connections_per_server": -1}, "connections_per_server must be positive"),
    ],
)
def test_bad_scenarios_are_refused(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(ChatScenario(), **change)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="scenario must be a ChatScenario"):
        size_chat_system("big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sizing must be a ChatSystemSizing"):
        build_chat_system(ChatScenario())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        draw_chat_system(nx.DiGraph())
    with pytest.raises(ValueError, match="no figures"):
        system_table(nx.DiGraph([("a", "b")]))


def test_exercise_checker_diagnoses_without_giving_the_answer_away() -> None:
    from chatdesign.chat.architecture import EXERCISE_SCENARIO, check_connection_servers

    sizing = size_chat_system(EXERCISE_SCENARIO)
    expected = sizing.servers
    assert check_connection_servers(expected)
    assert not check_connection_servers(None) and "not answered yet" in str(check_connection_servers(None))
    usable = EXERCISE_SCENARIO.connections_per_server * EXERCISE_SCENARIO.max_utilisation
    cases = {
        sizing.servers_at_full_capacity: "completely full",
        math.ceil(EXERCISE_SCENARIO.daily_active_users / usable): "online share",
        math.floor(sizing.connections / usable): "round up",
        expected + 0.5: "whole machine",
        expected * 10: "too high by more than a factor of 3",
        expected + 5: "too high;",
        2: "too low by more than",
    }
    for answer, words in cases.items():
        verdict = check_connection_servers(answer)
        assert not verdict, answer
        assert words in verdict.explanation, (answer, verdict.explanation)
        assert f" {expected} " not in f" {verdict.explanation} ".replace(",", "")
    with pytest.raises(ValueError, match="number of servers"):
        check_connection_servers("many")  # type: ignore[arg-type]
