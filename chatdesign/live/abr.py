"""Adaptive bitrate (ABR): a chunk-level player, four published algorithms, QoE and an offline optimum.

Theory of operation (the player). A :class:`Video` is ``n_chunks`` chunks of ``chunk_s``
seconds, each available at every bitrate of a ladder (Pensieve's 300-4300 kbps by default);
a chunk's size is ``kbps x chunk_s / 8`` bytes (constant bitrate) or given per chunk and
rendition (``chunk_bytes``). Before each chunk the algorithm picks a rendition. The request
leaves at ``start``; the first byte arrives one ``rtt_s`` later and the bytes then flow at the
trace's throughput times ``payload_fraction`` (0.95: Pensieve's ``PACKET_PAYLOAD_PORTION``) until
the chunk is complete at ``finish``. Meanwhile the buffer drains in real time; if it empties the
player **rebuffers** (stalls) until the chunk arrives. The finished chunk adds ``chunk_s`` to
the buffer; if the buffer now exceeds ``buffer_cap_s`` the player waits until it is back at the
cap, then asks for the next chunk. The trace wraps around when the session outlasts it.

What counts as rebuffering. Playback starts when the first chunk has arrived; the time until
then is the **start-up delay** (``startup_delay_s``). ``rebuffer_s`` counts only the stalls
after playback started; ``rebuffer_with_startup_s`` adds the start-up delay. QoE uses
``rebuffer_s`` unless ``count_startup=True``. (Pensieve's simulator reports the first chunk's
whole download as rebuffering, and its plots then drop the first chunk's reward; excluding the
start-up delay is the same choice stated plainly.)

How this follows the reference implementations, and where it differs:

- Player: as Pensieve's ``sim/env.py`` (chunk download over the trace, RTT per chunk, the 0.95
  payload factor, drain, stall, sleep at the 60-s cap, wrap-around) except: no x0.9-1.1 noise on
  the delay (as its ``fixed_env`` used for testing); the sleep at the cap is exact rather than
  in 500-ms steps; the RTT passes on the trace's clock too (Pensieve adds it to the delay but
  does not advance the trace); a sample's throughput holds from its time stamp on.
- First chunk: every algorithm starts at ladder index 1 (Pensieve's ``DEFAULT_QUALITY``).
- :class:`BufferBased`: Pensieve's ``test/bb.py`` exactly (5-s reservoir, 10-s cushion, linear
  map in between, truncated to an index).
- :class:`RobustMPC`: Pensieve's ``test/mpc.py``: harmonic mean of the last 5 measured
  throughputs (chunk bytes over the whole delay, RTT included), divided by 1 + the largest of
  the last 5 relative errors of that estimate; every combination of the next 5 renditions is
  scored with the QoE (buffer + chunk length per chunk, no cap, no RTT in the look-ahead) and
  the first step of the best is taken; ties go to the last combination in lexicographic order,
  as their ``>=`` does. Ours scores the combinations as a tree (shared prefixes) over all
  sessions at once, with the same result.
- :class:`RateBased`: as the Pensieve paper describes its RB baseline: the highest bitrate
  not above the harmonic mean of the last 5 throughputs.
- :class:`BOLA`: sabre's ``Bola`` (``src/sabre.py``, not BOLA-E): utilities ``ln(b / b_min)``,
  ``gamma_p = 5`` s, ``V = (buffer target - chunk) / (u_max + gamma_p)``, the rendition that
  maximises ``(V (u + gamma_p) - buffer) / bitrate``; the target buffer shrinks near the start
  and the end (``max(min(i, n - i) / 2, 3)`` chunks, sabre's non-basic mode), and an up-switch
  is capped one step above what the throughput sustains (sabre without ``--abr-osc``). Sabre
  estimates throughput with an EWMA; ours uses the same harmonic mean as the others. No
  abandonment (sabre's ``--no-abandon``).

The offline optimum (:func:`offline_optimal`) is a forward dynamic programme over the known
trace whose states are (last rendition, time, play-out deadline) on a grid of ``grid_s``
seconds: time rounded *down*, deadline (the wall time at which the buffer would run dry)
rounded *up*, and states that another state of the same rendition and time beats on both
deadline and reward dropped. Rounding in the player's favour makes the programme's best
reward an **upper bound** on the QoE of every policy, online or not, on that trace (a proof
sketch is in :func:`offline_optimal`'s docstring); its best plan, replayed through the exact
player, is an **achieved** QoE. The true optimum lies between the two; the difference is the
stated tolerance, reported with every result (``qoe_upper_bound``).

Taught in ``notebooks/09_adaptive_bitrate.ipynb``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole
from chatdesign.exercises import CheckResult
from chatdesign.live.traces import Trace

__all__ = [
    "BOLA",
    "LIVE_BUFFER_CAP_S",
    "PENSIEVE_LADDER_KBPS",
    "QOE_HD",
    "QOE_LIN",
    "QOE_LOG",
    "AbrAlgorithm",
    "BufferBased",
    "Observation",
    "Plan",
    "QoEMetric",
    "RateBased",
    "RobustMPC",
    "SessionResult",
    "Video",
    "check_rendition_egress",
    "compare_algorithms",
    "offline_optimal",
    "qoe_lin",
    "rendition_egress",
    "rendition_shares",
    "setting_table",
    "simulate_session",
    "simulate_sessions",
]

PENSIEVE_LADDER_KBPS: Final = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
"""Pensieve's bitrate ladder (kbps)."""
DEFAULT_QUALITY: Final = 1
"""Ladder index of every session's first chunk (Pensieve's ``DEFAULT_QUALITY``)."""
PAYLOAD_FRACTION: Final = 0.95
"""Share of the link's throughput that carries video bytes (Pensieve's ``PACKET_PAYLOAD_PORTION``)."""
LIVE_BUFFER_CAP_S: Final = 4.0
"""Buffer cap for the live setting: a live player cannot run further ahead than the live edge
lets it, so a few seconds (here 4) of buffer is all it gets. Use with ``Video.live()``."""
HD_UTILITY: Final[dict[float, float]] = {300.0: 1, 750.0: 2, 1200.0: 3, 1850.0: 12, 2850.0: 15, 4300.0: 20}
"""Pensieve's QoE_HD utility per bitrate (its ``BITRATE_REWARD``)."""


# ---------------------------------------------------------------- the video and the QoE


