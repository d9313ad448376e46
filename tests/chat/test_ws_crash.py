"""Crash durability: the server on a file database is killed with SIGKILL at random moments
while several senders keep sending; after every restart the senders first resend what was not
acknowledged (same ``client_message_id``). At the end every acknowledged message is stored
exactly once, and each sender's messages are in the order it sent them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.ws import DATABASE_FILE
from chatdesign.services import free_port

pytestmark = pytest.mark.slow

KILLS = 20
SENDERS = 4


def start(data: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "chatdesign", "serve", "--port", str(port), "--data", str(data)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    assert "listening on" in process.stdout.readline()
    return process


async def sender(url: str, token: str, group: str, name: str, next_number: list[int], unacked: dict[str, int],
                 acked: dict[str, int]) -> None:
    """Send ``name-N`` messages one at a time until the connection dies; resend unacked first."""
    try:
        async with connect(url, proxy=None, open_timeout=20) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            json.loads(await ws.recv())
            while True:
                if unacked:
                    key = min(unacked, key=unacked.__getitem__)
                else:
                    key = f"{name}-{next_number[0]:05d}"
                    unacked[key] = next_number[0]
                    next_number[0] += 1
                await ws.send(json.dumps({"type": "send", "id": key, "to": group, "content": key,
                                          "client_message_id": key}))
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("id") == key:
                        break
                assert frame["type"] == "ack", frame
                acked[key] = int(frame["seq"])
                del unacked[key]
    except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, EOFError):
        return


def test_acked_messages_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with ChatServer(data / DATABASE_FILE) as chat:
        for i in range(SENDERS):
            chat.register_user(f"s{i}")
        group = chat.create_group("s0", [f"s{i}" for i in range(1, SENDERS)], "crash test")
    authority = TokenAuthority(load_or_create_secret(data), time.time)
    tokens = [authority.issue(f"s{i}", "phone") for i in range(SENDERS)]
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    rng = np.random.default_rng(15)
    numbers = [[0] for _ in range(SENDERS)]
    unacked: list[dict[str, int]] = [{} for _ in range(SENDERS)]
    acked: dict[str, int] = {}

    async def round_trip(process: subprocess.Popen[str], lifetime_s: float) -> None:
        tasks = [asyncio.ensure_future(sender(url, tokens[i], group, f"s{i}", numbers[i], unacked[i], acked))
                 for i in range(SENDERS)]
        await asyncio.sleep(lifetime_s)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    for _ in range(KILLS):
        process = start(data, port)
        asyncio.run(round_trip(process, float(rng.uniform(0.2, 1.0))))
        process.wait(10)
    process = start(data, port)  # a last life without a kill: everything pending gets acked
    try:
        async def last_life() -> None:
            await asyncio.wait_for(asyncio.gather(*(
                drain_unacked(url, tokens[i], group, unacked[i], acked) for i in range(SENDERS))), 60)
        asyncio.run(last_life())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)

    with ChatServer(data / DATABASE_FILE) as chat:
        stored = chat.fetch_messages("s0", group, after_seq=0, limit=100)
        while len(stored) % 100 == 0 and stored:
            more = chat.fetch_messages("s0", group, after_seq=stored[-1].seq, limit=100)
            if not more:
                break
            stored += more
    keys = [m.client_message_id for m in stored]
    assert len(acked) >= KILLS  # the run did send under load
    assert len(keys) == len(set(keys))  # nothing stored twice, retries included
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
    by_key = {m.client_message_id: m.seq for m in stored}
    assert all(by_key.get(key) == seq for key, seq in acked.items())  # every ack kept its seq
    for i in range(SENDERS):
        mine = [k for k in keys if k.startswith(f"s{i}-")]
        assert mine == sorted(mine)  # each sender's messages in the order it sent them


async def drain_unacked(url: str, token: str, group: str, unacked: dict[str, int], acked: dict[str, int]) -> None:
    async with connect(url, proxy=None, open_timeout=20) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        json.loads(await ws.recv())
        for key in sorted(unacked, key=unacked.__getitem__):
            await ws.send(json.dumps({"type": "send", "id": key, "to": group, "content": key,
                                      "client_message_id": key}))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("id") == key:
                    break
            acked[key] = int(frame["seq"])
        unacked.clear()
