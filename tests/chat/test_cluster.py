"""Many servers, one chat service: three ``serve`` processes on one PostgreSQL store and one
Redis, clients on different processes, and one process killed with SIGKILL.

What must hold: a message sent through one process reaches devices connected to the others,
once; after the kill, the dead process's clients reconnect to another process and resync with
no acknowledged message lost and none shown twice -- including messages sent to them while
they were cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatdesign.chat import ChatServer
from chatdesign.chat.client import ChatClient, ReceivedMessage
from chatdesign.chat.cluster import LocalCluster
from chatdesign.chat.postgres import PostgresStore
from chatdesign.cli import main
from chatdesign.services import ServiceUnavailable

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three serve processes on a private PostgreSQL and Redis (started by LocalCluster)."""
    try:
        with LocalCluster(3, tmp_path / "data") as running:
            yield running
    except ServiceUnavailable as error:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {error}", pytrace=False)
        pytest.skip(str(error))


async def receive_all(client: ChatClient, count: int, timeout_s: float = 15.0) -> list[ReceivedMessage]:
    got = [await client.receive(timeout=timeout_s) for _ in range(count)]
    with pytest.raises(TimeoutError):  # and nothing more: no duplicate arrives late
        await client.receive(timeout=0.5)
    return got


def test_messages_cross_processes_and_survive_a_killed_process(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = cluster.nodes
    assert repr(cluster) == "LocalCluster(3/3 nodes alive)"
    group_id = cluster.set_up(["alice", "bob", "carol"], "team")
    assert group_id is not None
    token = {user: cluster.token(user, "phone") for user in ("alice", "bob", "carol")}
    # the token command registers a user in the shared store too
    assert main(["token", "dave", "phone", "--data", str(cluster.data_dir), "--database", cluster.database_url]) == 0
    assert "registered user dave" in capsys.readouterr().out
    with ChatServer(store=PostgresStore(cluster.database_url), data_dir=cluster.data_dir) as chat:
        assert chat.has_user("dave")

    async def scenario() -> None:
        async with (
            ChatClient.connect(nodes[0].ws_url, token["alice"], seed=1) as alice,
            ChatClient.connect(nodes[1].ws_url, token["bob"], seed=2, backoff_max_s=0.5) as bob,
            ChatClient.connect(nodes[2].ws_url, token["carol"], seed=3) as carol,
        ):
            await asyncio.sleep(0.2)  # routes registered
            table = cluster.routing_table()
            assert sorted(zip(table.user, table.node, strict=True)) == [
                ("alice", "node-0"), ("bob", "node-1"), ("carol", "node-2")]
            # 1:1 across processes: alice on node-0 -> bob on node-1
            direct = await alice.send("bob", "hi bob")
            (got,) = await receive_all(bob, 1)
            assert (got.conversation_id, got.seq, got.content) == (direct.conversation_id, direct.seq, "hi bob")
            await receive_all(alice, 1)  # her own device gets her message too
            # a group across all three
            sent = [await alice.send(group_id, f"team {i}") for i in range(3)]
            for client in (alice, bob, carol):
                got_group = await receive_all(client, 3)
                assert [m.seq for m in got_group] == [m.seq for m in sent]

            # node-1 dies; bob's device reconnects through another node
            assert cluster.kill(1) == -9
            bob.url = nodes[2].ws_url  # what the load balancer does for a dead backend
            during = [await alice.send("bob", f"while you were away {i}") for i in range(3)]
            during += [await carol.send(group_id, "carol here")]
            await bob.wait_connected(timeout=15)
            after = await receive_all(bob, len(during))
            assert sorted((m.conversation_id, m.seq) for m in after) == sorted(
                (a.conversation_id, a.seq) for a in during)
            assert bob.reconnects >= 1
            # nothing acknowledged is lost: bob's positions cover every message sent
            assert bob.positions[direct.conversation_id] == max(a.seq for a in during if a.conversation_id
                                                                == direct.conversation_id)
            assert bob.positions[group_id] == 4
            # carol, on a node that lived, got carol's own echo only through her own device
            (echo,) = await receive_all(carol, 1)
            assert echo.content == "carol here"

    asyncio.run(scenario())


def test_serve_refuses_bad_cluster_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data", str(tmp_path), "--database", "mysql://x"]) == 2
    assert "--database" in capsys.readouterr().err
    assert main(["serve", "--data", str(tmp_path), "--node-id", "a b"]) == 2
    assert "node_id" in capsys.readouterr().err