@dataclass(frozen=True, eq=False)
class Video:
    """What the player fetches: a ladder (kbps, increasing), chunk length (s), chunk count.

    ``chunk_bytes``: optional sizes, an array ``n_chunks x len(ladder)`` (variable-bitrate
    encodes, as Pensieve's and sabre's data sets ship them); by default every chunk is
    ``kbps x 1000 x chunk_s / 8`` bytes. Raises ``ValueError`` for an unsorted or empty ladder,
    a non-positive length, or sizes of the wrong shape.
    """

    ladder_kbps: tuple[float, ...] = PENSIEVE_LADDER_KBPS
    chunk_s: float = 4.0
    n_chunks: int = 48
    chunk_bytes: np.ndarray | None = None
    sizes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ladder = tuple(float(check_number(k, "ladder_kbps", positive=True)) for k in self.ladder_kbps)
        if not ladder:
            raise ValueError("ladder_kbps must have at least one bitrate")
        if any(b <= a for a, b in pairwise(ladder)):
            raise ValueError(f"ladder_kbps must increase strictly, got {self.ladder_kbps!r}")
        object.__setattr__(self, "ladder_kbps", ladder)
        check_number(self.chunk_s, "chunk_s", positive=True)
        check_whole(self.n_chunks, "n_chunks", minimum=1)
        if self.chunk_bytes is None:
            sizes = np.tile(np.array(ladder) * 1000 * self.chunk_s / 8, (self.n_chunks, 1))
        else:
            sizes = np.array(self.chunk_bytes, dtype=float)
            if sizes.shape != (self.n_chunks, len(ladder)):
                raise ValueError(f"chunk_bytes must be n_chunks x len(ladder) = {(self.n_chunks, len(ladder))}, "
                                 f"got {sizes.shape}")
            if not np.isfinite(sizes).all() or (sizes <= 0).any():
                raise ValueError("chunk_bytes must be positive finite numbers")
        sizes.flags.writeable = False
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def live(cls, n_chunks: int = 192, ladder_kbps: tuple[float, ...] = PENSIEVE_LADDER_KBPS) -> Video:
        """The 1-s-chunk live setting (192 chunks = Pensieve's 192 s); pair with
        ``buffer_cap_s=LIVE_BUFFER_CAP_S``."""
        return cls(ladder_kbps=ladder_kbps, chunk_s=1.0, n_chunks=n_chunks)

    @property
    def levels(self) -> int:
        """Number of renditions."""
        return len(self.ladder_kbps)

    @property
    def duration_s(self) -> float:
        """Seconds of video."""
        return self.n_chunks * self.chunk_s

    def __repr__(self) -> str:
        kind = "CBR" if self.chunk_bytes is None else "VBR"
        return (f"Video({self.n_chunks} x {self.chunk_s:g} s, ladder "
                f"{'/'.join(f'{k:g}' for k in self.ladder_kbps)} kbps, {kind})")


@dataclass(frozen=True)
class QoEMetric:
    """A QoE of the form Σ q(bitrate) − μ × rebuffer s − Σ |q(next) − q(previous)|.

    ``kind``: ``"lin"`` (q = Mbps, μ = 4.3), ``"log"`` (q = ln(kbps / lowest kbps), μ = 2.66) or
    ``"hd"`` (q from :data:`HD_UTILITY`, μ = 8), Pensieve's three (its paper, section 5.1;
    ``lin`` and ``hd`` are also in its code). ``hd`` needs Pensieve's ladder.
    """

    kind: str
    rebuffer_penalty: float

    def __post_init__(self) -> None:
        if self.kind not in ("lin", "log", "hd"):
            raise ValueError(f"kind must be 'lin', 'log' or 'hd', got {self.kind!r}")
        check_number(self.rebuffer_penalty, "rebuffer_penalty", minimum=0)

    def utilities(self, ladder_kbps: Sequence[float] | np.ndarray) -> np.ndarray:
        """q(bitrate) for each rung of the ladder."""
        ladder = np.asarray(ladder_kbps, dtype=float)
        if self.kind == "lin":
            return ladder / 1000
        if self.kind == "log":
            logs: np.ndarray = np.log(ladder / ladder.min())
            return logs
        missing = [k for k in ladder if float(k) not in HD_UTILITY]
        if missing:
            raise ValueError(f"QoE 'hd' is defined for Pensieve's ladder only; no utility for {missing}")
        result: np.ndarray = np.array([HD_UTILITY[float(k)] for k in ladder])
        return result

    def breakdown(self, bitrates_kbps: Sequence[float] | np.ndarray, rebuffer_s: float,
                  ladder_kbps: Sequence[float] | None = None) -> dict[str, float]:
        """``utility``, ``rebuffer_penalty``, ``smoothness_penalty`` and ``qoe`` of one session.

        ``ladder_kbps`` defaults to the bitrates played (which matters for ``log``: its zero is
        the ladder's lowest rung).
        """
        rates = np.asarray(bitrates_kbps, dtype=float)
        if rates.ndim != 1 or len(rates) == 0:
            raise ValueError("bitrates_kbps must be a non-empty sequence")
        if not np.isfinite(rates).all() or (rates <= 0).any():
            raise ValueError("bitrates_kbps must be positive numbers")
        check_number(rebuffer_s, "rebuffer_s", minimum=0)
        ladder = np.asarray(ladder_kbps if ladder_kbps is not None else np.unique(rates), dtype=float)
        table = dict(zip(ladder.tolist(), self.utilities(ladder).tolist(), strict=True))
        try:
            q = np.array([table[float(r)] for r in rates])
        except KeyError as error:
            raise ValueError(f"bitrate {error.args[0]} is not on the ladder") from None
        utility = float(q.sum())
        smooth = float(np.abs(np.diff(q)).sum())
        penalty = self.rebuffer_penalty * float(rebuffer_s)
        return {"utility": utility, "rebuffer_penalty": penalty, "smoothness_penalty": smooth,
                "qoe": utility - penalty - smooth}


QOE_LIN: Final = QoEMetric("lin", 4.3)
QOE_LOG: Final = QoEMetric("log", 2.66)
QOE_HD: Final = QoEMetric("hd", 8.0)


def qoe_lin(bitrates_kbps: Sequence[float] | np.ndarray, rebuffer_s: float | Sequence[float] | np.ndarray) -> float:
    """Pensieve's QoE_lin: Σ Mbps − 4.3 × rebuffer s − Σ |Δ Mbps| (chunk by chunk).

    ``rebuffer_s`` is the session's total stall (s) or one value per chunk (summed).
    """
    stalls = np.asarray(rebuffer_s, dtype=float)
    if not np.isfinite(stalls).all() or (stalls < 0).any():
        raise ValueError("rebuffer_s must be finite and not negative")
    rates = np.asarray(bitrates_kbps, dtype=float)
    if rates.ndim != 1 or len(rates) == 0:
        raise ValueError("bitrates_kbps must be a non-empty sequence")
    if not np.isfinite(rates).all() or (rates <= 0).any():
        raise ValueError("bitrates_kbps must be positive numbers")
    mbps = rates / 1000
    return float(mbps.sum() - 4.3 * stalls.sum() - np.abs(np.diff(mbps)).sum())


