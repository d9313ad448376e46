"""Many servers, one chat service: three ``serve`` processes on one PostgreSQL store and one
Redis, clients on different processes, and one process killed with SIGKILL.

What must hold: a message sent through one process reaches devices connected to the others,
once; after the kill, the dead process's clients reconnect to another process and resync with
no acknowledged message lost and none shown twice -- including messages sent to them while
they were cut off.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.client import ChatClient, ReceivedMessage
from chatdesign.chat.postgres import PostgresStore
from chatdesign.services import PostgresServer, RedisServer, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclass
class Node:
    name: str
    process: subprocess.Popen[str]
    ws_url: str


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A database of its own (``serve`` uses the store's default schema)."""
    name = f"cluster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres_server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def cluster(database_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[list[Node], Path]]:
    data = tmp_path / "data"
    nodes: list[Node] = []
    try:
        for index in range(3):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "chatdesign", "serve", "--port", str(port), "--data", str(data),
                 "--database", database_url, "--redis", redis_server.url,
                 "--node-id", f"node-{index}", "--worker-id", str(index + 1)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
            )
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("chat server listening on"), line + (process.stderr.read() if process.stderr else "")
            nodes.append(Node(f"node-{index}", process, f"ws://127.0.0.1:{port}/ws"))
        yield nodes, data
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
        for node in nodes:
            try:
                node.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.communicate()


def set_up(database_url: str, data: Path, users: list[str]) -> tuple[dict[str, str], str]:
    """Register the users in the shared store, create a group of them, issue a token each."""
    with ChatServer(store=PostgresStore(database_url), data_dir=data, worker_id=9) as chat:
        for user in users:
            chat.register_user(user)
        group_id = chat.create_group(users[0], users[1:], "team")
    authority = TokenAuthority(load_or_create_secret(data), time.time)
    return {user: authority.issue(user, "phone", 3600) for user in users}, group_id


async def receive_all(client: ChatClient, count: int, timeout_s: float = 15.0) -> list[ReceivedMessage]:
    got = [await client.receive(timeout=timeout_s) for _ in range(count)]
    with pytest.raises(TimeoutError):  # and nothing more: no duplicate arrives late
        await client.receive(timeout=0.5)
    return got


def test_messages_cross_processes_and_survive_a_killed_process(
    cluster: tuple[list[Node], Path], database_url: str
) -> None:
    nodes, data = cluster
    token, group_id = set_up(database_url, data, ["alice", "bob", "carol"])

    async def scenario() -> None:
        async with (
            ChatClient.connect(nodes[0].ws_url, token["alice"], seed=1) as alice,
            ChatClient.connect(nodes[1].ws_url, token["bob"], seed=2, backoff_max_s=0.5) as bob,
            ChatClient.connect(nodes[2].ws_url, token["carol"], seed=3) as carol,
        ):
            await asyncio.sleep(0.2)  # routes registered
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
            nodes[1].process.send_signal(signal.SIGKILL)
            nodes[1].process.wait()
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


def test_token_registers_the_user_in_the_shared_store(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatdesign.cli import main

    assert main(["token", "dave", "phone", "--data", str(tmp_path), "--database", database_url]) == 0
    assert "registered user dave" in capsys.readouterr().out
    with ChatServer(store=PostgresStore(database_url), data_dir=tmp_path) as chat:
        assert chat.has_user("dave")


def test_serve_refuses_bad_cluster_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chatdesign.cli import main

    assert main(["serve", "--data", str(tmp_path), "--database", "mysql://x"]) == 2
    assert "--database" in capsys.readouterr().err
    assert main(["serve", "--data", str(tmp_path), "--node-id", "a b"]) == 2
    assert "node_id" in capsys.readouterr().err
