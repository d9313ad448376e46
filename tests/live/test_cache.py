"""CoalescingCache: hits, single flight, no coalescing, push fills, LRU eviction, errors."""

from __future__ import annotations

import pytest

from chatdesign.live import CacheOutcome, CoalescingCache


def test_single_flight_queues_waiters_and_serves_them_on_fill() -> None:
    cache: CoalescingCache[str, int] = CoalescingCache(capacity=4)
    assert cache.request("seg-1", 1) is CacheOutcome.MISS
    assert cache.in_flight("seg-1")
    assert cache.request("seg-1", 2) is CacheOutcome.COALESCED
    assert cache.request("seg-1", 3) is CacheOutcome.COALESCED
    assert cache.fill("seg-1") == (1, 2, 3)
    assert not cache.in_flight("seg-1")
    assert cache.request("seg-1", 4) is CacheOutcome.HIT
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.coalesced, stats.fills) == (1, 1, 2, 1)
    assert stats.requests == 4
    assert stats.hit_ratio == pytest.approx(0.75)
    assert stats.to_frame().loc[0, "hit_ratio"] == pytest.approx(0.75)


def test_without_coalescing_every_absent_request_is_a_miss() -> None:
    cache: CoalescingCache[str, int] = CoalescingCache(capacity=4, coalescing=False)
    outcomes = [cache.request("seg-1", n) for n in range(3)]
    assert outcomes == [CacheOutcome.MISS] * 3
    assert not cache.in_flight("seg-1")
    assert cache.fill("seg-1") == ()
    assert cache.request("seg-1", 9) is CacheOutcome.HIT
    assert cache.stats.misses == 3


def test_a_push_fills_a_key_nobody_asked_for() -> None:
    cache: CoalescingCache[int, str] = CoalescingCache(capacity=2)
    assert cache.fill(5) == ()
    assert 5 in cache
    assert cache.request(5, "a") is CacheOutcome.HIT


def test_a_push_landing_during_a_fetch_releases_the_waiters() -> None:
    cache: CoalescingCache[int, str] = CoalescingCache(capacity=2)
    cache.request(5, "fetcher")
    cache.request(5, "waiter")
    assert cache.fill(5) == ("fetcher", "waiter")
    assert cache.fill(5) == ()  # the fetch's own answer arrives later: nothing left to wake
    assert cache.stats.fills == 2


def test_lru_evicts_the_least_recently_used_key() -> None:
    cache: CoalescingCache[int, None] = CoalescingCache(capacity=2)
    cache.fill(1)
    cache.fill(2)
    assert cache.request(1, None) is CacheOutcome.HIT  # 1 is now the most recent
    cache.fill(3)
    assert 2 not in cache
    assert 1 in cache and 3 in cache
    assert len(cache) == 2
    assert cache.stats.evictions == 1


def test_refilling_a_stored_key_does_not_evict() -> None:
    cache: CoalescingCache[int, None] = CoalescingCache(capacity=1)
    cache.fill(1)
    cache.fill(1)
    assert cache.stats.evictions == 0


def test_repr_is_readable() -> None:
    cache: CoalescingCache[int, None] = CoalescingCache(capacity=3)
    cache.request(1, None)
    assert repr(cache) == (
        "CoalescingCache(0/3 keys, coalescing, 1 in flight, hits=0, misses=1, coalesced=0)"
    )
    assert cache.capacity == 3 and cache.coalescing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 0}, "capacity must be at least 1"),
        ({"capacity": -2}, "capacity must be at least 1"),
        ({"capacity": 2.0}, "capacity must be a whole number"),
        ({"capacity": True}, "capacity must be a whole number"),
        ({"capacity": 2, "coalescing": "yes"}, "coalescing must be True or False"),
    ],
)
def test_bad_cache_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoalescingCache(**kwargs)  # type: ignore[arg-type]


def test_empty_stats_have_zero_hit_ratio() -> None:
    assert CoalescingCache[int, None](capacity=1).stats.hit_ratio == 0.0
