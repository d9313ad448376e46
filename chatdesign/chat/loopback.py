"""Measuring the chat server on one machine, and saying why a measurement differs from its model.

Theory of operation. Notebook 06 sets two measurements next to two models:

- send → delivery latency on loopback against :class:`~chatdesign.chat.transport_cost.LoopbackLatencyModel`,
  whose two parts are calibrated in the same run: :func:`measure_echo_hop_ms` (one WebSocket
  frame from one coroutine to another over 127.0.0.1, with the ``websockets`` library) and
  :func:`measure_send_ms` (the in-process :class:`~chatdesign.chat.ChatServer` storing one
  message with a durable commit in a directory the caller chooses);
- memory per idle connection against Alex Xu's 10 KB
  (:data:`~chatdesign.chat.transport_cost.XU_MEMORY_PER_CONNECTION_BYTES`), from the growth of
  the server process's resident set (:func:`process_rss_bytes`).

Timings read ``time.perf_counter``: they are measurements, never inputs to a rule, and a
notebook shows them only in cells whose output nbval ignores. :class:`LatencySummary` turns
samples into the quantiles a notebook can state, and :func:`explain_latency` /
:func:`explain_memory` word the comparison from the numbers, so the sentence stays true when
the numbers move. Everything talks to 127.0.0.1 only and every loop is bounded by a count.

Taught in ``notebooks/06_connections.ipynb``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from chatdesign.chat.auth import TokenAuthority, load_or_create_secret
from chatdesign.chat.client import ChatClient
from chatdesign.chat.core import validate_device_id
from chatdesign.chat.server import ChatServer
from chatdesign.chat.transport_cost import XU_MEMORY_PER_CONNECTION_BYTES, LatencyPrediction
from chatdesign.chat.ws import DATABASE_FILE
from chatdesign.checks import check_number, check_whole
from chatdesign.clock import ManualClock
from chatdesign.units import format_bytes

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_SAMPLES",
    "ConnectionMemory",
    "LatencySummary",
    "ServerProcess",
    "explain_latency",
    "explain_memory",
    "issue_tokens",
    "measure_echo_hop_ms",
    "measure_idle_connection_memory",
    "measure_send_ms",
    "measure_send_to_delivery_ms",
    "process_rss_bytes",
]

MAX_SAMPLES = 10_000
"""Upper bound on any measurement loop here."""
MAX_CONNECTIONS = 5_000
"""Upper bound on the idle connections :func:`measure_idle_connection_memory` opens."""


@dataclass(frozen=True)
class LatencySummary:
    """Quantiles of a set of latency samples, in milliseconds."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: npt.ArrayLike) -> LatencySummary:
        """Summarise samples (ms); ``ValueError`` if there are none or any is negative or not finite."""
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError("need a non-empty one-dimensional array of samples")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("latency samples must be finite and not negative")
        p50, p90, p99 = np.quantile(values, [0.5, 0.9, 0.99])
        return cls(int(values.size), float(p50), float(p90), float(p99), float(values.max()))

    def __repr__(self) -> str:
        return (
            f"LatencySummary({self.samples} samples: p50={self.p50_ms:.2f} ms, p90={self.p90_ms:.2f} ms, "
            f"p99={self.p99_ms:.2f} ms, max={self.max_ms:.2f} ms)"
        )


def _count(samples: int) -> int:
    return check_whole(samples, "samples", minimum=1, maximum=MAX_SAMPLES)


async def measure_echo_hop_ms(samples: int = 200, payload_bytes: int = 100) -> npt.NDArray[np.float64]:
    """One-way WebSocket hop times (ms) on 127.0.0.1: half of each echo round trip.

    A bare ``websockets`` echo server on a free loopback port in this event loop; a client sends
    ``payload_bytes`` of text and waits for it to come back, ``samples`` times (at most
    :data:`MAX_SAMPLES`). No chat logic, no JSON, no storage: the floor under every chat frame.
    """
    count = _count(samples)
    size = check_whole(payload_bytes, "payload_bytes", minimum=1, maximum=65_536)

    async def echo(connection: ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    payload = "x" * size
    hops = np.empty(count)
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            for _ in range(5):  # warm up the connection and the code paths
                await client.send(payload)
                await client.recv()
            for i in range(count):
                start = time.perf_counter()
                await client.send(payload)
                await client.recv()
                hops[i] = (time.perf_counter() - start) * 1000 / 2
    return hops


def measure_send_ms(directory: str | Path, samples: int = 200) -> npt.NDArray[np.float64]:
    """Time (ms) the in-process :class:`ChatServer` takes to store one 1:1 message, durably.

    A new database ``send-calibration.db`` in ``directory`` (``synchronous=FULL``: each send is
    committed to disk before it returns), two users, ``samples`` sends (at most
    :data:`MAX_SAMPLES`). The directory should be on the disk the real server uses.
    """
    count = _count(samples)
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"directory {str(folder)!r} does not exist")
    times = np.empty(count)
    with ChatServer(folder / "send-calibration.db", clock=ManualClock(1_750_000_000.0)) as chat:
        chat.register_user("calibration-a")
        chat.register_user("calibration-b")
        chat.send_message("calibration-a", "calibration-b", "warm-up", "warm-up")
        for i in range(count):
            start = time.perf_counter()
            chat.send_message("calibration-a", "calibration-b", f"message {i}", f"m-{i}")
            times[i] = (time.perf_counter() - start) * 1000
    return times


