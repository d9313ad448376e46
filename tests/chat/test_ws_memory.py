"""Bounded memory: a slow consumer and a flood of sends against ``python -m chatdesign serve``.

The server runs as a subprocess with its default :class:`~chatdesign.chat.ws.ServerSettings`
(so this checks the limits a real deployment has). bob connects one device, authenticates
and then never reads (its socket has a small receive buffer and the client stops reading it).
:data:`FLOODERS` other users each write to bob 1:1 with :data:`CONTENT_CHARS`-character
messages, each keeping :data:`IN_FLIGHT` sends unanswered at most and never more than
:data:`RATE_PER_S` a second (under the server's 20 a second per connection), for at most
:data:`FLOOD_S` seconds and :data:`PER_FLOODER` messages each: as fast as the server commits,
without building a backlog in front of it. Meanwhile :data:`PROBES` pairs of other users send
each other a small message every 0.1 s and time it from send to delivery. The server's RSS
(``VmRSS`` in ``/proc/PID/status``) is sampled every 20 ms.

The bound. Every message to bob is pushed to bob's connection's outgoing queue, which holds at
most ``outgoing_queue_frames`` frames; when it is full the server closes the connection with
``CLOSE_SLOW_CONSUMER`` and queues nothing more for it. Until the connection is gone the queue
keeps its frames, so the slow consumer pins ``outgoing_queue_frames x frame_bytes`` (a frame is
a Python ``str`` of ASCII JSON: one byte per character plus a 49-byte header). Everything else
is in flight and bounded by the clients' windows: at most ``FLOODERS x IN_FLIGHT`` sends, each
held a few times over (received frame, parsed content, stored message, encoded push, SQLite's
copy) -- we allow 6 copies -- plus 8 MiB for SQLite's page cache, websockets' buffers and
allocator slack. So the RSS growth over the baseline (every client connected and warmed up)
must stay under ``queue + FLOODERS x IN_FLIGHT x 6 x frame_bytes + 8 MiB``. A server whose queue
were unbounded would hold every message sent to bob; the test checks that the flood pushed more
than the bound to bob, so such a server fails it.

The others' latency. The p99 of the probes' send-to-delivery latency must stay under
:data:`P99_BOUND_S` (generous: the machine may be loaded; a server that waited on the slow
consumer would stall everyone for the rest of the flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatdesign.chat import ChatServer
from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.protocol import CLOSE_SLOW_CONSUMER
from chatdesign.chat.ws import DATABASE_FILE, ServerSettings
from chatdesign.services import free_port

pytestmark = pytest.mark.slow

FLOODERS = 24
PER_FLOODER = 100
IN_FLIGHT = 2
FLOOD_S = 8.0
RATE_PER_S = 19.0
CONTENT_CHARS = 16_000
PROBES = 3
PROBE_EVERY_S = 0.1
P99_BOUND_S = 2.0
MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """The process's resident set size, from ``/proc/PID/status`` (``VmRSS``, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def frame_bytes() -> int:
    """Size of one pushed message frame of :data:`CONTENT_CHARS` characters (as the server
    encodes it, plus the ``str`` header)."""
    sample = {"type": "message", "message": {
        "message_id": "9" * 19, "conversation_id": "d:" + "9" * 19, "seq": 99999, "sender_id": "f31",
        "content": "y" * CONTENT_CHARS, "created_at": 1_750_000_000.123, "attachments": []}}
    return len(json.dumps(sample, separators=(",", ":"))) + 49


