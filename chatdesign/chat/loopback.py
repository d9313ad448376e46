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

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from chatdesign.chat.server import ChatServer
from chatdesign.chat.transport_cost import XU_MEMORY_PER_CONNECTION_BYTES, LatencyPrediction
from chatdesign.checks import check_number, check_whole
from chatdesign.clock import ManualClock
from chatdesign.units import format_bytes

__all__ = [
    "MAX_SAMPLES",
    "LatencySummary",
    "explain_latency",
    "explain_memory",
    "measure_echo_hop_ms",
    "measure_send_ms",
    "process_rss_bytes",
]

MAX_SAMPLES = 10_000
"""Upper bound on any measurement loop here."""


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


def explain_latency(prediction: LatencyPrediction, measured: LatencySummary) -> str:
    """One sentence, worded from the numbers, on how the measured latency differs from the model."""
    ratio = measured.p50_ms / prediction.p50_ms if prediction.p50_ms > 0 else float("inf")
    if ratio > 1.25:
        median = (
            f"The measured median ({measured.p50_ms:.2f} ms) is {ratio:.1f}x the model's "
            f"({prediction.p50_ms:.2f} ms): the model adds up a bare echo hop and an in-process send, but the "
            "real path also parses and writes JSON, authenticates the frame against a session, hands the send "
            "to the commit batcher and back, and wakes two more coroutines"
        )
    elif ratio < 0.8:
        median = (
            f"The measured median ({measured.p50_ms:.2f} ms) is below the model's ({prediction.p50_ms:.2f} ms): "
            "the calibrated parts overlap in the real server (the push leaves while the sender's ack is still "
            "being written), so adding them up overstates the path"
        )
    else:
        median = (
            f"The measured median ({measured.p50_ms:.2f} ms) is within 25 % of the model's "
            f"({prediction.p50_ms:.2f} ms): on an idle machine, two hops plus one durable send is the path"
        )
    tail_ratio = measured.p99_ms / measured.p50_ms if measured.p50_ms > 0 else float("inf")
    tail = (
        f"; the tail is {tail_ratio:.1f}x the median (p99 {measured.p99_ms:.2f} ms), because a disk flush, the "
        "garbage collector or the OS scheduler now and then stalls one message, which a model of averages "
        "does not have."
        if tail_ratio > 2
        else f"; the tail stays close to the median (p99 {measured.p99_ms:.2f} ms): nothing stalled much."
    )
    return median + tail


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