def process_rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes, from Linux's ``/proc/PID/status`` (``VmRSS``).

    ``ValueError`` if there is no such process (or no ``/proc``, as on macOS).
    """
    check_whole(pid, "pid", minimum=1)
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        raise ValueError(f"no process with pid {pid} (or no /proc on this system)") from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected unit {unit!r} in /proc/{pid}/status")
            return int(value) * 1024  # the kernel's "kB" is KiB
    raise ValueError(f"process {pid} has no resident set (a zombie?)")


def explain_latency(
    prediction: LatencyPrediction, measured: LatencySummary, paced: LatencySummary | None = None
) -> str:
    """Sentences, worded from the numbers, on how the measured latency differs from the model.

    ``measured`` is back to back (each send right after the previous delivery); ``paced``, if
    given, left the server idle between messages.
    """
    ratio = measured.p50_ms / prediction.p50_ms if prediction.p50_ms > 0 else float("inf")
    if ratio > 1.25:
        text = (
            f"The measured median ({measured.p50_ms:.1f} ms) is {ratio:.1f}x the model's ({prediction.p50_ms:.1f} ms). "
            "The model adds up one bare echo hop each way, one durable send and the group-commit linger; the real "
            "path also parses and writes JSON at both ends, wakes several coroutines, and commits the receiver's "
            "delivery acknowledgement, another durable write on the server's one thread"
        )
        if paced is not None and paced.p50_ms < 0.8 * measured.p50_ms:
            text += (
                f". Left idle between messages the median drops to {paced.p50_ms:.1f} ms "
                f"({paced.p50_ms / prediction.p50_ms:.1f}x the model): a send that follows at once waits behind "
                "the previous message's acknowledgement"
            )
        elif paced is not None:
            text += (
                f". Left idle between messages the median is {paced.p50_ms:.1f} ms "
                f"({paced.p50_ms / prediction.p50_ms:.1f}x the model), "
                f"{'about the same' if paced.p50_ms <= 1.2 * measured.p50_ms else 'higher'}: waiting behind the "
                "previous message's acknowledgement is not what costs the time here, the work on each message is"
            )
        text += ". "
    elif ratio < 0.8:
        text = (
            f"The measured median ({measured.p50_ms:.1f} ms) is below the model's ({prediction.p50_ms:.1f} ms): "
            "the calibrated parts overlap in the real server, so adding them up overstates the path. "
        )
    else:
        text = (
            f"The measured median ({measured.p50_ms:.1f} ms) is within 25 % of the model's "
            f"({prediction.p50_ms:.1f} ms): two hops, one durable send and the linger are the whole path. "
        )
    tail_ratio = measured.p99_ms / measured.p50_ms if measured.p50_ms > 0 else float("inf")
    if tail_ratio > 2:
        text += (
            f"The tail is {tail_ratio:.1f}x the median (p99 {measured.p99_ms:.1f} ms): now and then a disk flush, "
            "the garbage collector or another process on the same CPUs stalls a message, which a model of "
            "typical costs does not have."
        )
    else:
        text += f"The tail stays near the median (p99 {measured.p99_ms:.1f} ms): nothing stalled for long."
    return text


def explain_memory(measured_bytes_per_connection: float, assumed_bytes: float = XU_MEMORY_PER_CONNECTION_BYTES) -> str:
    """One sentence, worded from the numbers, on how measured memory per connection differs from
    the assumed figure (Xu's 10 KB by default)."""
    measured = check_number(measured_bytes_per_connection, "measured_bytes_per_connection")
    assumed = check_number(assumed_bytes, "assumed_bytes", positive=True)
    ratio = measured / assumed
    said = f"This server holds {format_bytes(measured)} per idle connection, {ratio:.1f}x Xu's {format_bytes(assumed)}"
    kernel = (
        "; and the kernel's socket buffers, which a real capacity budget must add, are not in the process's "
        "resident memory at all."
    )
    if ratio > 1.25:
        return (
            said + ": each connection here is a Python coroutine with its websockets protocol object, asyncio "
            "transport, read buffer, outgoing queue and session, where Xu's figure budgets a lean connection in "
            "a compiled server" + kernel
        )
    if ratio < 0.8:
        return (
            said + ": an idle connection allocates its buffers lazily, so little is resident until traffic "
            "flows" + kernel
        )
    return said + ": close to the textbook budget" + kernel



# --- the real server, as a separate process -----------------------------------------------------

_LISTENING = re.compile(r"listening on (http://\S+) \(WebSocket (ws://\S+)\)")


def issue_tokens(data_dir: str | Path, devices: Sequence[tuple[str, str]], ttl_s: float = 3_600) -> list[str]:
    """Tokens for ``(user, device)`` pairs, registering new users in the server's database.

    What ``python -m chatdesign token USER DEVICE --data DIR`` does, for many devices in one go
    and without starting a process for each; call it before the server starts. Tokens are
    signed with the directory's secret and expire after ``ttl_s`` seconds of wall time.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise ValueError(f"data directory {str(folder)!r} does not exist")
    pairs = [(str(user), str(device)) for user, device in devices]
    if not pairs:
        raise ValueError("devices must name at least one (user, device) pair")
    for _, device in pairs:
        validate_device_id(device)
    with ChatServer(folder / DATABASE_FILE) as chat:
        for user in dict.fromkeys(user for user, _ in pairs):
            if not chat.has_user(user):
                chat.register_user(user)
    authority = TokenAuthority(load_or_create_secret(folder), time.time)
    return [authority.issue(user, device, ttl_s) for user, device in pairs]


class ServerProcess:
    """``python -m chatdesign serve`` on 127.0.0.1, a free port and ``data_dir``, in its own process.

    Use it as ``with ServerProcess(directory) as server:``; :attr:`ws_url` is the WebSocket
    endpoint, :attr:`pid` the process to measure. Leaving the block sends SIGTERM (a clean
    shutdown: queued sends committed, connections closed with 1001) and waits for the exit;
    :attr:`returncode` is then 0 after a clean stop. ``ValueError`` if it does not start in
    ``start_timeout_s``. ``extra_args`` are more ``serve`` options (e.g. ``--database URL``);
    :meth:`kill` is the crash a test wants (SIGKILL, no shutdown code runs).
    """

    def __init__(self, data_dir: str | Path, start_timeout_s: float = 60.0, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.start_timeout_s = check_number(start_timeout_s, "start_timeout_s", positive=True)
        self.extra_args = tuple(str(a) for a in extra_args)
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.ws_url = ""
        self.returncode: int | None = None

    def __repr__(self) -> str:
        state = "running" if self._process is not None and self.returncode is None else "stopped"
        return f"ServerProcess({state})"

    @property
    def pid(self) -> int:
        """The server's process id (``RuntimeError`` before it started)."""
        if self._process is None:
            raise RuntimeError("the server has not been started")
        return self._process.pid

    def start(self) -> None:
        """Start the server and wait until it prints the address it listens on."""
        if not self.data_dir.is_dir():
            raise ValueError(f"data directory {str(self.data_dir)!r} does not exist")
        command = [sys.executable, "-m", "chatdesign", "serve", "--host", "127.0.0.1", "--port", "0",
                   "--data", str(self.data_dir), *self.extra_args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + self.start_timeout_s
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            found = _LISTENING.search(line)
            if found:
                self.url, self.ws_url = found.group(1), found.group(2)
                return
        self.stop()
        raise ValueError("the server did not start: " + " | ".join(lines[-5:]))

    @property
    def running(self) -> bool:
        """Whether the process has been started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> int:
        """SIGKILL the process (no shutdown code runs), wait for it and return its exit code (-9)."""
        process = self._process
        if process is None:
            raise RuntimeError("the server has not been started")
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.returncode = process.returncode
        return process.returncode

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait for the exit (kill after ``timeout_s``) and return the exit code."""
        process = self._process
        if process is None:
            raise RuntimeError("the server has not been started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.returncode = process.returncode
        return process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self.returncode is None:
            self.stop()


async def measure_send_to_delivery_ms(
    ws_url: str, sender_tokens: Sequence[str], receiver_token: str, recipient_id: str, samples: int = 150,
    pause_s: float = 0.0, label: str = "timing", timeout_s: float = 10.0,
) -> npt.NDArray[np.float64]:
    """Send → delivery times (ms) through a running server: one at a time, from each of the
    sender's devices in turn to ``recipient_id``, timed from the call to ``send`` until the
    receiver's client hands the pushed message over.

    Several sender devices keep each connection under the server's per-connection rate limit
    (a token bucket). ``pause_s`` waits between messages (0: back to back, each send right after
    the previous delivery). Each send's ``client_message_id`` is ``f"{label}-{i}"``: use a new
    ``label`` for each measurement against the same server, or the server will rightly treat the
    sends as retries of the earlier ones and store nothing new. ``samples`` is at most
    :data:`MAX_SAMPLES`; ``TimeoutError`` if a message takes longer than ``timeout_s`` (or the
    send's own error if it failed); ``ValueError`` if one arrives out of order or twice.
    """
    count = _count(samples)
    pause = check_number(pause_s, "pause_s", minimum=0, maximum=10)
    if not sender_tokens:
        raise ValueError("need at least one sender token")
    times = np.empty(count)
    async with ChatClient.connect(ws_url, receiver_token, heartbeats=False, seed=1) as receiver:
        clients: list[ChatClient] = []
        try:
            for i, token in enumerate(sender_tokens):
                client = ChatClient(ws_url, token, heartbeats=False, seed=2 + i)
                await client.start()
                clients.append(client)
            last_seq: int | None = None
            for i in range(count):
                sender = clients[i % len(clients)]
                start = time.perf_counter()
                sending = asyncio.get_running_loop().create_task(
                    sender.send(recipient_id, f"{label} {i}", client_message_id=f"{label}-{i}"))
                try:
                    message = await receiver.receive(timeout=timeout_s)
                except TimeoutError:
                    failure = sending.exception() if sending.done() else None
                    if failure is not None:
                        raise failure from None  # the send failed: say why
                    raise
                times[i] = (time.perf_counter() - start) * 1000
                await sending
                if last_seq is not None and message.seq != last_seq + 1:
                    raise ValueError(f"message {i} arrived with seq {message.seq} after {last_seq}")
                last_seq = message.seq
                if pause:
                    await asyncio.sleep(pause)
        finally:
            for client in clients:
                await client.close()
    return times


@dataclass(frozen=True)
class ConnectionMemory:
    """Resident memory of the server process before and while it holds ``connections`` idle ones."""

    connections: int
    rss_before_bytes: int
    rss_after_bytes: int

    @property
    def per_connection_bytes(self) -> float:
        """Growth of the resident set per connection (bytes)."""
        return (self.rss_after_bytes - self.rss_before_bytes) / self.connections

    def __repr__(self) -> str:
        return (
            f"ConnectionMemory({self.connections} idle connections: RSS {format_bytes(self.rss_before_bytes)} -> "
            f"{format_bytes(self.rss_after_bytes)}, {format_bytes(self.per_connection_bytes)} per connection)"
        )


async def measure_idle_connection_memory(
    server_pid: int, ws_url: str, tokens: Sequence[str], settle_s: float = 1.0
) -> ConnectionMemory:
    """Open one authenticated, idle WebSocket connection per token and report the resident
    memory of the server process (``server_pid``) before and after. The connections are opened
    in batches of 50 and closed again before returning; at most :data:`MAX_CONNECTIONS`.
    """
    count = check_whole(len(tokens), "the number of tokens", minimum=1, maximum=MAX_CONNECTIONS)
    pause = check_number(settle_s, "settle_s", minimum=0, maximum=60)
    await asyncio.sleep(pause)
    before = process_rss_bytes(server_pid)
    clients: list[ChatClient] = []
    try:
        for start in range(0, count, 50):  # a crowd of phones arriving, 50 at a time
            batch = [ChatClient(ws_url, token, heartbeats=False, seed=i)
                     for i, token in enumerate(tokens[start:start + 50], start=start)]
            await asyncio.gather(*(client.start() for client in batch))
            clients += batch
        await asyncio.sleep(pause)
        after = process_rss_bytes(server_pid)
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return ConnectionMemory(count, before, after)