async def authed(url: str, token: str, **options: Any) -> ClientConnection:
    ws = await connect(url, proxy=None, compression=None, max_size=2**20, **options)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    while (frame := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "welcome":
        assert frame["type"] != "error", frame
    return ws


async def flooder(ws: ClientConnection, count: int, deadline: float, acked: list[int]) -> None:
    """Send to bob until ``count`` or ``deadline``, at most :data:`IN_FLIGHT` unanswered and
    :data:`RATE_PER_S` a second; read everything (answers and this user's own pushes)."""
    content = "y" * CONTENT_CHARS
    window = asyncio.Semaphore(IN_FLIGHT)
    answered = [0]

    async def read() -> None:
        async for data in ws:
            if isinstance(data, str) and data.startswith('{"type":"message"'):
                continue  # this user's own message, pushed back: only read it
            frame = json.loads(data)
            if frame["type"] in ("ack", "error"):
                assert frame["type"] == "ack", frame
                answered[0] += 1
                acked[0] += 1
                window.release()

    reader = asyncio.create_task(read())
    sent = 0
    next_at = time.monotonic()
    while sent < count and time.monotonic() < deadline:
        await window.acquire()
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + 1 / RATE_PER_S
        await ws.send(json.dumps({"type": "send", "id": sent, "to": "bob", "content": content,
                                  "client_message_id": f"k{time.monotonic_ns()}-{sent}"}))
        sent += 1
    for _ in range(3000):  # bounded: every send is answered
        if answered[0] == sent:
            break
        await asyncio.sleep(0.01)
    assert answered[0] == sent, f"{sent - answered[0]} sends never answered"
    reader.cancel()
    await ws.close()


async def probe(sender: ClientConnection, receiver_ws: ClientConnection, receiver: str, deadline: float,
                latencies: list[float]) -> None:
    """Small messages from one user to another every :data:`PROBE_EVERY_S`; latency per message
    from the send to its push arriving at the receiver."""
    sent_at: dict[str, float] = {}

    async def receive() -> None:
        async for data in receiver_ws:
            frame = json.loads(data)
            if frame["type"] == "message" and frame["message"]["content"] in sent_at:
                latencies.append(time.monotonic() - sent_at.pop(frame["message"]["content"]))

    async def drain_sender() -> None:
        async for _ in sender:
            pass

    tasks = [asyncio.create_task(receive()), asyncio.create_task(drain_sender())]
    n = 0
    while time.monotonic() < deadline:
        key = f"probe-{receiver}-{n}"
        sent_at[key] = time.monotonic()
        await sender.send(json.dumps({"type": "send", "to": receiver, "content": key, "client_message_id": key}))
        n += 1
        await asyncio.sleep(PROBE_EVERY_S)
    for _ in range(500):  # bounded wait for the last ones
        if not sent_at:
            break
        await asyncio.sleep(0.02)
    assert not sent_at, f"{len(sent_at)} probe messages never arrived"
    for task in tasks:
        task.cancel()
    await sender.close()
    await receiver_ws.close()


def test_slow_consumer_bounded_memory_and_latency(tmp_path: Path) -> None:
    settings = ServerSettings()  # what `serve` runs with
    queue_bytes = settings.outgoing_queue_frames * frame_bytes()
    bound = queue_bytes + FLOODERS * IN_FLIGHT * 6 * frame_bytes() + 8 * MIB
    data = tmp_path / "data"
    data.mkdir()
    flooders = [f"f{i}" for i in range(FLOODERS)]
    probe_users = [(f"ps{i}", f"pr{i}") for i in range(PROBES)]
    with ChatServer(data / DATABASE_FILE) as chat:
        for user in ["bob", *flooders, *[u for pair in probe_users for u in pair]]:
            chat.register_user(user)
    authority = TokenAuthority(load_or_create_secret(data), time.time)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    process = subprocess.Popen(
        [sys.executable, "-m", "chatdesign", "serve", "--port", str(port), "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    figures: dict[str, float] = {}
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("chat server listening on")

        async def main() -> None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
            sock.connect(("127.0.0.1", port))
            slow = await authed(url, authority.issue("bob", "slow", 600), sock=sock, max_queue=4)
            slow.transport.pause_reading()  # bob's app hangs: it never reads again (until the end)
            def token(user: str) -> str:
                return authority.issue(user, "phone", 600)
            flooding = [await authed(url, token(u)) for u in flooders]
            probing = [(await authed(url, token(s)), await authed(url, token(r)), r) for s, r in probe_users]
            warm: list[int] = [0]
            await asyncio.gather(*(flooder(ws, 1, time.monotonic() + 30, warm) for ws in flooding[:4]))
            flooding[:4] = [await authed(url, token(u)) for u in flooders[:4]]
            await asyncio.sleep(0.5)
            baseline = max(rss_bytes(process.pid) for _ in range(3))
            peak = [baseline]

            async def sample() -> None:
                while True:
                    peak[0] = max(peak[0], rss_bytes(process.pid))
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            acked: list[int] = [0]
            latencies: list[float] = []
            deadline = time.monotonic() + FLOOD_S
            await asyncio.gather(*(flooder(ws, PER_FLOODER, deadline, acked) for ws in flooding),
                                 *(probe(s, r, name, deadline, latencies) for s, r, name in probing))
            sampler.cancel()
            slow.transport.resume_reading()  # bob's app wakes up: what did the server do?

            async def until_closed() -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await slow.recv()
            with contextlib.suppress(TimeoutError):  # a server that never cut bob off: no close
                await asyncio.wait_for(until_closed(), 15)
            latencies.sort()
            figures.update(baseline_mib=baseline / MIB, peak_mib=peak[0] / MIB,
                           growth_mib=(peak[0] - baseline) / MIB, bound_mib=bound / MIB,
                           pushed_to_bob_mib=(acked[0] + warm[0]) * frame_bytes() / MIB, acked=acked[0],
                           probes=len(latencies), p50_s=latencies[len(latencies) // 2],
                           p99_s=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
                           close_code=slow.close_code or 0)
            figures["close_reason"] = slow.close_reason or ""  # type: ignore[assignment]

        asyncio.run(main())
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    print("bounded memory:", figures)
    assert figures["pushed_to_bob_mib"] > figures["bound_mib"], "the flood is too small to show a bound"
    assert figures["growth_mib"] < figures["bound_mib"], figures
    assert figures["close_code"] == CLOSE_SLOW_CONSUMER, figures
    assert "slow consumer" in str(figures["close_reason"]), figures
    assert figures["probes"] >= 0.5 * PROBES * FLOOD_S / PROBE_EVERY_S
    assert figures["p99_s"] < P99_BOUND_S, figures
