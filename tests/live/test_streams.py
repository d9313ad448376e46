"""Many Zipf-popular streams through one finite LRU-by-bytes edge cache."""

from __future__ import annotations

import numpy as np
import pytest

from chatdesign.live import LruByteCache, hit_ratio_by_cache_size, stream_requests


def test_lru_by_bytes_evicts_the_least_recently_used() -> None:
    cache: LruByteCache[str] = LruByteCache(500)
    assert not cache.request("a", 200)
    assert not cache.request("b", 200)
    assert cache.request("a", 200)  # a is now the most recent
    assert not cache.request("c", 200)  # evicts b
    assert "a" in cache and "b" not in cache and cache.stored_bytes == 400
    assert not cache.request("huge", 600) and "huge" not in cache  # never fits
    assert (cache.hits, cache.misses, cache.evictions) == (1, 4, 1)
    with pytest.raises(ValueError, match="capacity_bytes must not be negative"):
        LruByteCache(-1)


def test_requests_are_runs_of_one_key_in_time_order() -> None:
    requests = stream_requests(50, 2_000, duration_s=9, seed=1)
    assert requests.requests == 2_000 * 3
    assert int(requests.audience.sum()) == 2_000
    assert requests.audience[0] == requests.audience.max()
    assert np.all(requests.length >= 1)
    assert np.all(requests.key[1:] != requests.key[:-1])


def test_popular_streams_hit_the_long_tail_misses_and_size_helps() -> None:
    requests = stream_requests(2_000, 20_000, duration_s=15, seed=0)
    segment = requests.segment_bytes
    frame = hit_ratio_by_cache_size(requests, [10 * segment, 200 * segment, 5_000 * segment])
    ratios = frame["hit_ratio"].to_numpy()
    assert ratios[0] < ratios[1] <= ratios[2]
    big = frame.iloc[-1]
    assert big["hit_ratio_top_1%"] > 0.99
    assert big["hit_ratio_rest"] < big["hit_ratio_next_9%"] < big["hit_ratio_top_1%"]
    # an unbounded cache misses exactly once per watched (stream, segment)
    watched_keys = int((requests.audience > 0).sum()) * 5
    assert big["origin_requests"] == watched_keys
    with pytest.raises(ValueError, match="non-empty"):
        hit_ratio_by_cache_size(requests, [])
    with pytest.raises(ValueError, match="streams must be at least 1"):
        stream_requests(0, 10)