# ---------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class SessionResult:
    """One playback session, chunk by chunk.

    Arrays have one entry per chunk: ``qualities`` (ladder index), ``bitrates_kbps``,
    ``start_s``/``finish_s`` (request sent / last byte in), ``rebuffer_per_chunk_s`` (stall
    while that chunk downloaded; 0 for the first, whose wait is ``startup_delay_s``),
    ``buffer_s`` (buffer when the next request is sent, after any wait at the cap),
    ``throughput_mbps`` (chunk bits over the whole delay, as the player measures it).
    ``qoe`` is under ``metric`` with ``count_startup``; ``qoe_upper_bound`` is set for the
    offline optimum only (see :func:`offline_optimal`).
    """

    trace_name: str
    algorithm: str
    video: Video
    buffer_cap_s: float
    rtt_s: float
    qualities: np.ndarray
    start_s: np.ndarray
    finish_s: np.ndarray
    rebuffer_per_chunk_s: np.ndarray
    buffer_s: np.ndarray
    throughput_mbps: np.ndarray
    startup_delay_s: float
    metric: QoEMetric = QOE_LIN
    count_startup: bool = False
    qoe_upper_bound: float | None = None

    @property
    def bitrates_kbps(self) -> np.ndarray:
        """Bitrate of each chunk (kbps)."""
        result: np.ndarray = np.asarray(self.video.ladder_kbps)[self.qualities]
        return result

    @property
    def rebuffer_s(self) -> float:
        """Stalls after playback started (s); the start-up delay is not included."""
        return float(self.rebuffer_per_chunk_s.sum())

    @property
    def rebuffer_with_startup_s(self) -> float:
        """Stalls plus the start-up delay (s)."""
        return self.rebuffer_s + self.startup_delay_s

    def breakdown(self, metric: QoEMetric | None = None, count_startup: bool | None = None) -> dict[str, float]:
        """Bitrate utility, rebuffer penalty, smoothness penalty and QoE of this session."""
        chosen = metric or self.metric
        startup = self.count_startup if count_startup is None else count_startup
        stall = self.rebuffer_with_startup_s if startup else self.rebuffer_s
        return chosen.breakdown(self.bitrates_kbps, stall, self.video.ladder_kbps)

    @property
    def qoe(self) -> float:
        """QoE under the session's metric."""
        return self.breakdown()["qoe"]

    def time_per_rendition_s(self) -> np.ndarray:
        """Seconds of video played at each rung of the ladder."""
        counts = np.bincount(self.qualities, minlength=self.video.levels)
        result: np.ndarray = counts * self.video.chunk_s
        return result

    def to_frame(self) -> pd.DataFrame:
        """One row per chunk."""
        return pd.DataFrame({
            "quality": self.qualities, "bitrate_kbps": self.bitrates_kbps,
            "start_s": self.start_s, "finish_s": self.finish_s,
            "rebuffer_s": self.rebuffer_per_chunk_s, "buffer_s": self.buffer_s,
            "throughput_mbps": self.throughput_mbps,
        }, index=pd.RangeIndex(self.video.n_chunks, name="chunk"))

    def summary(self) -> dict[str, float | str]:
        """The session's headline numbers (a row of :func:`compare_algorithms`)."""
        parts = self.breakdown()
        return {"algorithm": self.algorithm, "trace": self.trace_name,
                "mean_bitrate_kbps": float(self.bitrates_kbps.mean()),
                "rebuffer_s": self.rebuffer_s, "startup_delay_s": self.startup_delay_s, **parts}

    def __repr__(self) -> str:
        bound = "" if self.qoe_upper_bound is None else f", upper bound {self.qoe_upper_bound:.2f}"
        return (f"SessionResult({self.algorithm} on {self.trace_name!r}: QoE {self.qoe:.2f}{bound}, "
                f"mean {self.bitrates_kbps.mean():.0f} kbps, rebuffer {self.rebuffer_s:.2f} s, "
                f"start-up {self.startup_delay_s:.2f} s)")


# ---------------------------------------------------------------- algorithms


@dataclass(frozen=True, eq=False)
class Observation:
    """What an algorithm sees before choosing chunk ``chunk`` (arrays over sessions).

    ``throughput_mbps``/``download_s``: one column per chunk so far (``sessions x chunk``).
    """

    chunk: int
    buffer_s: np.ndarray
    last_quality: np.ndarray
    throughput_mbps: np.ndarray
    download_s: np.ndarray
    video: Video
    buffer_cap_s: float
    rtt_s: float


class Controller(ABC):
    """One run of an algorithm over a batch of sessions (may keep state between chunks)."""

    @abstractmethod
    def choose(self, obs: Observation) -> np.ndarray:
        """Ladder index for chunk ``obs.chunk`` of every session."""


class AbrAlgorithm(ABC):
    """An ABR algorithm: a frozen configuration that starts fresh controllers."""

    name: str = "abr"

    def first_quality(self, video: Video) -> int:
        """Rung of the first chunk: Pensieve's default (index 1, or 0 on a one-rung ladder)."""
        return min(DEFAULT_QUALITY, video.levels - 1)

    @abstractmethod
    def start(self, video: Video, sessions: int) -> Controller:
        """A controller for ``sessions`` sessions of ``video``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def harmonic_mean_recent(throughput_mbps: np.ndarray, window: int = 5) -> np.ndarray:
    """Harmonic mean of each row's last ``window`` columns (all columns if fewer)."""
    recent = throughput_mbps[:, -window:]
    result: np.ndarray = recent.shape[1] / (1.0 / recent).sum(axis=1)
    return result


def highest_below(ladder_mbps: np.ndarray, rate_mbps: np.ndarray) -> np.ndarray:
    """Highest rung whose bitrate is at most ``rate_mbps`` (rung 0 if none is)."""
    index = np.searchsorted(ladder_mbps, rate_mbps, side="right") - 1
    result: np.ndarray = np.maximum(index, 0)
    return result


class _Stateless(Controller):
    def __init__(self, rule: AbrAlgorithm) -> None:
        self.rule = rule

    def choose(self, obs: Observation) -> np.ndarray:
        return self.rule.decide(obs)  # type: ignore[attr-defined, no-any-return]


