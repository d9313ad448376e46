"""Crash durability: the server killed with SIGKILL under load, again and again.

``serve`` runs as a subprocess on a file database; several clients send as fast as the server
acks; at a random moment the process gets SIGKILL (no shutdown code runs). This repeats
:data:`KILLS` times on the same data directory. Afterwards:

- every message whose ack reached a client is stored, exactly once, at the seq its ack named;
- every conversation's seqs are 1..N with no gap and no repeat (a send that was rolled back by
  the crash left no hole);
- a send whose ack never arrived, retried with the same ``client_message_id`` after the restart,
  is stored once: either it had committed (the retry returns the original seq) or it had not
  (the retry stores it now);
- each sender's acknowledged messages are stored in the order it sent them (a retried send
  comes later, at the seq its retry was given).

What makes an ack durable: the server acks a send only after the COMMIT of its group-commit
batch has returned, and SQLite runs in WAL mode with ``synchronous=FULL``, so the commit's WAL
frames are fsynced before COMMIT returns. A killed *process* cannot lose them even with
``NORMAL`` (they are in the OS page cache); ``FULL`` also survives a power cut, which this test
cannot simulate.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.loopback import ServerProcess

pytestmark = pytest.mark.slow

KILLS = 20
SENDERS = ("u0", "u1", "u2", "u3")
RECIPIENTS = ("u1", "u2", "u3", "u0")  # each sender writes to the next user: four 1:1 conversations


async def sender(url: str, token: str, recipient: str, prefix: str, acked: dict[str, tuple[str, int, int]],
                 in_flight: set[str], stop_after_s: float) -> None:
    """Send one message at a time until the connection dies; record acks and what was in flight."""
    try:
        async with connect(url, proxy=None, close_timeout=0.5) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "welcome"
            deadline = time.monotonic() + stop_after_s
            n = 0
            while time.monotonic() < deadline:
                key = f"{prefix}-{n}"
                n += 1
                in_flight.add(key)
                await ws.send(json.dumps({"type": "send", "id": key, "to": recipient, "content": key,
                                          "client_message_id": key}))
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") == "ack" and frame.get("id") == key:
                        acked[key] = (frame["conversation_id"], int(frame["seq"]), int(frame["message_id"]))
                        in_flight.discard(key)
                        break
                    if frame.get("type") == "error" and frame.get("code") == "rate_limited":
                        await asyncio.sleep(0.05)  # over the per-connection send rate: the same send again
                        await ws.send(json.dumps({"type": "send", "id": key, "to": recipient, "content": key,
                                                  "client_message_id": key}))
                    elif frame.get("type") == "error":
                        raise AssertionError(f"refused: {frame}")
    except (ConnectionClosed, OSError):
        pass  # the server died under us: what is in flight stays in flight


def test_acked_messages_survive_repeated_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with ChatServer(data / "chat.db") as chat:
        for user in SENDERS:
            chat.register_user(user)
    authority = TokenAuthority(load_or_create_secret(data), time.time)
    tokens = {user: authority.issue(user, "phone", 3600) for user in SENDERS}
    rng = random.Random(2026)
    acked: dict[str, tuple[str, int, int]] = {}
    in_flight: set[str] = set()

    for round_ in range(KILLS):
        server = ServerProcess(data)
        server.start()
        kill_after_s = rng.uniform(0.2, 0.8)
        codes: list[int] = []

        async def load(server: ServerProcess = server, round_: int = round_, kill_after_s: float = kill_after_s,
                       codes: list[int] = codes) -> None:
            tasks = [asyncio.create_task(sender(server.ws_url, tokens[s], r, f"r{round_}-{s}", acked, in_flight,
                                                30.0))
                     for s, r in zip(SENDERS, RECIPIENTS, strict=True)]
            await asyncio.sleep(kill_after_s)
            codes.append(server.kill())
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

        asyncio.run(load())
        assert codes == [-signal.SIGKILL]

    assert len(acked) > KILLS * len(SENDERS)  # load really ran in every round
    # the sends whose ack never came: retry each with the same key on a fresh server
    server = ServerProcess(data)
    server.start()
    url = server.ws_url
    retried: dict[str, tuple[str, int, int]] = {}

    async def retry() -> None:
        by_sender: dict[str, list[str]] = {}
        for key in sorted(in_flight):
            by_sender.setdefault(key.split("-")[1], []).append(key)
        for user, keys in by_sender.items():
            recipient = RECIPIENTS[SENDERS.index(user)]
            async with connect(url, proxy=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": tokens[user]}))
                json.loads(await ws.recv())
                for key in keys:
                    await ws.send(json.dumps({"type": "send", "id": key, "to": recipient, "content": key,
                                              "client_message_id": key}))
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame.get("id") == key and frame.get("code") == "rate_limited":
                            await asyncio.sleep(0.05)
                            await ws.send(json.dumps({"type": "send", "id": key, "to": recipient, "content": key,
                                                      "client_message_id": key}))
                            continue
                        if frame.get("id") == key:
                            assert frame["type"] == "ack", frame
                            retried[key] = (frame["conversation_id"], int(frame["seq"]), int(frame["message_id"]))
                            break

    asyncio.run(retry())
    assert server.stop() == 0

    with ChatServer(data / "chat.db") as chat:
        stored: dict[str, tuple[str, int, int]] = {}
        keys = Counter()
        for user in SENDERS:
            for item in chat.fetch_conversations(user, 0, 10).items:
                if item.conversation_id in {c for c, _, _ in stored.values()}:
                    continue
                messages = []
                page = chat.fetch_messages(user, item.conversation_id, limit=100)
                while page:
                    messages += page
                    page = chat.fetch_messages(user, item.conversation_id, before_seq=page[-1].seq, limit=100)
                seqs = sorted(m.seq for m in messages)
                assert seqs == list(range(1, len(seqs) + 1)), "a gap or a repeat in a conversation"
                for m in messages:
                    keys[m.client_message_id] += 1
                    stored[m.client_message_id] = (m.conversation_id, m.seq, m.message_id)
    assert max(keys.values()) == 1  # nothing stored twice
    for key, where in acked.items():  # every ack names what is stored
        assert stored.get(key) == tuple(where), key
    for key, where in retried.items():  # every retried send is stored once, where its ack says
        assert stored.get(key) == tuple(where), key
    assert set(stored) == set(acked) | set(retried)
    for user in SENDERS:  # each sender's acknowledged messages are stored in the order it sent them
        mine = sorted((k for k in acked if k.split("-")[1] == user),
                      key=lambda k: (int(k.split("-")[0][1:]), int(k.split("-")[2])))
        assert [stored[k][1] for k in mine] == sorted(stored[k][1] for k in mine)
