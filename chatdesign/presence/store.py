"""Key-value storage with a time to live: the "in-memory key-value store like Redis" of the seed.

Presence is not stored permanently: a record that is not refreshed disappears by itself. The
service needs very little from its store, so the interface is small (:class:`TTLStore`):

- ``set(key, value, ttl_s)`` -- write a string that expires ``ttl_s`` seconds from now;
- ``get(key)`` / ``get_many(keys)`` -- read one value, or many in one round trip (``MGET``);
- ``delete(key)`` and ``ttl_s(key)`` (the time left, like Redis ``PTTL``).

Two implementations behave the same (one shared test suite runs against both):

- :class:`MemoryTTLStore` -- a dict in this process, expiring by an injected ``clock``, so tests
  and notebooks can travel in time. The embedded default.
- :class:`RedisTTLStore` -- a real Redis server through redis-py (``SET key value PX ms``,
  ``MGET``). Redis expires keys by *its* wall clock, so with Redis a TTL is real time.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import redis

from chatdesign.checks import check_number


@runtime_checkable
class TTLStore(Protocol):
    """What the presence service needs from a key-value store with expiry."""

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store ``value`` under ``key``, replacing any old value; it expires after ``ttl_s`` s."""
        ...

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None`` if it was never set, was deleted or expired."""
        ...

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """The values under ``keys`` in order (``None`` for missing ones), in one round trip."""
        ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it was there (and not yet expired)."""
        ...

    def ttl_s(self, key: str) -> float | None:
        """Seconds until ``key`` expires, or ``None`` if it is missing (or never expires)."""
        ...


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a key must be a non-empty string, got {key!r}")
    return key


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a value must be a string, got {type(value).__name__}")
    return value


def _check_ttl(ttl_s: float) -> float:
    return check_number(ttl_s, "ttl_s", positive=True, unit="seconds")


def _check_keys(keys: Sequence[str]) -> list[str]:
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise ValueError(f"keys must be a sequence of strings (not a single string), got {keys!r}")
    return [_check_key(key) for key in keys]


class MemoryTTLStore:
    """A :class:`TTLStore` in this process's memory, expiring by an injected clock (seconds).

    A key written at ``t`` with ``ttl_s`` is readable while ``clock() < t + ttl_s`` and gone from
    then on. Expired entries are dropped when touched and by :meth:`purge_expired` (Redis does
    the same: lazily on access plus an active sweep), so memory stays bounded by live keys.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds, got {clock!r}")
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"MemoryTTLStore(keys={len(self._entries)})"

    def _now(self) -> float:
        return check_number(self._clock(), "clock()", unit="seconds")

    def __len__(self) -> int:
        """The number of keys not yet expired."""
        now = self._now()
        return sum(1 for _, expires_at in self._entries.values() if expires_at > now)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds of the injected clock."""
        checked_key, checked_value, ttl = _check_key(key), _check_value(value), _check_ttl(ttl_s)
        now = self._now()
        if not now + ttl > now:  # the same trap as the service's timers: a TTL below the clock's resolution
            raise ValueError(f"ttl_s={ttl_s!r} is too small to tell apart from the clock's time {now!r} s")
        self._entries[checked_key] = (checked_value, now + ttl)

    def get(self, key: str) -> str | None:
        """The live value under ``key``, or ``None``."""
        return self._live(_check_key(key), self._now())

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """The live values under ``keys``, in order, ``None`` where missing."""
        checked = _check_keys(keys)
        now = self._now()
        return [self._live(key, now) for key in checked]

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it was live."""
        checked = _check_key(key)
        live = self._live(checked, self._now()) is not None
        self._entries.pop(checked, None)
        return live

    def ttl_s(self, key: str) -> float | None:
        """Seconds left before ``key`` expires, or ``None`` if it is missing."""
        checked = _check_key(key)
        now = self._now()
        if self._live(checked, now) is None:
            return None
        return self._entries[checked][1] - now

    def purge_expired(self) -> int:
        """Drop every expired entry now; returns how many were dropped."""
        now = self._now()
        expired = [key for key, (_, expires_at) in self._entries.items() if expires_at <= now]
        for key in expired:
            del self._entries[key]
        return len(expired)

    def _live(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= now:
            del self._entries[key]
            return None
        return value


class RedisTTLStore:
    """A :class:`TTLStore` on a real Redis server, through a redis-py client.

    Keys are prefixed (``prefix``, default ``"presence:"``) so the store can share a database.
    Writes are ``SET key value PX ms`` (TTL rounded up to whole milliseconds, at least 1 ms);
    :meth:`get_many` is one ``MGET``. TTLs run on the Redis server's wall clock, not on the
    presence service's injected clock.
    """

    def __init__(self, client: redis.Redis, prefix: str = "presence:") -> None:
        if not isinstance(client, redis.Redis):
            raise ValueError(f"client must be a redis.Redis, got {type(client).__name__}")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {prefix!r}")
        self._client = client
        self._prefix = prefix

    def __repr__(self) -> str:
        return f"RedisTTLStore(prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The string put in front of every key on the server."""
        return self._prefix

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """``SET prefix+key value PX ceil(ttl_s * 1000)``."""
        checked_key, checked_value, ttl = _check_key(key), _check_value(value), _check_ttl(ttl_s)
        ttl_ms = max(1, math.ceil(ttl * 1000))
        self._client.set(self._prefix + checked_key, checked_value, px=ttl_ms)

    def get(self, key: str) -> str | None:
        """``GET prefix+key``, decoded as UTF-8."""
        return _decode(self._client.get(self._prefix + _check_key(key)))

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """One ``MGET`` for every key (no call at all for an empty list)."""
        checked = _check_keys(keys)
        if not checked:
            return []
        raw = self._client.mget([self._prefix + key for key in checked])
        return [_decode(value) for value in raw]

    def delete(self, key: str) -> bool:
        """``DEL prefix+key``; ``True`` if a key was removed."""
        removed = self._client.delete(self._prefix + _check_key(key))
        return bool(removed)

    def ttl_s(self, key: str) -> float | None:
        """``PTTL prefix+key`` in seconds, ``None`` if the key is missing or has no expiry."""
        remaining_ms = self._client.pttl(self._prefix + _check_key(key))
        if not isinstance(remaining_ms, int) or remaining_ms < 0:
            return None
        return remaining_ms / 1000


def _decode(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8")
    return str(raw)
