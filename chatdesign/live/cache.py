"""An LRU cache with request coalescing (single flight), as Facebook's edge and origin caches.

Theory of operation. The cache does no I/O and keeps no clock: the caller asks
:meth:`CoalescingCache.request` for a key and gets an outcome. ``HIT``: serve now. ``MISS``: the
caller must fetch the key upstream and call :meth:`~CoalescingCache.fill` when it arrives.
``COALESCED``: a fetch for the key is already in flight; the request waits. With coalescing on,
the requester of a ``MISS`` and every ``COALESCED`` requester are queued as *waiters* and
:meth:`~CoalescingCache.fill` returns them, to be served (as hits) the moment the key arrives, so
a thundering herd of N requests costs one upstream fetch. With coalescing off, every request
that finds the key absent is a ``MISS`` with its own fetch and waits for its own answer; nothing
is queued. :meth:`~CoalescingCache.fill` also takes keys nobody asked for (a push from upstream).

The SimPy oracle (:mod:`chatdesign.live.oracle`) uses it per PoP and per origin cache, one
request at a time. The vectorised :func:`~chatdesign.live.simulate.simulate_live` does not call
it: it derives the same outcomes for a whole segment at once (when the segment lands at each
cache), and the oracle tests check that both agree.
Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

import pandas as pd

from chatdesign.checks import check_whole

KeyT = TypeVar("KeyT", bound=Hashable)
WaiterT = TypeVar("WaiterT")


class CacheOutcome(Enum):
    """What a cache lookup means for the requester."""

    HIT = "hit"
    """The key is stored: serve it now."""
    MISS = "miss"
    """The key is absent: the requester fetches it upstream."""
    COALESCED = "coalesced"
    """A fetch is in flight: wait for it (coalescing only)."""


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`CoalescingCache` since it was made."""

    hits: int
    misses: int
    coalesced: int
    fills: int
    evictions: int

    @property
    def requests(self) -> int:
        """All requests: hits + misses + coalesced."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_ratio(self) -> float:
        """Share of requests served without their own upstream fetch (hits + coalesced)."""
        return (self.hits + self.coalesced) / self.requests if self.requests else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row with every counter and the hit ratio."""
        return pd.DataFrame([{
            "requests": self.requests, "hits": self.hits, "misses": self.misses,
            "coalesced": self.coalesced, "fills": self.fills, "evictions": self.evictions,
            "hit_ratio": self.hit_ratio,
        }])


