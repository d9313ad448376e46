"""Segment length, RTMP chunking and the latency budget."""

from __future__ import annotations

import pytest

from chatdesign.live import (
    latency_budget,
    requests_per_viewer_s,
    rtmp_chunking,
    segment_bytes,
    segment_length_table,
)
from chatdesign.live.segments import LatencyBudget, RtmpChunking


def test_facebook_rtmp_chunk_holds_at_most_64_ms_at_500_kbps() -> None:
    chunk = rtmp_chunking(4_000, 500)
    assert chunk.chunk_ms == pytest.approx(64.0)
    assert chunk.wait_ms == pytest.approx(1000 / 30)  # a 2 KB frame fills no 4 KB chunk
    assert chunk.chunks_per_message == 1
    assert chunk.chunks_per_s == pytest.approx(30)
    assert chunk.overhead_ratio == pytest.approx(12 / (12 + 500_000 / 8 / 30))
    assert "at most 64 ms per chunk" in repr(chunk)
    assert chunk.to_frame().loc[0, "chunk_ms"] == pytest.approx(64.0)


def test_continuation_chunks_carry_one_byte() -> None:
    small, large = rtmp_chunking(128, 500), rtmp_chunking(4_000, 500)
    message = 500_000 / 8 / 30
    assert small.chunks_per_message == 17
    assert small.message_header_bytes == 12 + 16
    assert small.overhead_ratio == pytest.approx(28 / (28 + message))
    assert small.full_header_overhead_ratio == pytest.approx(12 * 17 / (12 * 17 + message))
    assert small.overhead_ratio < small.full_header_overhead_ratio / 5
    assert small.chunk_ms < large.chunk_ms
    assert small.overhead_ratio > large.overhead_ratio
    assert rtmp_chunking(128, 500, header_bytes=8).overhead_ratio < small.overhead_ratio


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 500), "chunk_bytes must be at least 1"),
        ((4_000, 0), "bitrate_kbps must be positive"),
        ((4_000, -5), "bitrate_kbps must be positive"),
        ((4_000, 500, -1), "header_bytes must be at least 0"),
        ((4.5, 500), "chunk_bytes must be a whole number"),
    ],
)
def test_bad_chunking_is_refused(args: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rtmp_chunking(*args)  # type: ignore[arg-type]


def test_budget_adds_up_and_scales_with_segment_length() -> None:
    one = latency_budget(1.0)
    # the RTMP stage charges a frame's wait for its chunk (one 30 fps frame), not the 64 ms ceiling
    assert one.total_s == pytest.approx(0.3 + 0.05 + 1 / 30 + 1.0 + 0.1 + 3.0)
    three = latency_budget(3.0)
    assert three.total_s - one.total_s == pytest.approx(4 * 2.0)
    frame = one.to_frame()
    assert list(frame.index) == ["capture_encode", "rtmp_ingest", "segment_wait", "cdn",
                                 "player_buffer"]
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame.loc["player_buffer", "seconds"] == pytest.approx(3.0)
    assert repr(one) == "LatencyBudget(segment=1 s, buffer=3 segments, total=4.48 s)"


def test_rtmp_stage_charges_what_a_frame_waits_at_most_one_chunk() -> None:
    # frames smaller than a chunk: the chunk leaves with its frame, one frame interval
    default = latency_budget(1.0)
    assert default.rtmp_ingest_s == pytest.approx(0.05 + rtmp_chunking(4_000, 500).wait_ms / 1000)
    assert default.rtmp_ingest_s < 0.05 + rtmp_chunking(4_000, 500).chunk_ms / 1000
    # frames larger than a chunk (128-byte chunks): a full chunk, the ceiling
    small = latency_budget(1.0, chunk_bytes=128)
    assert small.rtmp_ingest_s == pytest.approx(0.05 + rtmp_chunking(128, 500).chunk_ms / 1000)
    # fewer frames a second: a longer frame interval, still capped by the chunk
    assert latency_budget(1.0, frame_rate=25).rtmp_ingest_s == pytest.approx(0.05 + 0.04)
    assert latency_budget(1.0, frame_rate=5).rtmp_ingest_s == pytest.approx(0.05 + 0.064)
    with pytest.raises(ValueError, match="frame_rate must be positive"):
        latency_budget(1.0, frame_rate=0)


def test_a_smaller_buffer_lowers_latency() -> None:
    assert latency_budget(3.0, buffer_segments=1).total_s == pytest.approx(
        latency_budget(3.0, buffer_segments=3).total_s - 6.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segment_s": 0}, "segment_s must be positive"),
        ({"segment_s": -1}, "segment_s must be positive"),
        ({"segment_s": 1, "buffer_segments": -1}, "buffer_segments must be at least 0"),
        ({"segment_s": 1, "capture_encode_s": -0.1}, "capture_encode_s"),
        ({"segment_s": 1, "cdn_s": float("inf")}, "cdn_s"),
        ({"segment_s": 1, "upload_one_way_s": -1}, "upload_one_way_s"),
        ({"segment_s": "1 s"}, "segment_s must be a number"),
    ],
)
def test_bad_budget_inputs_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        latency_budget(**kwargs)  # type: ignore[arg-type]


