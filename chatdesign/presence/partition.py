"""Presence partitioned by user id: which shard holds a user's record, and what a pull touches.

One record per user (``user:<id>``) makes presence easy to split: a stable hash of the user id
picks the shard (Redis Cluster does the same with hash slots), so a heartbeat, a status and a
timer for one user always go to one shard, and shards share the write load evenly. The price is
on the read side: a login pull of many friends touches many shards -- one ``MGET`` per shard
touched, sent in parallel, instead of one.

Taught in ``notebooks/05_presence.ipynb``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from chatdesign.checks import check_number, check_whole


def presence_shard(user_id: str, shards: int) -> int:
    """The shard (0 .. ``shards`` - 1) holding ``user_id``'s record: CRC-32 of the id, mod shards.

    Stable across processes and runs (unlike Python's ``hash`` of a string), so every server
    agrees on where a user lives.
    """
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
    count = check_whole(shards, "shards", minimum=1)
    return zlib.crc32(user_id.encode("utf-8")) % count


def shard_frame(user_ids: Iterable[str], shards: int, writes_per_user_per_s: float = 0.0) -> pd.DataFrame:
    """One row per shard: users held, share of all users, and store writes/s at the given rate."""
    count = check_whole(shards, "shards", minimum=1)
    rate = check_number(writes_per_user_per_s, "writes_per_user_per_s", minimum=0)
    if isinstance(user_ids, str):
        raise ValueError("user_ids must be many ids, not a single string")
    held = np.bincount([presence_shard(user, count) for user in user_ids], minlength=count)
    total = int(held.sum())
    if total == 0:
        raise ValueError("user_ids is empty")
    return pd.DataFrame(
        {"users": held, "share": held / total, "writes_per_s": held * rate},
        index=pd.Index(range(count), name="shard"),
    )


def expected_shards_touched(friends: float, shards: int) -> float:
    """How many shards a pull of ``friends`` statuses touches on average (friends spread at random).

    ``shards × (1 - (1 - 1/shards) ** friends)``: a 100-friend pull on 8 shards touches all 8.
    """
    count = check_whole(shards, "shards", minimum=1)
    many = check_number(friends, "friends", minimum=0)
    return float(count * (1 - (1 - 1 / count) ** many))
