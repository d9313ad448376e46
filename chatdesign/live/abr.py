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
trace whose states are the player's own, unrounded: (last rendition, time of the next request,
play-out deadline, reward). It drops only states that another provably matches in every future
(no later request, no later deadline, a reward lead that pays for the deadline difference as
stalling) and states that cannot reach a QoE a simple policy already reaches. So it is the
**exact** optimum of this player model, the buffer cap included, up to floating-point rounding;
its plan replayed through the player gives the same QoE (checked on every call), and tests compare
it with brute force over all plans on short traces.

Taught in ``notebooks/09_adaptive_bitrate.ipynb``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
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
    ``qoe`` is under ``metric`` with ``count_startup``.
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
        return (f"SessionResult({self.algorithm} on {self.trace_name!r}: QoE {self.qoe:.2f}, "
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
    first_quality: int | None = DEFAULT_QUALITY,
    max_states: int = 200_000,
) -> SessionResult:
    """The best rendition plan for a known trace: an exact dynamic programme, replayed through the player.

    States after each chunk are the player's own, unrounded: the rendition just fetched ``m``,
    the time of the next request ``s``, the play-out deadline ``d`` (the wall time at which the
    buffer would run dry; the buffer is ``d - s``) and the reward so far ``R``. Each state grows
    one child per rendition by exactly the player's step: the chunk is requested at ``s`` and
    done at ``f`` (one RTT, then its bytes over the trace), the stall is ``max(f - d, 0)``,
    ``d`` becomes ``max(f, d) + chunk_s`` and ``s`` becomes ``max(f, d - buffer_cap_s)`` (the
    wait at the cap). Nothing is merged or rounded; states are only *dropped*, by two rules that
    cannot drop the optimum:

    - **dominance**: a state A drops a state B of the same rendition when ``s_A <= s_B``,
      ``d_A <= d_B`` and ``R_A + mu d_A >= R_B + mu d_B`` (``mu``: the metric's rebuffer
      penalty). Proof: give A the renditions B would fetch. A transfer that starts no later ends
      no later (``f_A <= f_B``), so ``max(f, d) + chunk_s`` and ``max(f, d - cap)`` keep their
      order; ``R + mu d`` grows by the same amount in both (the same utility and smoothness
      terms, and a stall of x seconds costs ``mu x`` and moves ``d`` by x); so the three
      relations hold after every chunk, and at the end ``R_A = (R_A + mu d_A) - mu d_A >=
      R_B``. (The tempting converse, "more buffer is better", has no such proof: at the cap
      the player must wait, and a wait can push its next request into a slump that an earlier
      request would have beaten. The programme does not use it and keeps such states.)
    - **branch and bound**: a state whose reward plus the top utility for every remaining
      chunk is below the QoE of the better of :class:`RateBased` and :class:`BufferBased` on
      this trace (real policies, replayed exactly) cannot lead to the optimum.

    So the programme's best reward is the optimum over *all* rendition plans for this player
    model, exact up to floating-point rounding. Its plan is replayed through the player
    (:func:`simulate_session`) and the replay's QoE must equal the programme's to within 1e-6
    (else ``RuntimeError``: a bug, not an approximation). Tested against brute force over every
    plan on short traces (``tests/live/test_abr.py``).

    ``first_quality``: the first chunk's rung, fixed like every online algorithm's (Pensieve's
    ``dp.py`` does the same); ``None`` lets the plan choose it too (with the start-up delay
    free by default, the plan then fetches a top-rung first chunk at leisure).

    ``max_states``: a guard on memory and time. If a step would keep more states than this, a
    ``ValueError`` says so (the programme never coarsens silently). Cost grows with the number
    of distinct (time, deadline, reward) trade-offs: on the sample traces (48 chunks x 6
    bitrates) about 0.1 s on a link that sustains the ladder and about 1 s on the 3G ones,
    where a few thousand states per step survive (``benchmarks/abr.py``).
    """
    chosen = video or Video()
    if not isinstance(trace, Trace):
        raise ValueError("trace must be a chatdesign.live.traces.Trace")
    _check_session_args(chosen, buffer_cap_s, rtt_s, payload_fraction)
    if not isinstance(count_startup, bool):
        raise ValueError(f"count_startup must be True or False, got {count_startup!r}")
    check_whole(max_states, "max_states", minimum=1)
    levels, n, chunk_s = chosen.levels, chosen.n_chunks, chosen.chunk_s
    if first_quality is not None:
        check_whole(first_quality, "first_quality", minimum=0, maximum=levels - 1)
    utilities = metric.utilities(chosen.ladder_kbps)
    mu = metric.rebuffer_penalty
    raw_sizes = chosen.sizes / payload_fraction

    def finish(s: np.ndarray, chunk: int) -> np.ndarray:
        """Finish times (len(s) x levels) of chunk ``chunk`` requested at times ``s``."""
        unique, inverse = np.unique(s, return_inverse=True)
        begun = trace.delivered_bytes(unique + rtt_s)
        done = trace.time_for_bytes(begun[:, None] + raw_sizes[chunk][None, :])
        result: np.ndarray = done[inverse]
        return result

    # branch and bound: a QoE that real policies reach (the cheap online rules, replayed exactly)
    seeds = [simulate_session(trace, rule, chosen, buffer_cap_s, rtt_s, metric=metric, count_startup=count_startup,
                              payload_fraction=payload_fraction) for rule in (RateBased(), BufferBased())]
    floor_qoe = max(r.qoe for r in seeds)
    floor_qoe -= 1e-6 * max(1.0, abs(floor_qoe))  # rounding: the seed's own plan must survive
    best_future = max(float(utilities.max()), 0.0)
    m = np.arange(levels) if first_quality is None else np.array([first_quality])
    done = finish(np.zeros(1), 0)[0][m]
    d = done + chunk_s
    s = np.maximum(done, d - buffer_cap_s)
    reward = utilities[m] - (mu * done if count_startup else 0.0)
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = [m.copy()]
    for chunk in range(1, n):
        done = finish(s, chunk)  # states x levels
        stall = np.maximum(done - d[:, None], 0.0)
        new_reward = (reward[:, None] + utilities[None, :] - np.abs(utilities[None, :] - utilities[m][:, None])
                      - mu * stall).ravel()
        new_d = (np.maximum(done, d[:, None]) + chunk_s).ravel()
        new_s = np.maximum(done.ravel(), new_d - buffer_cap_s)
        new_m = np.tile(np.arange(levels), len(m))
        hopeful = np.flatnonzero(new_reward + best_future * (n - 1 - chunk) >= floor_qoe)
        keep = hopeful[_undominated(new_m[hopeful], new_s[hopeful], new_d[hopeful],
                                    new_reward[hopeful] + mu * new_d[hopeful])]
        if len(keep) > max_states:
            raise ValueError(f"the offline optimum would keep {len(keep)} states after chunk {chunk}, more than "
                             f"max_states={max_states}; raise max_states (it never coarsens)")
        if not len(keep):
            raise RuntimeError("offline_optimal dropped every state: the seed policies' own plans should survive")
        m, s, d, reward = new_m[keep], new_s[keep], new_d[keep], new_reward[keep]
        parents.append(keep // levels)
        choices.append(m.copy())
    best = int(np.argmax(reward))
    plan = [int(choices[-1][best])]
    index = best
    for chunk in range(len(parents) - 1, -1, -1):
        index = int(parents[chunk][index])
        plan.append(int(choices[chunk][index]))
    plan.reverse()
    result = simulate_session(trace, Plan(tuple(plan), name="offline optimum"), chosen, buffer_cap_s, rtt_s,
                              metric=metric, count_startup=count_startup, payload_fraction=payload_fraction)
    value = float(reward[best])
    if abs(result.qoe - value) > 1e-6 * max(1.0, abs(value)):
        raise RuntimeError(f"offline_optimal's plan replays to QoE {result.qoe!r}, the programme said {value!r}")
    return result


def _undominated(m: np.ndarray, s: np.ndarray, d: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Indices of the states that no other state of the same rendition ``m`` dominates: none has
    a next request no later (``s``), a deadline no later (``d``) and ``k = R + mu d`` no smaller
    (see :func:`offline_optimal`). Of identical states one is kept.

    A sweep in order of ``s`` keeps, per rendition, the staircase of the (k, d) pairs seen so
    far that are undominated (k falling, d falling); a state is dropped when the staircase has
    a pair with k' >= k and d' <= d, found by bisection.
    """
    order = np.lexsort((d, -k, s, m))
    ms, ks, ds = m[order].tolist(), k[order].tolist(), d[order].tolist()
    keep: list[int] = []
    group = None
    neg_k: list[float] = []  # the staircase, by k falling (stored negated, rising, for bisect)
    stair_d: list[float] = []  # its deadlines, falling
    for position, (rung, key, deadline) in enumerate(zip(ms, ks, ds, strict=True)):
        if rung != group:
            group, neg_k, stair_d = rung, [], []
        p = bisect_right(neg_k, -key)  # staircase pairs with k' >= key are neg_k[:p]
        if p and stair_d[p - 1] <= deadline:
            continue
        keep.append(position)
        q = bisect_left(neg_k, -key)  # pairs with k' <= key start here; drop those with d' >= deadline
        end = q
        while end < len(stair_d) and stair_d[end] >= deadline:
            end += 1
        neg_k[q:end] = [-key]
        stair_d[q:end] = [deadline]
    result: np.ndarray = order[np.array(keep, dtype=np.int64)]
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
) -> tuple[pd.DataFrame, dict[str, list[SessionResult]]]:
    """Mean QoE (and its parts) of each algorithm over ``traces``, with the offline optimum.

    Returns the table (one row per algorithm, plus ``offline optimum``; ``gap_to_optimum`` =
    1 − mean QoE / mean optimum QoE) and the sessions by algorithm name.
    """
    chosen = list(algorithms) if algorithms is not None else [RateBased(), BufferBased(), RobustMPC(), BOLA()]
    sessions = {a.name: simulate_sessions(traces, a, video, buffer_cap_s, rtt_s, metric=metric) for a in chosen}
    if optimum:
        sessions["offline optimum"] = [offline_optimal(t, video, buffer_cap_s, rtt_s, metric=metric) for t in traces]
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
        table["gap_to_optimum"] = 1 - table["qoe"] / float(table["qoe"]["offline optimum"])
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
