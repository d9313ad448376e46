"""A PoP's servers as a queue: first come, first served, ``servers`` identical servers, each
request taking the same service time (a D/c queue fed by whatever arrives).

Theory of operation. When every request takes the same time ``s`` and the queue is first come,
first served, the server that frees first is always the one that started earliest, so request
``i`` (in order of arrival) starts at ``max(ready_i, start_{i-c} + s)``: the requests split into
``c`` interleaved lines, each a single-server queue. In one line the recursion
``start_k = max(r_k, start_{k-1} + s)`` unrolls to ``start_k = k s + max_{j <= k}(r_j - j s)``,
a running maximum, so a whole PoP's segment is queued with numpy and no Python loop per request.
This is exact, not a fluid approximation; the SimPy oracle (a ``simpy.Resource`` with ``c``
slots) checks it request by request, and the tests check it against the M/D/1 formula.

In the live model (``queueing=True`` in :func:`~chatdesign.live.simulate.simulate_live`) a
request joins its PoP's queue when the edge can answer it (a hit on arrival, a coalesced waiter
when the segment lands) and ``s`` is the time one server takes to send the segment
(:meth:`~chatdesign.live.topology.PathDelays.service_s`): queueing delay plus transfer time.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

import numpy as np

from chatdesign.checks import check_number, check_whole


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
