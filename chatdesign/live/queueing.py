"""A PoP's servers as a queue: first come, first served, ``servers`` identical servers, each
request taking the same service time (a D/c queue fed by whatever arrives).

Theory of operation. When every request takes the same time ``s`` and the queue is first come,
first served, the server that frees first is always the one that started earliest, so request
``i`` (in order of arrival) starts at ``max(ready_i, start_{i-c} + s)``: the requests split into
``c`` interleaved lines, each a single-server queue. In one line the recursion
``start_k = max(r_k, start_{k-1} + s)`` unrolls to ``start_k = k s + max_{j <= k}(r_j - j s)``,
a running maximum, so a whole PoP's segment is queued with numpy and no Python loop per request.
This solver (:func:`fifo_finish_times`) is exact, not a fluid approximation; the SimPy oracle (a
``simpy.Resource`` with ``c`` slots) checks it request by request, and the tests check it
against the M/D/1 formula. It needs the ready times sorted.

In the live model (``queueing=True`` in :func:`~chatdesign.live.simulate.simulate_live`) a
request joins its PoP's queue when the edge can answer it (a hit on arrival, a coalesced waiter
when the segment lands) and ``s`` is the time one server takes to send the segment
(:meth:`~chatdesign.live.topology.PathDelays.service_s`): queueing delay plus transfer time.

The binned queue (the live model's default with coalescing, ``queue_bin_s`` > 0). Sorting costs
more than the rest of the model, so by default the live model rounds each ready time UP to the
end of its bin of width ``b`` (:data:`QUEUE_BIN_S`, 0.625 ms) and serves each bin's requests as
one batch of a fluid queue with service time ``s / c`` (a single server ``c`` times as fast):
bin ``j`` (``m_j`` requests ready at its end ``e_j``) starts its ``k``-th request at
``X_j + k s / c`` where ``X_j = max(e_j, X_{j-1} + m_{j-1} s / c)``, a running maximum over the
bins (:func:`fluid_bin_starts`), with no sort and no pass per request beyond counting them per
bin. Error bound, per request (in the queue order): rounding moves each ready time up by at most
``b`` and FIFO start times are 1-Lipschitz in the sorted ready times, so starts move up by
``[0, b]``; the fluid start ``max_{j <= i} (r_j + (i - j) s / c)`` is at least the exact D/c
start ``max_m (r_{i - mc} + m s)`` (whose terms are a subset of its terms) and at most
``(c - 1) s / c`` above it (each of its terms is within that of an exact one).
So each start is within ``[exact, exact + b + (c - 1) s / c]`` (:func:`binned_fifo_starts`,
tested against :func:`fifo_finish_times`), a wait within ``[-b, b + s]`` of the exact one, and
with ``c = 1`` the fluid is exact, so M/D/1 holds to within ``b``. In the live model a request's
latency is taken from its arrival bin's end (up to ``b`` later than it arrived): every latency is
within ``(-b, b + s)`` of the exact queue's, and the histogram, which spreads each bin's evenly
spaced latencies over 0.1 ms bins (:class:`ProgressionHistogram`), adds at most one step
``s / c`` and one histogram bin: sorted, the reported latencies are each within
``b + s + 0.1 ms`` of the exact ones (``tests/live/test_simulate.py`` checks the bound on random
scenarios). With coalescing each PoP's first request is served first and computed exactly.
Without coalescing a miss is ready at its own answer, among the arrivals of hits in the same bin;
the live model keeps the order inside each bin exact (a miss goes after exactly the hits of its
bin that arrived before its answer), so the same bound holds; a hit's latency is taken from the
end of its arrival bin, a miss's from its own arrival. ``queue_bin_s=0`` keeps the exact queue,
which the SimPy oracle checks.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from chatdesign.checks import check_number, check_whole

QUEUE_BIN_S: Final = 0.01 / 16
"""Default width (s) of the bins the live model's PoP queue rounds ready times up to (0.625 ms,
10 ms / 16); ``queue_bin_s=0`` queues every request exactly."""


def check_queue_bin(queue_bin_s: float) -> float:
    """``queue_bin_s`` checked: 0 (the exact queue) or 10 ms divided by a power of two from 1 to
    1024, so that one pass over the arrivals gives both the queue's bins and the 10 ms peak's
    (scaling a float by a power of two is exact). Raises ``ValueError`` otherwise."""
    value = check_number(queue_bin_s, "queue_bin_s", minimum=0)
    if value and not any(value == 0.01 / 2**k for k in range(11)):
        raise ValueError("queue_bin_s must be 0 (the exact queue) or 0.01 s divided by a power "
                         f"of two (0.01, 0.005, ..., 0.01/1024), got {queue_bin_s!r}")
    return value


def fifo_finish_times(ready_s: np.ndarray, servers: int, service_s: float) -> np.ndarray:
    """When each request finishes in a FIFO queue of ``servers`` servers of ``service_s`` each.

    ``ready_s`` must be sorted (the queue's order). Returns the finish times, same order;
    the wait of request ``i`` is ``finish[i] - service_s - ready_s[i]``. Raises ``ValueError``
    for unsorted or non-finite times, a server count below 1 or a negative service time.
    """
    servers = check_whole(servers, "servers", minimum=1)
    service = check_number(service_s, "service_s", minimum=0)
    ready = np.asarray(ready_s, dtype=float)
    if ready.ndim != 1:
        raise ValueError("ready_s must be a one-dimensional array of times")
    if len(ready) == 0:
        return ready.copy()
    if not np.all(np.isfinite(ready)):
        raise ValueError("ready_s must hold finite times")
    if np.any(np.diff(ready) < 0):
        raise ValueError("ready_s must be sorted (the queue is first come, first served)")
    return fifo_finish_sorted(ready, servers, service)


def fifo_finish_sorted(ready_s: np.ndarray, servers: int, service_s: float) -> np.ndarray:
    """:func:`fifo_finish_times` without its checks, for callers that already hold sorted,
    finite times (the live model, once per PoP and segment)."""
    count = len(ready_s)
    if count == 0:
        return np.empty(0)
    lines = min(servers, count)
    rows = -(-count // lines)
    if rows * lines == count:
        grid = ready_s.reshape(rows, lines)
    else:
        padded = np.full(rows * lines, np.inf)
        padded[:count] = ready_s
        grid = padded.reshape(rows, lines)
    offset = (np.arange(rows, dtype=float) * service_s)[:, None]
    start = grid - offset
    np.maximum.accumulate(start, axis=0, out=start)
    start += offset
    start += service_s
    finish: np.ndarray = start.ravel()[:count]
    return finish


def md1_mean_wait_s(arrival_rps: float, service_s: float) -> float:
    """Mean wait in queue of an M/D/1 queue (Poisson arrivals, one server, fixed service):
    ``rho x s / (2 (1 - rho))`` with ``rho = arrival_rps x s`` (Pollaczek-Khinchine)."""
    rate = check_number(arrival_rps, "arrival_rps", positive=True)
    service = check_number(service_s, "service_s", positive=True)
    rho = rate * service
    if rho >= 1:
        raise ValueError(f"the queue is unstable: utilisation {rho:.3g} must be below 1")
    return rho * service / (2 * (1 - rho))


def fluid_bin_starts(ready_end_s: np.ndarray, counts: np.ndarray, servers: int,
                     service_s: float) -> np.ndarray:
    """When the first request of each bin starts in the binned fluid queue (see the module).

    ``ready_end_s``: each bin's (rounded-up) ready time, increasing; ``counts``: its requests.
    The ``k``-th request of bin ``j`` starts at ``X_j + k x service_s / servers``. No checks
    (the live model calls it once per PoP and segment); bins without requests are allowed.
    """
    step = service_s / servers
    before = np.cumsum(counts) - counts
    term = np.where(counts > 0, ready_end_s - step * before, -np.inf)
    np.maximum.accumulate(term, out=term)
    starts: np.ndarray = step * before + term
    return starts


def binned_fifo_starts(ready_s: np.ndarray, servers: int, service_s: float,
                       bin_s: float) -> np.ndarray:
    """Start times of sorted ``ready_s`` in the binned fluid queue: each ready time rounded up
    to the end of its bin of width ``bin_s`` (from 0), each bin a batch of the fluid queue.
    Within ``[exact, exact + bin_s + (servers - 1) x service_s / servers]`` of the exact FIFO
    starts (``fifo_finish_times(...) - service_s``). Same checks as :func:`fifo_finish_times`;
    ``bin_s`` must be positive."""
    servers = check_whole(servers, "servers", minimum=1)
    service = check_number(service_s, "service_s", minimum=0)
    width = check_number(bin_s, "bin_s", positive=True)
    ready = np.asarray(ready_s, dtype=float)
    fifo_finish_times(ready, servers, service)  # the same checks (and errors)
    if len(ready) == 0:
        return ready.copy()
    index = np.floor(ready / width).astype(np.int64) + 1  # the bin whose end is at or above
    index -= int(index[0])
    counts = np.bincount(index)
    ends = (np.arange(len(counts)) + float(np.floor(ready[0] / width) + 1)) * width
    first = fluid_bin_starts(ends, counts, servers, service)
    rank = np.arange(len(ready)) - (np.cumsum(counts) - counts)[index]
    starts: np.ndarray = first[index] + rank * (service / servers)
    return starts


class ProgressionHistogram:
    """A latency histogram (``bins`` bins of ``bin_s``; the last one also holds everything
    beyond) filled with runs of evenly spaced values, without a pass per value.

    :meth:`add` takes runs ``low + k x step`` (``k < count``); each run is spread evenly over
    ``[low, low + count x step)`` (a piecewise linear cumulative count, kept as two arrays of
    slope and offset per bin edge) and :meth:`counts` rounds the cumulative count to whole
    requests once. Sorted, its values are each within ``step + bin_s`` of the runs' values (the
    cumulative count lies between the runs' counts below ``x - step`` and below ``x``, then is
    rounded to the nearest whole request).
    """

    def __init__(self, bins: int, bin_s: float) -> None:
        self.bins, self.per_s = bins, 1.0 / bin_s
        self.slope = np.zeros(bins)
        self.offset = np.zeros(bins)
        self.total = 0

    def add(self, low_s: np.ndarray, count: np.ndarray, step_s: np.ndarray) -> None:
        """Add runs starting at ``low_s`` (s, >= 0) of ``count`` values ``step_s`` (> 0) apart."""
        self.total += int(count.sum())
        low = low_s * self.per_s
        rate = 1.0 / (step_s * self.per_s)  # values per histogram bin
        high = low + count / rate
        # each ramp adds ``rate`` to the slope from the first edge at or above its start and
        # takes it away from the first at or above its end; one that starts beyond the last
        # edge is left to counts(), which puts what is missing in the last bin
        for points, sign in ((low, 1.0), (high, -1.0)):
            edge = np.ceil(points).astype(np.int64)
            if len(edge) and int(edge.max()) >= self.bins:
                keep = edge < self.bins
                edge, points, weight = edge[keep], points[keep], rate[keep]
            else:
                weight = rate
            if not len(edge):
                continue
            slope = np.bincount(edge, weights=weight)  # up to the highest edge used
            self.slope[: len(slope)] += sign * slope
            self.offset[: len(slope)] -= sign * np.bincount(edge, weights=weight * points,
                                                            minlength=len(slope))

    def counts(self) -> np.ndarray:
        """The histogram as whole requests (int64), summing to the values added."""
        edges = np.arange(self.bins, dtype=float)
        below = edges * np.cumsum(self.slope) + np.cumsum(self.offset)  # values below each edge
        whole = np.clip(np.rint(below), 0, self.total).astype(np.int64)
        np.maximum.accumulate(whole, out=whole)
        histogram: np.ndarray = np.diff(np.append(whole, self.total))
        return histogram