@dataclass(frozen=True, repr=False)
class RateBased(AbrAlgorithm):
    """Rate-based: the highest bitrate not above the harmonic mean of the last ``window``
    throughputs (Pensieve's RB baseline)."""

    window: int = 5
    name: str = "RB"

    def __post_init__(self) -> None:
        check_whole(self.window, "window", minimum=1)

    def start(self, video: Video, sessions: int) -> Controller:
        return _Stateless(self)

    def decide(self, obs: Observation) -> np.ndarray:
        """The rule, for an observation."""
        estimate = harmonic_mean_recent(obs.throughput_mbps, self.window)
        return highest_below(np.asarray(obs.video.ladder_kbps) / 1000, estimate)


@dataclass(frozen=True, repr=False)
class BufferBased(AbrAlgorithm):
    """BBA (Huang et al. 2014) as Pensieve's ``test/bb.py``: the lowest rung below
    ``reservoir_s`` of buffer, the top one from ``reservoir_s + cushion_s``, linear between."""

    reservoir_s: float = 5.0
    cushion_s: float = 10.0
    name: str = "BBA"

    def __post_init__(self) -> None:
        check_number(self.reservoir_s, "reservoir_s", minimum=0)
        check_number(self.cushion_s, "cushion_s", positive=True)

    def start(self, video: Video, sessions: int) -> Controller:
        return _Stateless(self)

    def decide(self, obs: Observation) -> np.ndarray:
        """The rule, for an observation."""
        top = obs.video.levels - 1
        linear = (top * (obs.buffer_s - self.reservoir_s) / self.cushion_s).astype(np.int64)
        result: np.ndarray = np.where(obs.buffer_s < self.reservoir_s, 0,
                                      np.where(obs.buffer_s >= self.reservoir_s + self.cushion_s, top,
                                               np.clip(linear, 0, top)))
        return result


@dataclass(frozen=True, repr=False)
class RobustMPC(AbrAlgorithm):
    """RobustMPC (Yin et al. 2015) as Pensieve's ``test/mpc.py``: see the module notes.

    ``horizon`` chunks are looked ahead (5); throughput is the harmonic mean of the last
    ``window`` (5) divided by 1 + the largest relative error of the last ``window`` estimates.
    ``metric`` is the QoE it optimises (QoE_lin by default, as theirs).
    """

    horizon: int = 5
    window: int = 5
    metric: QoEMetric = QOE_LIN
    name: str = "RobustMPC"

    def __post_init__(self) -> None:
        check_whole(self.horizon, "horizon", minimum=1, maximum=7)
        check_whole(self.window, "window", minimum=1)

    def start(self, video: Video, sessions: int) -> Controller:
        return _MpcController(self, video, sessions)


class _MpcController(Controller):
    def __init__(self, rule: RobustMPC, video: Video, sessions: int) -> None:
        self.rule = rule
        self.utilities = rule.metric.utilities(video.ladder_kbps)
        self.estimates: list[np.ndarray] = []
        self.errors: list[np.ndarray] = []
        self.sessions = sessions

    def choose(self, obs: Observation) -> np.ndarray:
        rule, video = self.rule, obs.video
        measured = obs.throughput_mbps[:, -1]
        if self.estimates:
            self.errors.append(np.abs(self.estimates[-1] - measured) / measured)
        else:
            self.errors.append(np.zeros(len(measured)))
        max_error = np.max(np.stack(self.errors[-rule.window:]), axis=0)
        harmonic = harmonic_mean_recent(obs.throughput_mbps, rule.window)
        self.estimates.append(harmonic)
        predicted = harmonic / (1 + max_error)
        horizon = min(rule.horizon, video.n_chunks - obs.chunk)
        return best_first_step(
            video.sizes[obs.chunk:obs.chunk + horizon], predicted, obs.buffer_s, obs.last_quality,
            self.utilities, rule.metric.rebuffer_penalty, video.chunk_s)


