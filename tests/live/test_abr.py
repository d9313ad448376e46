"""The ABR player, the four algorithms, QoE and the offline optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from chatdesign.live.abr import (
    BOLA,
    LIVE_BUFFER_CAP_S,
    QOE_HD,
    QOE_LIN,
    QOE_LOG,
    AbrAlgorithm,
    BufferBased,
    Controller,
    Observation,
    Plan,
    QoEMetric,
    RateBased,
    RobustMPC,
    Video,
    best_first_step,
    compare_algorithms,
    offline_optimal,
    qoe_lin,
    rendition_egress,
    rendition_shares,
    simulate_session,
    simulate_sessions,
)
from chatdesign.live.traces import Trace, sample_traces, synthetic_trace

ONLINE = (RateBased(), BufferBased(), RobustMPC(), BOLA())


def flat(mbps: float, seconds: int = 100) -> Trace:
    return Trace(np.arange(seconds, dtype=float), np.full(seconds, mbps))


TWO_RUNGS = Video(ladder_kbps=(1000.0, 2000.0), chunk_s=4.0, n_chunks=3)


def test_player_by_hand_on_a_fast_link() -> None:
    # 8 Mbps = 1 MB/s; rung 0 chunks are 0.5 MB, rung 1 chunks 1 MB
    result = simulate_session(flat(8.0), Plan((0, 1, 1)), TWO_RUNGS, rtt_s=0.0, payload_fraction=1.0)
    assert result.startup_delay_s == pytest.approx(0.5)
    assert list(result.finish_s) == pytest.approx([0.5, 1.5, 2.5])
    assert list(result.buffer_s) == pytest.approx([4.0, 7.0, 10.0])
    assert result.rebuffer_s == 0.0
    assert list(result.bitrates_kbps) == [1000.0, 2000.0, 2000.0]
    assert result.qoe == pytest.approx(1 + 2 + 2 - 1)


def test_stalls_and_startup_are_counted_separately() -> None:
    # 1 Mbps: a 2000-kbps 4-s chunk (1 MB) takes 8 s
    video = Video(ladder_kbps=(1000.0, 2000.0), chunk_s=4.0, n_chunks=2)
    result = simulate_session(flat(1.0), Plan((1, 1)), video, rtt_s=0.0, payload_fraction=1.0)
    assert result.startup_delay_s == pytest.approx(8.0)
    assert result.rebuffer_s == pytest.approx(4.0)
    assert result.rebuffer_with_startup_s == pytest.approx(12.0)
    assert result.qoe == pytest.approx(2 + 2 - 4.3 * 4)
    assert result.breakdown(count_startup=True)["qoe"] == pytest.approx(4 - 4.3 * 12)
    parts = result.breakdown()
    assert parts["rebuffer_penalty"] == pytest.approx(4.3 * 4)
    assert parts["smoothness_penalty"] == 0.0


def test_rtt_and_payload_fraction_lengthen_each_download() -> None:
    result = simulate_session(flat(8.0), Plan((0, 0, 0)), TWO_RUNGS, rtt_s=0.1, payload_fraction=0.5)
    assert list(np.diff(np.concatenate([[0.0], result.finish_s]))) == pytest.approx([1.1, 1.1, 1.1])


def test_the_player_waits_at_the_buffer_cap() -> None:
    video = Video(ladder_kbps=(1000.0,), chunk_s=4.0, n_chunks=6)
    result = simulate_session(flat(80.0), Plan((0,) * 6), video, buffer_cap_s=10.0, rtt_s=0.0)
    assert result.buffer_s.max() == pytest.approx(10.0)
    # without the cap all six chunks would be in within half a second; with it the sixth waits
    # until five chunks (20 s) minus the 10-s cap have played
    assert result.start_s[-1] >= 5 * 4.0 - 10.0


def test_the_trace_wraps_for_a_long_session() -> None:
    short = Trace(np.array([0.0, 1.0]), np.array([8.0, 8.0]))
    result = simulate_session(short, Plan((0, 0, 0)), TWO_RUNGS, rtt_s=0.0, payload_fraction=1.0)
    assert result.finish_s[-1] == pytest.approx(1.5)


def test_qoe_lin_by_hand_and_variants() -> None:
    assert qoe_lin([300, 750, 4300], 1.0) == pytest.approx(5.35 - 4.3 - 4.0)
    assert qoe_lin([300, 750, 4300], [0.5, 0.5, 0.0]) == pytest.approx(5.35 - 4.3 - 4.0)
    ladder = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
    log = QOE_LOG.breakdown([300, 750], 1.0, ladder)
    assert log["utility"] == pytest.approx(np.log(2.5))
    assert log["qoe"] == pytest.approx(np.log(2.5) - 2.66 - np.log(2.5))
    assert QOE_HD.breakdown([1200, 1850], 0.5, ladder)["qoe"] == pytest.approx(3 + 12 - 4 - 9)
    with pytest.raises(ValueError, match="Pensieve's ladder only"):
        QOE_HD.utilities([500.0, 1000.0])
    with pytest.raises(ValueError, match="not negative"):
        qoe_lin([300], -1.0)
    with pytest.raises(ValueError, match="non-empty"):
        qoe_lin([], 0.0)


def observation(buffer_s: list[float], throughput: list[list[float]], chunk: int = 5) -> Observation:
    video = Video()
    tput = np.array(throughput)
    return Observation(chunk, np.array(buffer_s), np.ones(len(buffer_s), dtype=np.int64), tput,
                       np.ones_like(tput), video, 60.0, 0.08)


def test_bba_follows_pensieve() -> None:
    decide = BufferBased().decide
    assert list(decide(observation([4.0, 5.0, 10.0, 14.9, 15.0, 40.0], [[1.0]] * 6))) == [0, 0, 2, 4, 5, 5]


def test_rate_based_takes_the_harmonic_mean() -> None:
    obs = observation([10.0, 10.0], [[1.0, 1.0, 1.0], [0.5, 4.0, 4.0]])
    # harmonic means: 1.0 and 3 / (2 + 0.25 + 0.25) = 1.2 Mbps
    assert list(RateBased().decide(obs)) == [1, 2]


def test_mpc_tree_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    video = Video()
    utilities = QOE_LIN.utilities(video.ladder_kbps)
    for _ in range(20):
        horizon = int(rng.integers(1, 5))
        bw, buffer, last = rng.uniform(0.3, 5.0), rng.uniform(0, 20), int(rng.integers(6))
        sizes = video.sizes[:horizon] * rng.uniform(0.8, 1.2, size=(horizon, 6))
        best, best_combo, best_by_first = -np.inf, None, np.full(6, -np.inf)
        for combo in itertools.product(range(6), repeat=horizon):
            b, reward, previous = buffer, 0.0, last
            for k, q in enumerate(combo):
                download = sizes[k, q] * 8 / 1e6 / bw
                reward += utilities[q] - 4.3 * max(download - b, 0.0) - abs(utilities[q] - utilities[previous])
                b = max(b - download, 0.0) + 4.0
                previous = q
            best_by_first[combo[0]] = max(best_by_first[combo[0]], reward)
            if reward >= best:
                best, best_combo = reward, combo
        got = best_first_step(sizes, np.array([bw]), np.array([buffer]), np.array([last]), utilities, 4.3, 4.0)
        assert best_combo is not None
        # the same first step, or (float32 rounding) one whose best sequence ties within 1e-4
        assert int(got[0]) == best_combo[0] or best_by_first[int(got[0])] >= best - 1e-4


def test_vectorised_sessions_equal_one_at_a_time() -> None:
    traces = [synthetic_trace("4g", 120, s) for s in range(3)]
    for algorithm in ONLINE:
        together = simulate_sessions(traces, algorithm)
        for trace, batch in zip(traces, together, strict=True):
            alone = simulate_session(trace, algorithm)
            assert np.array_equal(alone.qualities, batch.qualities)
            assert alone.qoe == pytest.approx(batch.qoe)


@pytest.mark.parametrize("trace", sample_traces(), ids=lambda t: t.name)
def test_no_online_algorithm_beats_the_offline_optimum(trace: Trace) -> None:
    # Pensieve's full video (48 chunks x 6 bitrates) on every data trace, 3G ones included
    optimum = offline_optimal(trace)
    assert optimum.algorithm == "offline optimum"
    for algorithm in ONLINE:
        session = simulate_session(trace, algorithm)
        assert session.qoe <= optimum.qoe + 1e-9, algorithm.name
    assert optimum.qualities[0] == 1  # the first chunk is fixed, as for the online rules


class _AllPlans(AbrAlgorithm):
    """Every rendition sequence after a fixed first chunk, one per session (brute force)."""

    name = "all plans"

    def __init__(self, plans: np.ndarray) -> None:
        self.plans = plans

    def first_quality(self, video: Video) -> int:
        return int(self.plans[0, 0])

    def start(self, video: Video, sessions: int) -> Controller:
        plans = self.plans

        class _Column(Controller):
            def choose(self, obs: Observation) -> np.ndarray:
                column: np.ndarray = plans[:, obs.chunk]
                return column

        return _Column()


def brute_force_best(trace: Trace, video: Video, buffer_cap_s: float, metric: QoEMetric = QOE_LIN,
                     first: int = 1) -> float:
    """The best QoE over all levels ** (n - 1) plans, each played by the same simulator."""
    rest = np.array(list(itertools.product(range(video.levels), repeat=video.n_chunks - 1)), dtype=np.int64)
    plans = np.column_stack([np.full(len(rest), first), rest])
    sessions = simulate_sessions([trace] * len(plans), _AllPlans(plans), video, buffer_cap_s, metric=metric)
    return max(r.qoe for r in sessions)


def cut(trace: Trace, start_s: int, seconds: int) -> Trace:
    """``seconds`` one-second samples of ``trace`` from ``start_s`` (the sample traces are 1 Hz)."""
    return Trace(np.arange(seconds, dtype=float), trace.mbps[start_s:start_s + seconds], name=trace.name)


@pytest.mark.parametrize(
    ("name", "start_s", "video", "buffer_cap_s", "metric"),
    [
        ("3g-1", 0, Video(n_chunks=6), 60.0, QOE_LIN),  # a slow link: stalls and low rungs
        ("3g-2", 100, Video(n_chunks=6), 60.0, QOE_LIN),
        ("3g-2", 200, Video(n_chunks=6), 8.0, QOE_LOG),
        ("broadband-1", 40, Video(n_chunks=6), 8.0, QOE_LIN),  # the cap binds: the player waits
        ("4g-1", 0, Video.live(8, (300.0, 1850.0, 4300.0)), LIVE_BUFFER_CAP_S, QOE_LIN),
    ],
)
def test_offline_optimum_equals_brute_force(name: str, start_s: int, video: Video, buffer_cap_s: float,
                                            metric: QoEMetric) -> None:
    trace = cut({t.name: t for t in sample_traces()}[name], start_s, 40)
    optimum = offline_optimal(trace, video, buffer_cap_s, metric=metric)
    assert optimum.qoe == pytest.approx(brute_force_best(trace, video, buffer_cap_s, metric), abs=1e-9)
    if name == "broadband-1":
        assert optimum.buffer_s.max() == pytest.approx(buffer_cap_s)  # its plan waited at the cap


def test_the_optimum_climbs_without_stalling_on_a_steady_link() -> None:
    optimum = offline_optimal(flat(2.5, 300), Video(n_chunks=12))
    # 2.5 Mbps x 0.95 sustains 1850 kbps; the plan never stalls and climbs as its buffer grows
    assert optimum.rebuffer_s == 0.0
    assert list(optimum.bitrates_kbps) == sorted(optimum.bitrates_kbps)
    assert optimum.qoe >= max(simulate_session(flat(2.5, 300), a, Video(n_chunks=12)).qoe for a in ONLINE)


def test_other_metrics_and_variable_chunk_sizes() -> None:
    rng = np.random.default_rng(1)
    sizes = Video(n_chunks=10).sizes * rng.uniform(0.7, 1.3, size=(10, 6))
    video = Video(n_chunks=10, chunk_bytes=sizes)
    trace = synthetic_trace("broadband", 100, 4)
    for metric in (QOE_LOG, QOE_HD):
        optimum = offline_optimal(trace, video, metric=metric)
        for algorithm in ONLINE:
            assert simulate_session(trace, algorithm, video, metric=metric).qoe <= optimum.qoe + 1e-9


def test_live_setting_runs_with_a_small_buffer() -> None:
    result = simulate_session(synthetic_trace("4g", 200, 1), BufferBased(reservoir_s=1.0, cushion_s=2.0),
                              Video.live(60), buffer_cap_s=LIVE_BUFFER_CAP_S)
    assert result.buffer_s.max() <= LIVE_BUFFER_CAP_S + 1e-9
    assert len(result.bitrates_kbps) == 60


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Video(ladder_kbps=(750.0, 300.0)), "increase strictly"),
        (lambda: Video(ladder_kbps=()), "at least one bitrate"),
        (lambda: Video(n_chunks=0), "n_chunks must be at least 1"),
        (lambda: Video(n_chunks=2, chunk_bytes=np.ones((3, 6))), "n_chunks x len"),
        (lambda: simulate_sessions([], RateBased()), "at least one trace"),
        (lambda: simulate_session(flat(1.0), RateBased(), buffer_cap_s=2.0), "at least one chunk"),
        (lambda: simulate_session(flat(1.0), RateBased(), rtt_s=-1.0), "rtt_s must not be negative"),
        (lambda: simulate_session(flat(1.0), Plan((0, 1))), "2 qualities for 48 chunks"),
        (lambda: simulate_session(flat(1.0), "BBA"), "must be an AbrAlgorithm"),  # type: ignore[arg-type]
        (lambda: offline_optimal(flat(1.0), first_quality=6), "first_quality must be between 0 and 5"),
        (lambda: offline_optimal(sample_traces()[2], max_states=50), "more than max_states=50"),
        (lambda: offline_optimal([1.0]), "must be a chatdesign.live.traces.Trace"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_comparison_table_and_egress() -> None:
    traces = [synthetic_trace("broadband", 200, s) for s in range(2)]
    video = Video(n_chunks=12)
    table, sessions = compare_algorithms(traces, video=video)
    assert list(table.index) == ["RB", "BBA", "RobustMPC", "BOLA", "offline optimum"]
    assert table.loc["offline optimum", "gap_to_optimum"] == pytest.approx(0.0)
    assert (table["gap_to_optimum"] >= -1e-9).all()
    shares = rendition_shares(sessions)
    assert np.allclose(shares.sum(axis=1), 1.0)
    egress = rendition_egress(shares, viewers=1_000, duration_s=video.duration_s)
    expected = sum(r.bitrates_kbps.sum() * 1000 / 8 * video.chunk_s for r in sessions["BBA"]) / 2 * 1_000
    assert egress.loc["BBA", "total"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="summing to 1"):
        rendition_egress(pd.DataFrame({300.0: [0.5]}), 10, 1.0)
