"""Presence partitioned by user id: stable shards, even load, what a pull touches."""

from __future__ import annotations

import pytest

from chatdesign.presence import expected_shards_touched, presence_shard, shard_frame


def test_a_user_always_lands_on_the_same_shard() -> None:
    assert presence_shard("alice", 8) == presence_shard("alice", 8)
    assert 0 <= presence_shard("alice", 8) < 8
    assert presence_shard("alice", 1) == 0
    assert len({presence_shard(f"user{i}", 8) for i in range(100)}) == 8


def test_shards_share_users_and_writes_evenly() -> None:
    frame = shard_frame([f"user{i}" for i in range(10_000)], 8, writes_per_user_per_s=0.2)
    assert frame["users"].sum() == 10_000
    assert frame["share"].max() < 0.14 and frame["share"].min() > 0.11
    assert frame["writes_per_s"].sum() == pytest.approx(2_000)


def test_a_big_pull_touches_every_shard_a_small_one_few() -> None:
    assert expected_shards_touched(100, 8) == pytest.approx(8, abs=0.01)
    assert expected_shards_touched(1, 8) == pytest.approx(1)
    assert expected_shards_touched(0, 8) == 0
    assert expected_shards_touched(3, 1_000) == pytest.approx(3, rel=0.01)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: presence_shard("", 8), "non-empty string"),
        (lambda: presence_shard("a", 0), "shards must be at least 1"),
        (lambda: shard_frame("abc", 2), "not a single string"),
        (lambda: shard_frame([], 2), "empty"),
        (lambda: expected_shards_touched(-1, 8), "friends"),
    ],
)
def test_bad_input_is_refused(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