def best_first_step(sizes: np.ndarray, predicted_mbps: np.ndarray, buffer_s: np.ndarray,
                    last_quality: np.ndarray, utilities: np.ndarray, rebuffer_penalty: float,
                    chunk_s: float) -> np.ndarray:
    """MPC's look-ahead: score every rendition sequence for the next ``len(sizes)`` chunks at
    ``predicted_mbps`` and return each session's first step of the best (ties: the last
    sequence in lexicographic order). Evaluated as a tree, level by level, over all sessions,
    in float32 after the first level (rewards differ from float64 sums by ~1e-5)."""
    sessions, levels = len(buffer_s), sizes.shape[1]
    u = utilities.astype(np.float64)
    seconds_per_byte = 8 / 1e6 / predicted_mbps
    # level 0: the first chunk after ``last_quality``
    download = sizes[0][None, :] * seconds_per_byte[:, None]  # sessions x levels
    stall = np.maximum(download - buffer_s[:, None], 0.0)
    reward = u[None, :] - np.abs(u[None, :] - u[last_quality][:, None]) - rebuffer_penalty * stall
    buffer = np.maximum(buffer_s[:, None] - download, 0.0) + chunk_s
    # the gain of stepping from rung i to rung j, the same for every session
    step_gain = (u[None, :] - np.abs(u[None, :] - u[:, None]))  # previous x next
    reward, buffer = reward.astype(np.float32), buffer.astype(np.float32)
    step_gain = step_gain.astype(np.float32)
    for k in range(1, len(sizes)):
        combos = reward.shape[1]
        download = (sizes[k] * seconds_per_byte[:, None]).astype(np.float32)  # sessions x levels
        gain = np.tile(step_gain, (combos // levels, 1))  # combos x levels (previous = combo % levels)
        shortfall = download[:, None, :] - buffer[:, :, None]  # in place from here on: big arrays
        stall = np.maximum(shortfall, np.float32(0.0))
        stall *= np.float32(rebuffer_penalty)
        grown = reward[:, :, None] + gain[None, :, :]
        grown -= stall
        reward = grown.reshape(sessions, -1)
        if k < len(sizes) - 1:
            np.negative(shortfall, out=shortfall)
            np.maximum(shortfall, np.float32(0.0), out=shortfall)
            shortfall += np.float32(chunk_s)
            buffer = shortfall.reshape(sessions, -1)
    combos = reward.shape[1]
    last_best = combos - 1 - np.argmax(reward[:, ::-1], axis=1)
    result: np.ndarray = last_best // (combos // levels)
    return result


@dataclass(frozen=True, repr=False)
class BOLA(AbrAlgorithm):
    """BOLA (Spiteri et al. 2016) as sabre's ``Bola`` class: see the module notes.

    ``gamma_p`` (s) trades bitrate for rebuffering; ``buffer_target_s`` is BOLA's buffer size
    (``None``: the session's buffer cap).
    """

    gamma_p: float = 5.0
    buffer_target_s: float | None = None
    name: str = "BOLA"

    def __post_init__(self) -> None:
        check_number(self.gamma_p, "gamma_p", positive=True)
        if self.buffer_target_s is not None:
            check_number(self.buffer_target_s, "buffer_target_s", positive=True)

    def start(self, video: Video, sessions: int) -> Controller:
        return _BolaController(self, video, sessions)


class _BolaController(Controller):
    def __init__(self, rule: BOLA, video: Video, sessions: int) -> None:
        self.rule = rule
        ladder = np.asarray(video.ladder_kbps)
        self.utilities = np.log(ladder / ladder[0])
        self.last = np.full(sessions, rule.first_quality(video), dtype=np.int64)

    def choose(self, obs: Observation) -> np.ndarray:
        rule, video = self.rule, obs.video
        ladder = np.asarray(video.ladder_kbps)
        target = obs.buffer_cap_s if rule.buffer_target_s is None else rule.buffer_target_s
        near_edge = max(min(obs.chunk, video.n_chunks - obs.chunk) / 2, 3) * video.chunk_s
        buffer_size = min(target, near_edge)
        vp = max(buffer_size - video.chunk_s, 1e-9) / (self.utilities[-1] + rule.gamma_p)
        score = (vp * (self.utilities[None, :] + rule.gamma_p) - obs.buffer_s[:, None]) / ladder[None, :]
        quality = np.argmax(score, axis=1)
        # an up-switch goes at most one rung above what the throughput sustains
        tput = harmonic_mean_recent(obs.throughput_mbps) * 1000
        sustained = np.maximum(
            (obs.rtt_s + video.chunk_s * ladder[None, :] / tput[:, None] <= video.chunk_s).sum(axis=1) - 1, 0)
        up = quality > self.last
        capped = np.where(self.last > sustained, self.last, sustained + 1)
        quality = np.where(up & (quality > sustained), np.minimum(capped, quality), quality)
        self.last = quality
        result: np.ndarray = quality
        return result


@dataclass(frozen=True, repr=False)
class Plan(AbrAlgorithm):
    """Play a fixed sequence of ladder indices (how the offline optimum's plan is replayed)."""

    qualities: tuple[int, ...]
    name: str = "plan"

    def __post_init__(self) -> None:
        if not self.qualities:
            raise ValueError("a plan needs at least one quality")
        for q in self.qualities:
            check_whole(q, "quality", minimum=0)

    def first_quality(self, video: Video) -> int:
        self._check(video)
        return self.qualities[0]

    def _check(self, video: Video) -> None:
        if len(self.qualities) != video.n_chunks:
            raise ValueError(f"the plan has {len(self.qualities)} qualities for {video.n_chunks} chunks")
        if max(self.qualities) >= video.levels:
            raise ValueError(f"a quality is beyond the ladder's {video.levels} rungs")

    def start(self, video: Video, sessions: int) -> Controller:
        self._check(video)
        return _PlanController(np.asarray(self.qualities, dtype=np.int64), sessions)


class _PlanController(Controller):
    def __init__(self, qualities: np.ndarray, sessions: int) -> None:
        self.qualities, self.sessions = qualities, sessions

    def choose(self, obs: Observation) -> np.ndarray:
        return np.full(self.sessions, self.qualities[obs.chunk], dtype=np.int64)


# ---------------------------------------------------------------- the player


class _TraceBank:
    """Several traces' cumulative-bytes curves in one array, so a transfer's finish time for
    every session is one ``searchsorted`` (offsets keep each trace's values apart)."""

    def __init__(self, traces: Sequence[Trace]) -> None:
        self.period_s = np.array([t.period_s for t in traces])
        self.period_bytes = np.array([t.period_bytes for t in traces])
        lengths = np.array([len(t.mbps) for t in traces])
        self.first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.time_offset = np.concatenate([[0.0], np.cumsum(self.period_s + 1.0)[:-1]])
        self.byte_offset = np.concatenate([[0.0], np.cumsum(self.period_bytes + 1.0)[:-1]])
        self.times = np.concatenate([t.times_s for t in traces])
        self.rate = np.concatenate([t.mbps for t in traces]) * 1e6 / 8
        self.cum = np.concatenate([t._cum_bytes[:-1] for t in traces])
        self.big_times = self.times + np.repeat(self.time_offset, lengths)
        self.big_cum = self.cum + np.repeat(self.byte_offset, lengths)

    def delivered(self, t: np.ndarray) -> np.ndarray:
        periods = np.floor(t / self.period_s)
        within = t - periods * self.period_s
        i = np.searchsorted(self.big_times, within + self.time_offset, side="right") - 1
        i = np.maximum(i, self.first)
        result: np.ndarray = periods * self.period_bytes + self.cum[i] + (within - self.times[i]) * self.rate[i]
        return result

    def time_for(self, y: np.ndarray) -> np.ndarray:
        periods = np.floor(y / self.period_bytes)
        within = y - periods * self.period_bytes
        i = np.searchsorted(self.big_cum, within + self.byte_offset, side="left") - 1
        i = np.maximum(i, self.first)
        rate = self.rate[i]
        safe = np.where(rate > 0, rate, 1.0)
        inside = self.times[i] + np.where(rate > 0, (within - self.cum[i]) / safe, 0.0)
        result: np.ndarray = periods * self.period_s + inside
        return result

    def finish(self, start: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        return self.time_for(self.delivered(start) + nbytes)


def _check_session_args(video: Video, buffer_cap_s: float, rtt_s: float, payload_fraction: float) -> None:
    check_number(buffer_cap_s, "buffer_cap_s", positive=True)
    if buffer_cap_s < video.chunk_s:
        raise ValueError(f"buffer_cap_s ({buffer_cap_s:g}) must hold at least one chunk ({video.chunk_s:g} s)")
    check_number(rtt_s, "rtt_s", minimum=0)
    check_fraction(payload_fraction, "payload_fraction")
    if payload_fraction == 0:
        raise ValueError("payload_fraction must be positive, got 0")


def simulate_sessions(
    traces: Sequence[Trace],
    algorithm: AbrAlgorithm,
    video: Video | None = None,
    buffer_cap_s: float = 60.0,
    rtt_s: float = 0.08,
    *,
    metric: QoEMetric = QOE_LIN,
    count_startup: bool = False,
    payload_fraction: float = PAYLOAD_FRACTION,
) -> list[SessionResult]:
    """Play ``video`` once over each trace with ``algorithm``, all sessions in lock step.

    Every step is numpy over the sessions (one ``searchsorted`` per chunk for all downloads), so
    hundreds of sessions cost about as much as a few. See the module notes for the player model.
    Raises ``ValueError`` for no traces or invalid settings.
    """
    chosen = video or Video()
    if not isinstance(algorithm, AbrAlgorithm):
        raise ValueError(f"algorithm must be an AbrAlgorithm (RateBased(), BufferBased(), ...), got {algorithm!r}")
    traces = list(traces)
    if not traces:
        raise ValueError("simulate_sessions needs at least one trace")
    if not all(isinstance(t, Trace) for t in traces):
        raise ValueError("every trace must be a chatdesign.live.traces.Trace")
    _check_session_args(chosen, buffer_cap_s, rtt_s, payload_fraction)
    bank = _TraceBank(traces)
    sessions, n = len(traces), chosen.n_chunks
    controller = algorithm.start(chosen, sessions)
    qualities = np.zeros((sessions, n), dtype=np.int64)
    start = np.zeros((sessions, n))
    finish = np.zeros((sessions, n))
    stall = np.zeros((sessions, n))
    buffer_after = np.zeros((sessions, n))
    throughput = np.zeros((sessions, n))
    download = np.zeros((sessions, n))
    now = np.zeros(sessions)
    buffer = np.zeros(sessions)
    rows = np.arange(sessions)
    for chunk in range(n):
        if chunk == 0:
            q = np.full(sessions, algorithm.first_quality(chosen), dtype=np.int64)
        else:
            obs = Observation(chunk, buffer.copy(), qualities[:, chunk - 1].copy(), throughput[:, :chunk],
                              download[:, :chunk], chosen, buffer_cap_s, rtt_s)
            q = np.asarray(controller.choose(obs), dtype=np.int64)
            if q.shape != (sessions,) or (q < 0).any() or (q >= chosen.levels).any():
                raise ValueError(f"{algorithm.name} chose an invalid rendition for chunk {chunk}")
        size = chosen.sizes[chunk, q]
        done = bank.finish(now + rtt_s, size / payload_fraction)
        took = done - now
        if chunk > 0:
            stall[:, chunk] = np.maximum(took - buffer, 0.0)
        buffer = np.maximum(buffer - took, 0.0) + chosen.chunk_s
        wait = np.maximum(buffer - buffer_cap_s, 0.0)
        buffer -= wait
        qualities[:, chunk], start[:, chunk], finish[:, chunk] = q, now, done
        download[:, chunk] = took
        throughput[rows, chunk] = size * 8 / 1e6 / took
        buffer_after[:, chunk] = buffer
        now = done + wait
    return [
        SessionResult(trace_name=traces[k].name, algorithm=algorithm.name, video=chosen,
                      buffer_cap_s=float(buffer_cap_s), rtt_s=float(rtt_s), qualities=qualities[k],
                      start_s=start[k], finish_s=finish[k], rebuffer_per_chunk_s=stall[k],
                      buffer_s=buffer_after[k], throughput_mbps=throughput[k],
                      startup_delay_s=float(download[k, 0]), metric=metric, count_startup=count_startup)
        for k in range(sessions)
    ]


def simulate_session(
    trace: Trace,
    algorithm: AbrAlgorithm,
    video: Video | None = None,
    buffer_cap_s: float = 60.0,
    rtt_s: float = 0.08,
    *,
    metric: QoEMetric = QOE_LIN,
    count_startup: bool = False,
    payload_fraction: float = PAYLOAD_FRACTION,
) -> SessionResult:
    """Play ``video`` (Pensieve's 48 x 4 s by default) over ``trace`` with ``algorithm``.

    Returns a :class:`SessionResult` (``bitrates_kbps``, ``rebuffer_s``, ``qoe``, ...).
    """
    return simulate_sessions([trace], algorithm, video, buffer_cap_s, rtt_s, metric=metric,
                             count_startup=count_startup, payload_fraction=payload_fraction)[0]


# ---------------------------------------------------------------- the offline optimum


def offline_optimal(
    trace: Trace,
    video: Video | None = None,
    buffer_cap_s: float = 60.0,
    rtt_s: float = 0.08,
    *,
    metric: QoEMetric = QOE_LIN,
    count_startup: bool = False,
    payload_fraction: float = PAYLOAD_FRACTION,
    grid_s: float = 0.1,
    first_quality: int | None = DEFAULT_QUALITY,
    max_states: int = 5_000,
) -> SessionResult:
    """The best rendition plan for a known trace, by dynamic programming, replayed exactly.

    States after each chunk: (rendition, time ``t``, play-out deadline ``d`` = time the buffer
    would run dry, reward so far). States are grouped in cells of ``grid_s`` seconds of ``t`` and
    of ``d``; within a (rendition, time cell) only states that no other beats on both deadline
    cell and reward survive, and a survivor takes the earliest time of its time cell and the
    latest deadline of its deadline cell (so it is at least as well off as every state it
    replaces). States that cannot reach the QoE of the better of :class:`RateBased` and
    :class:`BufferBased` even with the top rung for every remaining chunk are dropped (branch and
    bound; that QoE is then a floor of the bound).
    From a state the next download starts at once at ``t`` (the programme ignores the buffer
    cap: a relaxation). Why its best reward bounds every real policy: couple a real run
    (t, d, reward R) with the programme's run of the same renditions (t̃ ≤ t, reward R̃);
    because a transfer that starts earlier never ends later, and a stall of x seconds raises the
    deadline by x while costing μx, the quantity ``R̃ − R − μ·max(0, d − d̃)`` never goes
    negative (checked case by case for ``f̃ ≤ f``), waits at the cap only delay the real run,
    and replacing a state by a survivor with an earlier time, a later deadline and a larger
    reward keeps the invariant. So ``qoe_upper_bound`` ≥ the QoE of any policy on this
    trace, and the returned session (the programme's plan through the exact player) is one
    such policy: the true optimum is between ``qoe`` and ``qoe_upper_bound``.

    ``first_quality``: the first chunk's rung, fixed like every online algorithm's (Pensieve's
    ``dp.py`` does the same); ``None`` lets the plan choose it too (with the start-up delay
    free by default, the plan then fetches a top-rung first chunk at leisure).

    ``max_states``: when a step would keep more states, its cells are doubled until it does not
    (still an upper bound, a looser one); the largest cell used is in the result's ``algorithm``
    name when it exceeded ``grid_s``. This bounds the time on links that barely sustain the
    lowest rungs or sit exactly at a rung, where the states multiply.

    ``grid_s``: the cell size (s); smaller is tighter and slower. Cost grows with the spread of
    reachable times: fast when the link sustains the ladder (well under a second for 48 x 6),
    seconds on a link that sustains only the lowest rungs. If the programme's plan replays
    worse than the better seed rule, that rule's session is returned (still a policy, so still
    a lower end of the optimum).
    """
    chosen = video or Video()
    if not isinstance(trace, Trace):
        raise ValueError("trace must be a chatdesign.live.traces.Trace")
    _check_session_args(chosen, buffer_cap_s, rtt_s, payload_fraction)
    check_number(grid_s, "grid_s", positive=True)
    if not isinstance(count_startup, bool):
        raise ValueError(f"count_startup must be True or False, got {count_startup!r}")
    utilities = metric.utilities(chosen.ladder_kbps)
    mu, chunk_s, levels = metric.rebuffer_penalty, chosen.chunk_s, chosen.levels
    raw_sizes = chosen.sizes / payload_fraction
    eps = 1e-9

    def finish(t: np.ndarray, chunk: int) -> np.ndarray:
        """Finish times (len(t) x levels) of chunk ``chunk`` requested at times ``t``."""
        unique, inverse = np.unique(t, return_inverse=True)
        begun = trace.delivered_bytes(unique + rtt_s)
        done = trace.time_for_bytes(begun[:, None] + raw_sizes[chunk][None, :])
        result: np.ndarray = done[inverse]
        return result

    # branch and bound: a known achievable QoE (the cheap online rules, replayed exactly)
    seeds = [simulate_session(trace, rule, chosen, buffer_cap_s, rtt_s, metric=metric, count_startup=count_startup,
                              payload_fraction=payload_fraction) for rule in (RateBased(), BufferBased())]
    floor_qoe = max(r.qoe for r in seeds)
    check_whole(max_states, "max_states", minimum=100)
    coarsest_s = grid_s
    best_future = float(utilities.max())
    if first_quality is None:
        m = np.arange(levels)
    else:
        check_whole(first_quality, "first_quality", minimum=0, maximum=levels - 1)
        m = np.array([first_quality])
    f0 = finish(np.zeros(1), 0)[0][m]
    t, d = f0, f0 + chunk_s
    reward = utilities[m] - (mu * f0 if count_startup else 0.0)
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = [m.copy()]
    for chunk in range(1, chosen.n_chunks):
        done = finish(t, chunk)  # states x levels
        stall = np.maximum(done - d[:, None], 0.0)
        new_reward = (reward[:, None] + utilities[None, :] - np.abs(utilities[None, :] - utilities[m][:, None])
                      - mu * stall).ravel()
        new_d = (np.maximum(done, d[:, None]) + chunk_s).ravel()
        new_t = done.ravel()
        new_m = np.tile(np.arange(levels), len(m))
        parent = np.repeat(np.arange(len(m)), levels)
        hopeful = np.flatnonzero(new_reward + best_future * (chosen.n_chunks - 1 - chunk) >= floor_qoe - 1e-9)
        if not len(hopeful):
            break
        new_m, new_t, new_d = new_m[hopeful], new_t[hopeful], new_d[hopeful]
        new_reward, parent = new_reward[hopeful], parent[hopeful]
        cell_s = grid_s
        while True:  # coarser cells for this step if the states would exceed max_states
            ti = np.floor(new_t / cell_s + eps).astype(np.int64)
            di = np.ceil(new_d / cell_s - eps).astype(np.int64)
            keep = _pareto(new_m, ti, di, new_reward)
            if len(keep) <= max_states:
                break
            cell_s *= 2
            coarsest_s = max(coarsest_s, cell_s)
        # a kept state stands for those it dropped: the earliest time of its (rendition, time
        # cell) and the latest deadline of its (rendition, time cell, deadline cell)
        _, cell = np.unique(new_m * (int(ti.max()) + 1) + ti, return_inverse=True)
        earliest = np.full(cell.max() + 1, np.inf)
        np.minimum.at(earliest, cell, new_t)
        span_t, span_d = int(ti.max()) + 1, int(di.max()) + 1
        _, bucket = np.unique((new_m * span_t + ti) * span_d + di, return_inverse=True)
        latest = np.full(bucket.max() + 1, -np.inf)
        np.maximum.at(latest, bucket, new_d)
        m, reward = new_m[keep], new_reward[keep]
        t, d = earliest[cell[keep]], latest[bucket[keep]]
        parents.append(parent[keep])
        choices.append(m.copy())
    best_seed = max(seeds, key=lambda r: r.qoe)
    if len(choices) < chosen.n_chunks:  # nothing can beat the seeds
        return SessionResult(**{**best_seed.__dict__, "algorithm": "offline optimum", "qoe_upper_bound": floor_qoe})
    best = int(np.argmax(reward))
    bound = max(float(reward[best]), floor_qoe)
    plan = [int(choices[-1][best])]
    index = best
    for chunk in range(len(parents) - 1, -1, -1):
        index = int(parents[chunk][index])
        plan.append(int(choices[chunk][index]))
    plan.reverse()
    name = "offline optimum" if coarsest_s == grid_s else f"offline optimum (cells up to {coarsest_s:g} s)"
    result = simulate_session(trace, Plan(tuple(plan), name=name), chosen, buffer_cap_s, rtt_s,
                              metric=metric, count_startup=count_startup, payload_fraction=payload_fraction)
    if result.qoe < best_seed.qoe:
        result = SessionResult(**{**best_seed.__dict__, "algorithm": name})
    return SessionResult(**{**result.__dict__, "qoe_upper_bound": bound})


def _pareto(m: np.ndarray, ti: np.ndarray, di: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Indices of the states no other state with the same (rendition, time) beats on both the
    deadline (later is better) and the reward."""
    order = np.lexsort((-reward, -di, ti, m))
    m_s, t_s, r_s = m[order], ti[order], reward[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = (m_s[1:] != m_s[:-1]) | (t_s[1:] != t_s[:-1])
    group = np.cumsum(new_group) - 1
    spread = float(np.ptp(r_s)) + 1.0
    lifted = r_s - r_s.min() + group * spread
    best_before = np.empty(len(order))
    best_before[0] = -np.inf
    best_before[1:] = np.maximum.accumulate(lifted)[:-1]
    keep = new_group | (lifted > best_before)
    result: np.ndarray = order[keep]
    return result


# ---------------------------------------------------------------- comparisons and the CDN side


def compare_algorithms(
    traces: Sequence[Trace],
    algorithms: Sequence[AbrAlgorithm] | None = None,
    video: Video | None = None,
    buffer_cap_s: float = 60.0,
    rtt_s: float = 0.08,
    *,
    metric: QoEMetric = QOE_LIN,
    optimum: bool = True,
    grid_s: float = 0.1,
) -> tuple[pd.DataFrame, dict[str, list[SessionResult]]]:
    """Mean QoE (and its parts) of each algorithm over ``traces``, with the offline optimum.

    Returns the table (one row per algorithm, plus ``offline optimum`` and its
    ``optimum upper bound``; ``gap_to_optimum`` = 1 − mean QoE / mean optimum QoE, against the
    achieved optimum) and the sessions by algorithm name.
    """
    chosen = list(algorithms) if algorithms is not None else [RateBased(), BufferBased(), RobustMPC(), BOLA()]
    sessions = {a.name: simulate_sessions(traces, a, video, buffer_cap_s, rtt_s, metric=metric) for a in chosen}
    if optimum:
        sessions["offline optimum"] = [offline_optimal(t, video, buffer_cap_s, rtt_s, metric=metric, grid_s=grid_s)
                                       for t in traces]
    rows = []
    for name, results in sessions.items():
        parts = pd.DataFrame([r.breakdown() for r in results]).mean()
        rows.append({"algorithm": name, "qoe": parts["qoe"], "utility": parts["utility"],
                     "rebuffer_penalty": parts["rebuffer_penalty"],
                     "smoothness_penalty": parts["smoothness_penalty"],
                     "mean_bitrate_kbps": float(np.mean([r.bitrates_kbps.mean() for r in results])),
                     "rebuffer_s": float(np.mean([r.rebuffer_s for r in results]))})
    table = pd.DataFrame(rows).set_index("algorithm")
    if optimum:
        optimal = sessions["offline optimum"]
        bound = float(np.mean([r.qoe_upper_bound for r in optimal if r.qoe_upper_bound is not None]))
        table["gap_to_optimum"] = 1 - table["qoe"] / float(table["qoe"]["offline optimum"])
        table["gap_to_upper_bound"] = 1 - table["qoe"] / bound
    return table, sessions


def rendition_shares(sessions: dict[str, list[SessionResult]]) -> pd.DataFrame:
    """Share of played time at each rendition (columns, kbps) for each algorithm (rows)."""
    rows = {}
    for name, results in sessions.items():
        if not results:
            raise ValueError(f"no sessions for {name!r}")
        seconds = np.sum([r.time_per_rendition_s() for r in results], axis=0)
        rows[name] = seconds / seconds.sum()
        ladder = results[0].video.ladder_kbps
    frame = pd.DataFrame(rows, index=pd.Index(ladder, name="rendition_kbps")).T
    return frame.rename_axis("algorithm")


def rendition_egress(shares: pd.DataFrame, viewers: int, duration_s: float) -> pd.DataFrame:
    """Bytes the CDN sends per rendition: ``share x duration x kbps x 1000 / 8 x viewers``.

    ``shares`` as from :func:`rendition_shares` (rows: algorithms, columns: kbps). Adds a
    ``total`` column. This is the players' side of the bill; the edge hit ratio per rendition
    comes from the live simulation once it models renditions.
    """
    check_whole(viewers, "viewers", minimum=1)
    check_number(duration_s, "duration_s", positive=True)
    kbps = np.asarray(shares.columns, dtype=float)
    if (shares.to_numpy() < 0).any() or not np.allclose(shares.sum(axis=1), 1.0):
        raise ValueError("each row of shares must be fractions summing to 1")
    egress = shares * (kbps * 1000 / 8 * duration_s * viewers)[None, :]
    egress["total"] = egress.sum(axis=1)
    return egress


def setting_table(traces: Sequence[Trace], chunk_s: float = 4.0, buffer_cap_s: float = 60.0,
                  video_s: float = 192.0, algorithms: Sequence[AbrAlgorithm] | None = None) -> pd.DataFrame:
    """Each online algorithm with ``chunk_s`` chunks and a ``buffer_cap_s`` buffer, ``video_s``
    of video: mean bitrate (kbps), rebuffering (s), rendition switches and QoE_lin per minute
    of video (QoE sums per chunk, so per minute keeps different chunk lengths comparable).

    What notebook 09's widgets show; the chunk count is ``round(video_s / chunk_s)``.
    """
    check_number(chunk_s, "chunk_s", positive=True)
    check_number(video_s, "video_s", positive=True)
    n_chunks = max(1, round(video_s / chunk_s))
    video = Video(chunk_s=chunk_s, n_chunks=n_chunks)
    chosen = list(algorithms) if algorithms is not None else [RateBased(), BufferBased(), RobustMPC(), BOLA()]
    rows = []
    for algorithm in chosen:
        results = simulate_sessions(traces, algorithm, video, buffer_cap_s)
        rows.append({
            "algorithm": algorithm.name,
            "mean_bitrate_kbps": round(float(np.mean([r.bitrates_kbps.mean() for r in results])), 1),
            "rebuffer_s": round(float(np.mean([r.rebuffer_s for r in results])), 2),
            "switches": round(float(np.mean([np.count_nonzero(np.diff(r.qualities)) for r in results])), 1),
            "qoe_per_minute": round(float(np.mean([r.qoe for r in results])) * 60 / video.duration_s, 2),
        })
    return pd.DataFrame(rows).set_index("algorithm")


def check_rendition_egress(answer_bytes: float | None, viewers: int, bitrate_kbps: float,
                           duration_s: float) -> CheckResult:
    """Self-check for notebook 09: bytes the CDN sends when ``viewers`` watch ``duration_s`` at
    ``bitrate_kbps``. Passes within 10 %; a factor of 8 or 1000 off is named as the likely slip
    (bits vs bytes, kilo), without giving the expected value."""
    if answer_bytes is None:
        return CheckResult("CDN egress", False, "not answered yet: multiply viewers, seconds and the "
                           "bitrate, and mind bits versus bytes")
    expected = rendition_egress(pd.DataFrame({float(bitrate_kbps): [1.0]}), viewers, duration_s)["total"].iloc[0]
    check = check_number(answer_bytes, "answer_bytes")
    ratio = check / float(expected)
    if abs(ratio - 1) <= 0.1:
        return CheckResult("CDN egress", True, "within 10 % of the simulation's figure")
    for factor, slip in ((8, "bits, not bytes: divide by 8"), (1 / 8, "bytes were divided by 8 twice"),
                         (1000, "kilobits are 1000 bits; the answer is 1000x too big"),
                         (1 / 1000, "the answer is 1000x too small: kbps x 1000 = bits per second")):
        if abs(ratio / factor - 1) <= 0.1:
            return CheckResult("CDN egress", False, f"off by a factor of {factor:g}: {slip}")
    return CheckResult("CDN egress", False, f"too {'high' if ratio > 1 else 'low'} by {ratio:.2g}x")
