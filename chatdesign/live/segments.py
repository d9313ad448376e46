"""Segments and RTMP chunks: what the segment length costs in latency and in requests.

Theory of operation. A broadcaster pushes video over RTMP in small chunks; the live stream
server cuts it into segments (one second in the seed notes, three seconds at Facebook in 2015,
six seconds by Apple's HLS default) that travel through the CDN as plain HTTP files. A frame
captured at the start of a segment cannot leave before the segment closes, and a player starts
``buffer_segments`` segments behind the newest one, so the segment length appears about
``1 + buffer_segments`` times in the glass-to-glass latency. Shorter segments cut that latency
but multiply the requests every viewer makes.

Taught in ``notebooks/07_live_pipeline.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import pandas as pd

from chatdesign.checks import check_number, check_whole
from chatdesign.exercises import CheckResult
from chatdesign.units import format_bytes, format_count, format_duration


def segment_bytes(segment_s: float, bitrate_kbps: float) -> float:
    """Bytes in one segment: ``segment_s x bitrate_kbps x 1000 / 8`` (1 s at 1,000 kbps = 125 KB)."""
    return check_number(segment_s, "segment_s", positive=True) * check_number(
        bitrate_kbps, "bitrate_kbps", positive=True) * 1000 / 8


CONTINUATION_HEADER_BYTES = 1
"""Header of a continuation chunk (RTMP chunk type 3): the 1-byte basic header alone."""


@dataclass(frozen=True)
class RtmpChunking:
    """RTMP's push model in numbers: how long a chunk can hold video and what headers cost.

    The encoder sends one RTMP *message* per video frame (``frame_rate`` a second, so a message
    is ``bitrate / frame_rate`` bytes); RTMP cuts each message into chunks of at most
    ``chunk_bytes``. The first chunk of a message carries ``header_bytes`` (12 for chunk type 0:
    a 1-byte basic header and an 11-byte message header; 8 for type 1, 4 for type 2), every
    continuation chunk only the 1-byte basic header (type 3). ``chunk_ms`` is the most video one
    chunk can hold, a ceiling: a chunk also ends with its frame, so a frame smaller than a chunk
    leaves after ``frame_ms``. ``overhead_ratio`` is header bytes over all bytes sent.
    """

    chunk_bytes: int
    bitrate_kbps: float
    header_bytes: int
    frame_rate: float = 30.0

    def __post_init__(self) -> None:
        check_whole(self.chunk_bytes, "chunk_bytes", minimum=1)
        check_number(self.bitrate_kbps, "bitrate_kbps", positive=True)
        check_whole(self.header_bytes, "header_bytes", minimum=0)
        check_number(self.frame_rate, "frame_rate", positive=True)

    @property
    def chunk_ms(self) -> float:
        """Most milliseconds of video one chunk can hold: ``chunk_bytes x 8 / bitrate_kbps``."""
        return self.chunk_bytes * 8 / self.bitrate_kbps

    @property
    def frame_ms(self) -> float:
        """Milliseconds between frames, i.e. between messages."""
        return 1000 / self.frame_rate

    @property
    def wait_ms(self) -> float:
        """Longest a captured byte waits for its chunk to be sent (ms): the shorter of a full
        chunk (``chunk_ms``, the ceiling) and a frame interval (``frame_ms``, when a frame is
        smaller than a chunk, the chunk leaves with its frame). :func:`latency_budget` charges
        this."""
        return min(self.chunk_ms, self.frame_ms)

    @property
    def message_bytes(self) -> float:
        """Bytes of one video message (one frame)."""
        return self.bitrate_kbps * 1000 / 8 / self.frame_rate

    @property
    def chunks_per_message(self) -> int:
        """Chunks one message is cut into."""
        return math.ceil(self.message_bytes / self.chunk_bytes)

    @property
    def chunks_per_s(self) -> float:
        """Chunks sent per second of video."""
        return self.chunks_per_message * self.frame_rate

    @property
    def message_header_bytes(self) -> int:
        """Header bytes per message: the first chunk's, plus 1 per continuation chunk."""
        return self.header_bytes + (self.chunks_per_message - 1) * CONTINUATION_HEADER_BYTES

    @property
    def overhead_ratio(self) -> float:
        """Header bytes / (header + payload bytes), per message."""
        return self.message_header_bytes / (self.message_header_bytes + self.message_bytes)

    @property
    def full_header_overhead_ratio(self) -> float:
        """The overhead if every chunk carried the full first-chunk header (an overestimate)."""
        full = self.header_bytes * self.chunks_per_message
        return full / (full + self.message_bytes)

    def __repr__(self) -> str:
        return (
            f"RtmpChunking({format_bytes(self.chunk_bytes)} at {self.bitrate_kbps:g} kbps: "
            f"at most {self.chunk_ms:.3g} ms per chunk, {self.overhead_ratio:.2%} header overhead)"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row: the inputs, the chunk ceiling, frame and wait times, chunks and overhead."""
        return pd.DataFrame([{
            "chunk_bytes": self.chunk_bytes,
            "bitrate_kbps": self.bitrate_kbps,
            "header_bytes": self.header_bytes,
            "chunk_ms": self.chunk_ms,
            "frame_ms": self.frame_ms,
            "wait_ms": self.wait_ms,
            "chunks_per_message": self.chunks_per_message,
            "chunks_per_s": self.chunks_per_s,
            "overhead_ratio": self.overhead_ratio,
            "full_header_overhead_ratio": self.full_header_overhead_ratio,
        }])


def rtmp_chunking(
    chunk_bytes: int = 4_000, bitrate_kbps: float = 500.0, header_bytes: int = 12,
    frame_rate: float = 30.0,
) -> RtmpChunking:
    """Chunk timing and header overhead; Facebook's 4 KB chunks at 500 kbps hold at most 64 ms.

    ``header_bytes`` is the first chunk's header of each message, 12 for a full type-0 header;
    continuation chunks carry 1 byte. Sizes are decimal (4 KB = 4,000 bytes).
    """
    return RtmpChunking(chunk_bytes, bitrate_kbps, header_bytes, frame_rate)


@dataclass(frozen=True)
class LatencyBudget:
    """Glass-to-glass latency of segmented live video, one field per stage (seconds).

    ``capture_encode_s``: camera, encoder and its look-ahead. ``rtmp_ingest_s``: the upload's
    one-way delay plus what a captured frame waits for its RTMP chunk to leave
    (:attr:`RtmpChunking.wait_ms`: one frame interval when a frame fits in a chunk, at most one
    full chunk). ``segment_wait_s``: the first frame of a segment waits
    for the segment to close (one segment). ``cdn_s``: origin → edge → player for a segment
    already cached at the edge. ``player_buffer_s``: the player starts ``buffer_segments``
    segments behind the newest.
    """

    segment_s: float
    buffer_segments: int
    capture_encode_s: float
    rtmp_ingest_s: float
    segment_wait_s: float
    cdn_s: float
    player_buffer_s: float

    def __post_init__(self) -> None:
        check_number(self.segment_s, "segment_s", positive=True)
        check_whole(self.buffer_segments, "buffer_segments", minimum=0)
        for name in ("capture_encode_s", "rtmp_ingest_s", "segment_wait_s", "cdn_s",
                     "player_buffer_s"):
            check_number(getattr(self, name), name, minimum=0)

    @property
    def total_s(self) -> float:
        """Glass-to-glass latency: the sum of the stages (seconds)."""
        return (self.capture_encode_s + self.rtmp_ingest_s + self.segment_wait_s + self.cdn_s
                + self.player_buffer_s)

    def __repr__(self) -> str:
        return (
            f"LatencyBudget(segment={format_duration(self.segment_s)}, "
            f"buffer={self.buffer_segments} segments, total={format_duration(self.total_s)})"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per stage with its seconds and share of the total."""
        stages = [f.name for f in fields(self) if f.name not in ("segment_s", "buffer_segments")]
        seconds = [float(getattr(self, name)) for name in stages]
        return pd.DataFrame(
            {"seconds": seconds, "share": [s / self.total_s for s in seconds]},
            index=pd.Index([name.removesuffix("_s") for name in stages], name="stage"),
        )


def latency_budget(
    segment_s: float,
    buffer_segments: int = 3,
    *,
    capture_encode_s: float = 0.3,
    upload_one_way_s: float = 0.05,
    chunk_bytes: int = 4_000,
    bitrate_kbps: float = 500.0,
    cdn_s: float = 0.1,
    frame_rate: float = 30.0,
) -> LatencyBudget:
    """The glass-to-glass latency budget for segments of ``segment_s`` seconds.

    Defaults: 300 ms capture and encode; 50 ms one-way upload plus the wait for the RTMP chunk,
    :attr:`RtmpChunking.wait_ms` of ``rtmp_chunking(chunk_bytes, bitrate_kbps,
    frame_rate=frame_rate)``: a chunk leaves when it is full or when its frame ends, so a frame
    waits the shorter of one full chunk (4 KB at 500 kbps: at most 64 ms, the ceiling) and one
    frame interval (33 ms at 30 frames/s, what it waits when frames are smaller than a chunk,
    as they are at these defaults); 100 ms through the CDN on an edge hit; and a player that
    starts three segments behind live (Apple's HLS guidance). 1 s segments give about 4.5 s,
    3 s segments about 12.5 s, 6 s segments about 24.5 s. Raises ``ValueError`` on a
    non-positive segment length, bit rate or frame rate, a negative stage or a negative buffer.
    """
    segment = check_number(segment_s, "segment_s", positive=True)
    chunk = rtmp_chunking(chunk_bytes, bitrate_kbps, frame_rate=frame_rate)
    ingest = check_number(upload_one_way_s, "upload_one_way_s", minimum=0) + chunk.wait_ms / 1000
    check_whole(buffer_segments, "buffer_segments", minimum=0)
    return LatencyBudget(
        segment_s=segment,
        buffer_segments=buffer_segments,
        capture_encode_s=check_number(capture_encode_s, "capture_encode_s", minimum=0),
        rtmp_ingest_s=ingest,
        segment_wait_s=segment,
        cdn_s=check_number(cdn_s, "cdn_s", minimum=0),
        player_buffer_s=buffer_segments * segment,
    )


def requests_per_viewer_s(segment_s: float, playlist: bool = True,
                          playlist_refresh_s: float | None = None) -> float:
    """HTTP requests per second one viewer makes: one per segment, plus, when ``playlist``, one
    playlist reload every ``playlist_refresh_s`` (by default the segment length: an HLS player
    re-reads the playlist about once per target duration to find the next segment).

    1 s segments with playlists: 2 requests/s per viewer; 3 s: 0.67; 6 s: 0.33. The same count
    as :attr:`chatdesign.live.result.LiveResult.playlist_requests` (notebooks 07 and 08).
    """
    segment = check_number(segment_s, "segment_s", positive=True)
    refresh = segment if playlist_refresh_s is None else check_number(
        playlist_refresh_s, "playlist_refresh_s", positive=True)
    return 1.0 / segment + (1.0 / refresh if playlist else 0.0)


def segment_length_table(
    segment_lengths_s: Sequence[float] = (1.0, 3.0, 6.0),
    viewers: int = 1_000_000,
    buffer_segments: int = 3,
    playlist: bool = True,
) -> pd.DataFrame:
    """Compare segment lengths: glass-to-glass latency and the request rate ``viewers`` make.

    One row per segment length, indexed by ``segment_s``; columns ``glass_to_glass_s``,
    ``requests_per_viewer_s`` and ``total_rps`` (as numbers) and ``total`` (formatted).
    """
    if len(segment_lengths_s) == 0:
        raise ValueError("segment_lengths_s must be a non-empty sequence of seconds")
    check_whole(viewers, "viewers", minimum=0)
    rows = []
    for length in segment_lengths_s:
        budget = latency_budget(length, buffer_segments)
        per_viewer = requests_per_viewer_s(length, playlist)
        rows.append({
            "segment_s": float(length),
            "glass_to_glass_s": budget.total_s,
            "requests_per_viewer_s": per_viewer,
            "total_rps": viewers * per_viewer,
            "total": f"{format_count(viewers * per_viewer)} requests/s",
        })
    return pd.DataFrame(rows).set_index("segment_s")


def check_glass_to_glass(answer_s: float | None, segment_s: float,
                         buffer_segments: int = 3) -> CheckResult:
    """Self-check for notebook 07: the glass-to-glass latency (s) of ``segment_s`` segments with
    a player ``buffer_segments`` behind live and :func:`latency_budget`'s other defaults.

    Passes within 5 %; ``None`` is "not answered yet" with a hint. A wrong answer is told whether
    it is too high or too low and, when it matches a common slip (leaving out the wait for the
    segment to close, or the player buffer), which one -- never the expected value.
    """
    from chatdesign.live.exercises import diagnose

    budget = latency_budget(segment_s, buffer_segments)
    return diagnose(
        "glass-to-glass latency", answer_s, budget.total_s, rel_tol=0.05,
        hint="add every stage of the budget: capture and encode, the RTMP upload and a frame's "
             "wait for its chunk, "
             "the wait for the segment to close, the CDN, and the player's buffer of segments",
        slips={
            "the wait for the segment to close (one segment) was left out":
                budget.total_s - budget.segment_wait_s,
            "the player's buffer of segments was left out": budget.total_s - budget.player_buffer_s,
            "only the fixed costs were added, none of the segment-length terms":
                budget.total_s - budget.segment_wait_s - budget.player_buffer_s,
        },
    )
