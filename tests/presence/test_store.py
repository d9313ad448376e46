"""One suite for both TTL stores: the memory store and a real Redis server."""

from __future__ import annotations

import pytest
import redis

from chatdesign.presence import ManualClock, MemoryTTLStore, RedisTTLStore, TTLStore
from chatdesign.services import RedisServer

from .conftest import StoreKit

SHORT_TTL_S = 0.15
"""Short enough to keep the Redis tests fast, long enough not to expire before the first read."""


def test_both_stores_implement_the_protocol(store_kit: StoreKit) -> None:
    assert isinstance(store_kit.store, TTLStore)


def test_set_then_get_and_overwrite(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("alice", "online", 30)
    assert store.get("alice") == "online"
    store.set("alice", "away", 30)
    assert store.get("alice") == "away"


def test_missing_key_reads_none(store_kit: StoreKit) -> None:
    assert store_kit.store.get("nobody") is None
    assert store_kit.store.ttl_s("nobody") is None


def test_unicode_values_round_trip(store_kit: StoreKit) -> None:
    store_kit.store.set("émile", '{"status": "en ligne ✓"}', 30)
    assert store_kit.store.get("émile") == '{"status": "en ligne ✓"}'


def test_get_many_keeps_order_and_marks_missing(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("a", "1", 30)
    store.set("c", "3", 30)
    assert store.get_many(["c", "b", "a"]) == ["3", None, "1"]
    assert store.get_many([]) == []


def test_delete_reports_whether_the_key_was_there(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("a", "1", 30)
    assert store.delete("a") is True
    assert store.get("a") is None
    assert store.delete("a") is False


def test_ttl_counts_down_from_what_was_set(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("a", "1", 30)
    remaining = store.ttl_s("a")
    assert remaining is not None
    assert 29 < remaining <= 30


def test_key_expires_after_its_ttl(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("short", "1", SHORT_TTL_S)
    store.set("long", "2", 30)
    assert store.get("short") == "1"
    store_kit.wait(SHORT_TTL_S + 0.1)
    assert store.get("short") is None
    assert store.get_many(["short", "long"]) == [None, "2"]
    assert store.ttl_s("short") is None
    assert store.delete("short") is False


def test_rewrite_extends_the_ttl(store_kit: StoreKit) -> None:
    store = store_kit.store
    store.set("a", "1", SHORT_TTL_S)
    store.set("a", "2", 30)
    store_kit.wait(SHORT_TTL_S + 0.1)
    assert store.get("a") == "2"


@pytest.mark.parametrize("bad_key", ["", None, 7])
def test_bad_keys_are_refused(store_kit: StoreKit, bad_key: object) -> None:
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        store_kit.store.set(bad_key, "v", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        store_kit.store.get(bad_key)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        store_kit.store.get_many(["ok", bad_key])  # type: ignore[list-item]


def test_a_single_string_is_not_a_list_of_keys(store_kit: StoreKit) -> None:
    with pytest.raises(ValueError, match="not a single string"):
        store_kit.store.get_many("abc")


@pytest.mark.parametrize("bad_ttl", [0, -1, float("inf"), float("nan"), True, "5"])
def test_bad_ttls_are_refused_and_nothing_is_written(store_kit: StoreKit, bad_ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store_kit.store.set("a", "v", bad_ttl)  # type: ignore[arg-type]
    assert store_kit.store.get("a") is None


def test_non_string_values_are_refused(store_kit: StoreKit) -> None:
    with pytest.raises(ValueError, match="value must be a string"):
        store_kit.store.set("a", b"bytes", 1)  # type: ignore[arg-type]
    assert store_kit.store.get("a") is None


# -- memory only --------------------------------------------------------------------------


def test_memory_store_expires_exactly_at_the_deadline() -> None:
    clock = ManualClock(0.0)
    store = MemoryTTLStore(clock)
    store.set("a", "1", 10)
    clock.set(9.999)
    assert store.get("a") == "1"
    assert store.ttl_s("a") == pytest.approx(0.001)
    clock.set(10.0)
    assert store.get("a") is None


def test_memory_store_counts_and_purges_expired_keys() -> None:
    clock = ManualClock(0.0)
    store = MemoryTTLStore(clock)
    store.set("a", "1", 5)
    store.set("b", "2", 50)
    assert len(store) == 2
    clock.advance(10)
    assert len(store) == 1
    assert store.purge_expired() == 1
    assert store.purge_expired() == 0
    assert repr(store) == "MemoryTTLStore(keys=1)"


def test_memory_store_needs_a_callable_clock() -> None:
    with pytest.raises(ValueError, match="clock must be a callable"):
        MemoryTTLStore(5.0)  # type: ignore[arg-type]


# -- redis only ---------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_store_prefixes_keys_and_uses_px(redis_client: redis.Redis) -> None:
    store = RedisTTLStore(redis_client, prefix="test:")
    store.set("alice", "online", 0.2)
    assert redis_client.get("test:alice") == b"online"
    assert 0 < redis_client.pttl("test:alice") <= 200
    assert store.prefix == "test:"
    assert repr(store) == "RedisTTLStore(prefix='test:')"


@pytest.mark.redis
def test_redis_store_rounds_tiny_ttls_up_to_one_millisecond(redis_client: redis.Redis) -> None:
    store = RedisTTLStore(redis_client)
    store.set("a", "1", 0.0001)
    assert redis_client.pttl("presence:a") in (-2, 0, 1)


@pytest.mark.redis
def test_redis_store_reads_a_key_without_expiry_as_no_ttl(redis_client: redis.Redis) -> None:
    redis_client.set("presence:forever", "x")
    store = RedisTTLStore(redis_client)
    assert store.get("forever") == "x"
    assert store.ttl_s("forever") is None


@pytest.mark.redis
def test_redis_store_decodes_with_a_decoding_client(redis_server: RedisServer) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    store = RedisTTLStore(client, prefix="decoded:")
    store.set("a", "1", 5)
    assert store.get_many(["a"]) == ["1"]
    client.close()


def test_redis_store_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"client must be a redis\.Redis"):
        RedisTTLStore("localhost:6379")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix must be a string"):
        RedisTTLStore(redis.Redis(), prefix=None)  # type: ignore[arg-type]
