"""Presence shared by three ``serve`` processes on one Redis (chatdesign/presence/cluster.py wired
into ChatNetworkServer): a friend on another process hears a change, and when the process
holding carol is killed with SIGKILL her friends on the other processes see her go offline
within the grace period plus their tier's bound -- and online again, within their tier's bound,
once her app has reconnected through another process.

The nodes run with the hidden ``--presence-test-timings`` (beat every 0.5 s, offline 4 s after
the last beat, group members told within 2 s). They share one SQLite file in one data directory
rather than PostgreSQL: presence does not touch the chat store beyond reading who shares a
conversation, and SQLite is safe for several processes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.client import ChatClient
from chatdesign.chat.loopback import ServerProcess
from chatdesign.presence.cluster import TEST_PRESENCE_POLICY, owner_of
from chatdesign.services import RedisServer

pytestmark = [pytest.mark.redis]

NODES = ("node-0", "node-1", "node-2")
GRACE = TEST_PRESENCE_POLICY.offline_after_s
GROUP_BOUND = TEST_PRESENCE_POLICY.tiers[-1].max_delay_s  # group co-members: the "others" tier
SLACK = 1.5  # a 0.25 s presence tick on each hop, pub/sub and scheduling on a loaded machine


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    data = tmp_path / "data"
    data.mkdir()
    with ChatServer(data / "chat.db") as chat:
        for user in ("alice", "bob", "carol"):
            chat.register_user(user)
        chat.create_group("alice", ["bob", "carol"], "team")
    redis_url = f"redis://{redis_server.host}:{redis_server.port}/0"
    started: list[ServerProcess] = []
    try:
        for index, node in enumerate(NODES):
            server = ServerProcess(data, extra_args=["--redis", redis_url, "--node-id", node,
                                                     "--worker-id", str(index + 1), "--presence-test-timings"])
            server.start()
            started.append(server)
        yield started
    finally:
        for server in started:
            if server.running:
                server.stop()


async def wait_for_change(client: ChatClient, user: str, status: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
    """The first pushed presence change of ``user`` to ``status``: (wall time received, change)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = await client.next_event(timeout=left)
        except TimeoutError:
            break
        if event.get("type") != "presence_update":
            continue
        for change in event["changes"]:
            if change["user_id"] == user and change["status"] == status:
                return time.time(), change
    raise AssertionError(f"{client.user_id} never heard {user} go {status} within {timeout_s} s")


def test_presence_crosses_processes_and_a_killed_process_users_go_offline_and_come_back(
    nodes: list[ServerProcess], tmp_path: Path
) -> None:
    # carol connects to the node that owns her: killing it loses her connection *and* her timer
    doomed = NODES.index(owner_of("carol", NODES))
    others = [i for i in range(3) if i != doomed]
    alice_node, bob_node = others[0], others[1]
    url = [server.ws_url for server in nodes]
    tokens = TokenAuthority(load_or_create_secret(tmp_path / "data"), time.time)
    token = {user: tokens.issue(user, "phone", 3600.0) for user in ("alice", "bob", "carol")}

    async def scenario() -> None:
        async with ChatClient.connect(url[bob_node], token["bob"], seed=2) as bob:
            await asyncio.sleep(1.0)  # bob's first beats reach his owner: he is an online viewer
            async with ChatClient.connect(url[alice_node], token["alice"], seed=1) as alice:
                connected = time.time()
                received, change = await wait_for_change(bob, "alice", "online", GROUP_BOUND + 2 * SLACK)
                assert received - connected <= GROUP_BOUND + 2 * SLACK
                assert connected - 0.5 <= change["changed_at_s"] <= received
                await asyncio.sleep(1.0)
                async with ChatClient.connect(url[doomed], token["carol"], seed=3, backoff_max_s=0.5) as carol:
                    for friend in (alice, bob):
                        await wait_for_change(friend, "carol", "online", GROUP_BOUND + 2 * SLACK)
                    assert nodes[doomed].kill() == -signal.SIGKILL  # no goodbye: her socket and timer die with it
                    killed = time.time()
                    for friend in (alice, bob):
                        got_at, gone = await wait_for_change(
                            friend, "carol", "offline", GRACE + GROUP_BOUND + 3 * SLACK)
                        # dated when her grace ran out after her last beat (at most one beat before the kill)
                        assert killed - TEST_PRESENCE_POLICY.heartbeat_interval_s - 0.5 <= gone["changed_at_s"] - GRACE
                        assert gone["changed_at_s"] - GRACE <= killed + 0.5
                        assert got_at - killed <= GRACE + GROUP_BOUND + SLACK
                    # her app reconnects through a live node (the load balancer's choice) and she is back
                    carol.url = url[alice_node]
                    await carol.wait_connected(timeout=15)
                    back = time.time()
                    for friend in (alice, bob):
                        got_at, _ = await wait_for_change(friend, "carol", "online", GROUP_BOUND + 3 * SLACK)
                        assert got_at - back <= GROUP_BOUND + 3 * SLACK
                    assert carol.user_id == "carol" and carol.reconnects >= 1

    asyncio.run(scenario())
