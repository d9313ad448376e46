"""Bandwidth traces: the step function, wrap-around, the generator and the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chatdesign.live.traces import (
    PROFILES,
    SAMPLE_TRACES,
    TRACES_DIR,
    Trace,
    load_sabre_json,
    load_tsv,
    sample_traces,
    synthetic_trace,
    write_sample_traces,
)


def test_bytes_and_finish_times_by_hand() -> None:
    trace = Trace(np.array([0.0, 2.0]), np.array([8.0, 4.0]))  # 1 MB/s for 2 s, then 0.5 MB/s for 2 s
    assert trace.period_s == 4.0
    assert trace.period_bytes == pytest.approx(3e6)
    assert trace.mean_mbps == pytest.approx(6.0)
    assert trace.delivered_bytes(3.0) == pytest.approx(2.5e6)
    assert trace.finish_s(1.0, 1.5e6) == pytest.approx(3.0)  # 1 MB by 2 s, 0.5 MB more takes 1 s


def test_the_trace_wraps_around() -> None:
    trace = Trace(np.array([0.0, 2.0]), np.array([8.0, 4.0]))
    assert trace.delivered_bytes(4.0 + 1.0) == pytest.approx(3e6 + 1e6)
    assert trace.finish_s(3.0, 1.5e6) == pytest.approx(5.0)  # 0.5 MB to the end, 1 MB in the next second
    assert float(trace.mbps_at(6.5)) == 4.0


def test_zero_throughput_steps_are_waited_out() -> None:
    trace = Trace(np.array([0.0, 1.0, 3.0]), np.array([8.0, 0.0, 8.0]))
    assert trace.finish_s(0.0, 1.5e6) == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("times", "mbps", "message"),
    [
        ([], [], "at least one sample"),
        ([0.0, 1.0], [1.0], "2 samples but mbps has 1"),
        ([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], "increase strictly"),
        ([1.0, 2.0], [1.0, 1.0], "start at 0"),
        ([0.0, 1.0], [1.0, -1.0], "must not be negative"),
        ([0.0, 1.0], [0.0, 0.0], "every mbps is 0"),
        ([0.0, 1.0], [1.0, float("nan")], "finite"),
    ],
)
def test_bad_traces_are_refused(times: list[float], mbps: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trace(np.array(times), np.array(mbps))


def test_generator_is_seeded_and_profiles_differ() -> None:
    a, b = synthetic_trace("3g", 120, seed=3), synthetic_trace("3g", 120, seed=3)
    assert np.array_equal(a.mbps, b.mbps)
    assert not np.array_equal(a.mbps, synthetic_trace("3g", 120, seed=4).mbps)
    means = {name: np.mean([synthetic_trace(name, 300, s).mean_mbps for s in range(5)]) for name in PROFILES}
    assert means["3g"] < means["broadband"] < means["4g"]
    with pytest.raises(ValueError, match="unknown profile"):
        synthetic_trace("5g")


def test_sample_files_equal_a_fresh_regeneration(tmp_path: Path) -> None:
    fresh = write_sample_traces(tmp_path)
    for path in fresh:
        assert (TRACES_DIR / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
    loaded = sample_traces()
    assert len(loaded) == len(SAMPLE_TRACES)
    original = synthetic_trace(*SAMPLE_TRACES[0][:1], 320, SAMPLE_TRACES[0][1])
    assert np.array_equal(loaded[0].mbps, original.mbps)


def test_tsv_loader(tmp_path: Path) -> None:
    path = tmp_path / "fcc.log"
    path.write_text("10.0\t2.5\n11.0\t3.5\n\n12.0 1.0\n", encoding="utf-8")
    trace = load_tsv(path)
    assert list(trace.times_s) == [0.0, 1.0, 2.0]
    assert list(trace.mbps) == [2.5, 3.5, 1.0]
    path.write_text("0\t1\n1\tfast\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_tsv(path)


def test_sabre_json_loader(tmp_path: Path) -> None:
    path = tmp_path / "net.json"
    periods = [{"duration_ms": 500, "bandwidth_kbps": 2000, "latency_ms": 20},
               {"duration_ms": 1500, "bandwidth_kbps": 1000, "latency_ms": 20}]
    path.write_text(json.dumps(periods), encoding="utf-8")
    trace = load_sabre_json(path)
    assert list(trace.times_s) == [0.0, 0.5]
    assert list(trace.mbps) == [2.0, 1.0]
    assert trace.period_s == 2.0
    path.write_text(json.dumps([{"bandwidth_kbps": 1}]), encoding="utf-8")
    with pytest.raises(ValueError, match="duration_ms"):
        load_sabre_json(path)