class CoalescingCache(Generic[KeyT, WaiterT]):
    """An LRU cache of ``capacity`` keys; with ``coalescing``, one upstream fetch per missing key.

    >>> cache: CoalescingCache[int, str] = CoalescingCache(capacity=2)
    >>> cache.request(7, "alice"), cache.request(7, "bob")
    (<CacheOutcome.MISS: 'miss'>, <CacheOutcome.COALESCED: 'coalesced'>)
    >>> cache.fill(7)
    ('alice', 'bob')
    >>> cache.request(7, "carol")
    <CacheOutcome.HIT: 'hit'>
    """

    def __init__(self, capacity: int, coalescing: bool = True) -> None:
        capacity = check_whole(capacity, "capacity", minimum=1)
        if not isinstance(coalescing, bool):
            raise ValueError(f"coalescing must be True or False, got {coalescing!r}")
        self._capacity = capacity
        self._coalescing = coalescing
        self._stored: OrderedDict[KeyT, None] = OrderedDict()
        self._waiting: dict[KeyT, list[WaiterT]] = {}
        self._hits = self._misses = self._coalesced = self._fills = self._evictions = 0

    @property
    def capacity(self) -> int:
        """Most keys stored at once."""
        return self._capacity

    @property
    def coalescing(self) -> bool:
        """Whether concurrent misses for one key share a single upstream fetch."""
        return self._coalescing

    def __contains__(self, key: object) -> bool:
        return key in self._stored

    def __len__(self) -> int:
        return len(self._stored)

    def in_flight(self, key: KeyT) -> bool:
        """Whether a coalesced fetch for ``key`` is outstanding."""
        return key in self._waiting

    def request(self, key: KeyT, waiter: WaiterT) -> CacheOutcome:
        """Look ``key`` up for ``waiter``; see :class:`CacheOutcome` for what to do next.

        A hit refreshes the key's LRU position. With coalescing, ``waiter`` is queued on a
        ``MISS`` or ``COALESCED`` outcome and handed back by :meth:`fill`.
        """
        if key in self._stored:
            self._stored.move_to_end(key)
            self._hits += 1
            return CacheOutcome.HIT
        if not self._coalescing:
            self._misses += 1
            return CacheOutcome.MISS
        queue = self._waiting.get(key)
        if queue is not None:
            queue.append(waiter)
            self._coalesced += 1
            return CacheOutcome.COALESCED
        self._waiting[key] = [waiter]
        self._misses += 1
        return CacheOutcome.MISS

    def fill(self, key: KeyT) -> tuple[WaiterT, ...]:
        """Store ``key`` (a fetch answered or a push arrived); return the waiters to serve now.

        Evicts the least recently used key when full. Filling a stored key refreshes it.
        """
        self._fills += 1
        if key in self._stored:
            self._stored.move_to_end(key)
        else:
            if len(self._stored) >= self._capacity:
                self._stored.popitem(last=False)
                self._evictions += 1
            self._stored[key] = None
        return tuple(self._waiting.pop(key, ()))

    @property
    def stats(self) -> CacheStats:
        """The counters so far."""
        return CacheStats(self._hits, self._misses, self._coalesced, self._fills, self._evictions)

    def __repr__(self) -> str:
        mode = "coalescing" if self._coalescing else "no coalescing"
        return (
            f"CoalescingCache({len(self._stored)}/{self._capacity} keys, {mode}, "
            f"{len(self._waiting)} in flight, hits={self._hits}, misses={self._misses}, "
            f"coalesced={self._coalesced})"
        )


class LruByteCache(Generic[KeyT]):
    """An LRU cache bounded by bytes, as a PoP's edge cache holding many streams' segments.

    :meth:`request` answers hit or miss for a key of a given size; a miss stores the key,
    evicting least recently used keys until it fits (a key larger than the whole cache is not
    stored). No coalescing, no clock: what concurrent misses would do is the job of
    :class:`CoalescingCache` and the live simulation.

    >>> cache: LruByteCache[str] = LruByteCache(capacity_bytes=300)
    >>> cache.request("a", 200), cache.request("a", 200), cache.request("b", 200), "a" in cache
    (False, True, False, False)
    """

    def __init__(self, capacity_bytes: float) -> None:
        from chatdesign.checks import check_number

        self._capacity = check_number(capacity_bytes, "capacity_bytes", minimum=0)
        self._stored: OrderedDict[KeyT, float] = OrderedDict()
        self._bytes = 0.0
        self.hits = self.misses = self.evictions = 0

    @property
    def capacity_bytes(self) -> float:
        """Most bytes stored at once."""
        return self._capacity

    @property
    def stored_bytes(self) -> float:
        """Bytes stored now."""
        return self._bytes

    def __contains__(self, key: object) -> bool:
        return key in self._stored

    def request(self, key: KeyT, size_bytes: float) -> bool:
        """True on a hit (the key moves to most recently used); on a miss store it, evicting."""
        if key in self._stored:
            self._stored.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        if size_bytes <= self._capacity:
            while self._bytes + size_bytes > self._capacity:
                _, evicted = self._stored.popitem(last=False)
                self._bytes -= evicted
                self.evictions += 1
            self._stored[key] = size_bytes
            self._bytes += size_bytes
        return False

    def __repr__(self) -> str:
        return (f"LruByteCache({len(self._stored)} keys, {self._bytes:,.0f}/{self._capacity:,.0f} "
                f"bytes, hits={self.hits}, misses={self.misses}, evictions={self.evictions})")
