"""Many live streams through one PoP's finite edge cache: Zipf popularity, LRU by bytes.

Theory of operation. A PoP serves ``viewers`` watching ``streams`` concurrent live streams whose
audiences follow a Zipf law (stream ``k`` gets weight ``1 / k**zipf_exponent``; a seeded
multinomial draw). Each stream publishes a segment every ``segment_s`` at its own offset, and
each of its viewers asks for it after a fixed phase (the calibrated herd of
:mod:`chatdesign.live.arrivals`: uniform over ``herd_spread x segment_s``, without jitter).
Every stream is watched at one bit rate, ``bitrate_kbps``, so every (stream, segment) is its
own key of ``segment_s x bitrate_kbps x 1000 / 8`` bytes (renditions, one key per bit rate,
are :func:`chatdesign.live.renditions.simulate_renditions`' subject). The requests,
in time order, go through one :class:`~chatdesign.live.cache.LruByteCache` of ``cache_bytes``.
The edge coalesces, so a herd costs one miss while its segment stays cached; a request for a
segment the cache has already evicted is a miss again. A run of consecutive requests for one key
is looked up once (nothing can be evicted in between), so the Python loop is per run, not per
request.

What it shows: a stream with one viewer at this PoP misses every time, whatever the cache; a
popular stream hits on all but its first request; a cache too small for one segment of every
watched stream loses the middle of the distribution first. :func:`hit_ratio_by_cache_size`
sweeps the cache size.

Taught in ``notebooks/08_edge_cache.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chatdesign.checks import check_number, check_whole
from chatdesign.live.arrivals import HERD_SPREAD, exact_segments
from chatdesign.live.cache import LruByteCache


@dataclass(frozen=True, eq=False)
class StreamRequests:
    """The time-ordered requests of many streams at one PoP, compressed into runs of one key.

    ``stream[i]``/``key[i]``: the stream and cache key (stream, segment) of run ``i``;
    ``length[i]``: its requests. ``audience[k]``: viewers of stream ``k`` at this PoP.
    """

    stream: np.ndarray
    key: np.ndarray
    length: np.ndarray
    audience: np.ndarray
    segment_bytes: float

    @property
    def requests(self) -> int:
        """All requests."""
        return int(self.length.sum())

    def __repr__(self) -> str:
        return (f"StreamRequests({len(self.audience)} streams, {int(self.audience.sum())} viewers, "
                f"{self.requests} requests in {len(self.key)} runs)")


def stream_requests(streams: int, viewers: int, *, duration_s: float = 30.0,
                    segment_s: float = 3.0, bitrate_kbps: float = 1_000.0,
                    zipf_exponent: float = 1.0, herd_spread: float = HERD_SPREAD,
                    seed: int = 0) -> StreamRequests:
    """Draw the requests of ``viewers`` over ``streams`` Zipf-popular streams (module notes)."""
    check_whole(streams, "streams", minimum=1)
    check_whole(viewers, "viewers", minimum=1)
    check_number(segment_s, "segment_s", positive=True)
    segments = exact_segments(check_number(duration_s, "duration_s", positive=True), segment_s)
    if segments < 1:
        raise ValueError(f"duration_s ({duration_s!r}) must hold at least one segment")
    check_number(bitrate_kbps, "bitrate_kbps", positive=True)
    check_number(zipf_exponent, "zipf_exponent", minimum=0)
    check_number(herd_spread, "herd_spread", minimum=0, maximum=1)
    check_whole(seed, "seed", minimum=0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    weights = 1.0 / np.arange(1, streams + 1, dtype=float) ** zipf_exponent
    audience = rng.multinomial(viewers, weights / weights.sum())
    stream_of = np.repeat(np.arange(streams), audience)
    offset = rng.random(streams) * segment_s
    phase = rng.random(viewers) * herd_spread * segment_s
    base = offset[stream_of] + phase
    times = (base[None, :] + segment_s * np.arange(segments)[:, None]).ravel()
    segment_of = np.repeat(np.arange(segments), viewers)
    streams_of = np.tile(stream_of, segments)
    order = np.argsort(times, kind="stable")
    key = streams_of[order] * segments + segment_of[order]
    change = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(key)]]))
    return StreamRequests(stream=key[starts] // segments, key=key[starts], length=lengths,
                          audience=audience, segment_bytes=segment_s * bitrate_kbps * 1000 / 8)


def replay(requests: StreamRequests, cache_bytes: float) -> np.ndarray:
    """Hits per stream when ``requests`` go through an LRU cache of ``cache_bytes``."""
    cache: LruByteCache[int] = LruByteCache(cache_bytes)
    hits = np.zeros(len(requests.audience), dtype=np.int64)
    size = requests.segment_bytes
    for stream, key, length in zip(requests.stream.tolist(), requests.key.tolist(),
                                   requests.length.tolist(), strict=True):
        hits[stream] += length - 1 + cache.request(key, size)
    return hits


def hit_ratio_by_cache_size(requests: StreamRequests, cache_bytes: Sequence[float],
                            groups: Sequence[float] = (0.01, 0.1, 1.0)) -> pd.DataFrame:
    """Edge hit ratio for each cache size: overall and by popularity group.

    ``groups`` are cumulative shares of streams by rank (0.01 = the top 1 %); columns are the
    overall ``hit_ratio``, ``origin_requests`` (misses) and one hit ratio per group
    (``hit_ratio_top_1%``, ``hit_ratio_next_9%``, ``hit_ratio_rest`` by default),
    the ``cache_segments`` the cache holds, and ``watched_streams``.
    """
    if len(cache_bytes) == 0:
        raise ValueError("cache_bytes must be a non-empty sequence of sizes")
    streams = len(requests.audience)
    bounds = [0] + [max(1, round(share * streams)) for share in groups]
    requests_per_stream = np.zeros(streams, dtype=np.int64)
    np.add.at(requests_per_stream, requests.stream, requests.length)
    rows = []
    for size in cache_bytes:
        hits = replay(requests, size)
        row: dict[str, float] = {
            "cache_bytes": float(size),
            "cache_segments": float(size) / requests.segment_bytes,
            "hit_ratio": hits.sum() / requests.requests,
            "origin_requests": float(requests.requests - hits.sum()),
        }
        previous = 0.0
        for low, high, share in zip(bounds[:-1], bounds[1:], groups, strict=True):
            asked = requests_per_stream[low:high].sum()
            name = ("top" if previous == 0 else "rest" if share >= 1 else "next")
            label = f"hit_ratio_{name}" + ("" if name == "rest" else f"_{share - previous:.0%}")
            row[label] = hits[low:high].sum() / asked if asked else float("nan")
            previous = share
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("cache_bytes")
    frame["watched_streams"] = int((requests.audience > 0).sum())
    return frame