def test_budget_value_validates_itself() -> None:
    with pytest.raises(ValueError, match="cdn_s"):
        LatencyBudget(1.0, 3, 0.3, 0.1, 1.0, -0.1, 3.0)
    with pytest.raises(ValueError, match="bitrate_kbps"):
        RtmpChunking(4_000, float("nan"), 12)


def test_request_rate_per_viewer() -> None:
    assert requests_per_viewer_s(1.0) == 2.0
    assert requests_per_viewer_s(3.0) == pytest.approx(2 / 3)
    assert requests_per_viewer_s(6.0, playlist=False) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="segment_s"):
        requests_per_viewer_s(0.0)


def test_segment_bytes() -> None:
    assert segment_bytes(1.0, 1_000) == 125_000
    with pytest.raises(ValueError, match="bitrate_kbps"):
        segment_bytes(1.0, 0)


def test_segment_length_table_compares_seed_facebook_and_hls() -> None:
    table = segment_length_table((1, 3, 6), viewers=1_000_000)
    assert list(table.index) == [1.0, 3.0, 6.0]
    assert table.loc[1.0, "total_rps"] == pytest.approx(2_000_000)
    assert table.loc[6.0, "total_rps"] == pytest.approx(333_333.33, rel=1e-6)
    assert table["glass_to_glass_s"].is_monotonic_increasing
    assert table.loc[1.0, "total"] == "2 M requests/s"
    with pytest.raises(ValueError, match="non-empty"):
        segment_length_table(())
    with pytest.raises(ValueError, match="viewers must be at least 0"):
        segment_length_table((1.0,), viewers=-1)


def test_glass_to_glass_check_accepts_the_budget_and_names_the_slip() -> None:
    from chatdesign.live import check_glass_to_glass

    assert check_glass_to_glass(latency_budget(2.0, 2).total_s, 2.0, 2)
    no_wait = check_glass_to_glass(latency_budget(2.0, 2).total_s - 2.0, 2.0, 2)
    assert not no_wait
    assert "segment to close" in no_wait.explanation
    no_buffer = check_glass_to_glass(latency_budget(2.0, 2).total_s - 4.0, 2.0, 2)
    assert "buffer" in no_buffer.explanation
    far = check_glass_to_glass(100.0, 2.0, 2)
    assert not far and "too high" in far.explanation and "left out" not in far.explanation
    unanswered = check_glass_to_glass(None, 2.0, 2)
    assert not unanswered and "not answered yet" in unanswered.explanation
    expected = f"{latency_budget(2.0, 2).total_s:g}"
    for verdict in (no_wait, no_buffer, far, unanswered):
        assert expected not in verdict.explanation
    with pytest.raises(ValueError, match="must be finite"):
        check_glass_to_glass(float("nan"), 2.0)
