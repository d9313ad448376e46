"""CP vs AP under a network partition: a small, seeded simulation of a replicated chat log.

The seed's non-functional goals list "Availability: CP vs AP". This model makes the choice
concrete for one conversation stored on ``n_replicas`` replicas:

- Time runs in steps. Each step, a Poisson number of clients send a message to a replica picked
  uniformly at random (clients can reach every replica; the partition is *between* replicas).
- From ``partition_start`` to ``partition_end`` the last ``minority_size`` replicas cannot talk
  to the others.
- **CP** (majority quorum): a write commits only where a majority of replicas is reachable.
  On the minority side writes are refused; the log stays one log, with no anomalies.
- **AP**: every replica accepts. Each side extends its own copy of the log and hands out the
  next ``seq`` it knows, so both sides use the same seqs. At the heal the logs merge by
  (server step, side), so messages get renumbered and some seqs were given to two messages.
- A client whose acknowledgement is lost (``lost_ack_probability``) retries once, at the next
  step, on another random replica. The retry is deduplicated by its ``client_message_id`` if
  that replica's log already has it; across the partition (AP) it is stored a second time.

Counts are of messages; ``steps`` are abstract ticks. Every random draw comes from ``seed``.

Taught in ``notebooks/03_consistency.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole

ConsistencyMode = Literal["CP", "AP"]


@dataclass(frozen=True)
class PartitionScenario:
    """The workload and the partition: replica count, minority side size, the partition's
    window in steps (``partition_start`` inclusive, ``partition_end`` exclusive), the mean
    writes per step, the chance an acknowledgement is lost, and the seed."""

    n_replicas: int = 5
    minority_size: int = 2
    steps: int = 200
    partition_start: int = 50
    partition_end: int = 150
    writes_per_step: float = 2.0
    lost_ack_probability: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_replicas", "minority_size", "steps", "partition_start",
                     "partition_end", "seed"):
            check_whole(getattr(self, name), name, minimum=None)
        if self.n_replicas < 2:
            raise ValueError(f"n_replicas must be >= 2, got {self.n_replicas}")
        if not 1 <= self.minority_size <= self.n_replicas // 2:
            raise ValueError(
                f"minority_size must be 1..{self.n_replicas // 2} (less than half of "
                f"{self.n_replicas} replicas), got {self.minority_size}"
            )
        if not 0 <= self.partition_start <= self.partition_end <= self.steps:
            raise ValueError("need 0 <= partition_start <= partition_end <= steps")
        check_number(self.writes_per_step, "writes_per_step", positive=True)
        if check_fraction(self.lost_ack_probability, "lost_ack_probability") == 1:
            raise ValueError("lost_ack_probability must be below 1: with every ack lost nothing is acknowledged")
        check_whole(self.seed, "seed")

    @property
    def partition_fraction(self) -> float:
        """The share of the steps spent partitioned."""
        return (self.partition_end - self.partition_start) / self.steps


@dataclass(frozen=True)
class ReplicationResult:
    """What one mode did in one scenario: writes attempted, accepted and refused (first
    attempts), availability (accepted / attempted, overall and during the partition) and the
    anomalies a reader must reconcile after the heal."""

    mode: ConsistencyMode
    scenario: PartitionScenario
    attempted: int
    accepted: int
    refused: int
    partition_attempted: int
    partition_accepted: int
    duplicates: int
    seq_conflicts: int
    renumbered: int
    attempted_per_step: tuple[int, ...]
    accepted_per_step: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.accepted + self.refused != self.attempted:
            raise ValueError("accepted + refused must equal attempted")
        if len(self.attempted_per_step) != self.scenario.steps:
            raise ValueError("one count per step")

    @property
    def availability(self) -> float:
        """Accepted / attempted writes over the whole run (1.0 if nothing was attempted)."""
        return self.accepted / self.attempted if self.attempted else 1.0

    @property
    def partition_availability(self) -> float:
        """Accepted / attempted writes while partitioned."""
        if not self.partition_attempted:
            return 1.0
        return self.partition_accepted / self.partition_attempted

    def __repr__(self) -> str:
        return (
            f"ReplicationResult({self.mode}: availability {self.availability:.1%}, "
            f"{self.duplicates} duplicates, {self.seq_conflicts} seq conflicts, "
            f"{self.renumbered} renumbered)"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row: the mode, its counts, availabilities and anomalies."""
        return pd.DataFrame([{
            "mode": self.mode,
            "attempted": self.attempted,
            "accepted": self.accepted,
            "refused": self.refused,
            "availability": self.availability,
            "partition_availability": self.partition_availability,
            "duplicates": self.duplicates,
            "seq_conflicts": self.seq_conflicts,
            "renumbered": self.renumbered,
        }])

    def timeline_frame(self) -> pd.DataFrame:
        """One row per step: writes attempted and accepted (first attempts)."""
        return pd.DataFrame({
            "step": np.arange(self.scenario.steps),
            "attempted": self.attempted_per_step,
            "accepted": self.accepted_per_step,
        })


@dataclass
class _Entry:
    client_message_id: int
    step: int
    side: int
    seen_seq: int


def simulate_partition(mode: ConsistencyMode, scenario: PartitionScenario) -> ReplicationResult:
    """Run the scenario in ``"CP"`` or ``"AP"`` mode (see the module docstring)."""
    if mode not in ("CP", "AP"):
        raise ValueError(f"mode must be 'CP' or 'AP', got {mode!r}")
    rng = np.random.default_rng(scenario.seed)
    n, m = scenario.n_replicas, scenario.minority_size
    majority_side, minority_side = 0, 1
    # Before the partition and after the heal there is one log (index 0). During it, AP keeps
    # one log per side; CP keeps only the majority's.
    common: list[_Entry] = []
    sides: dict[int, list[_Entry]] = {majority_side: [], minority_side: []}
    attempted_per_step = np.zeros(scenario.steps, dtype=int)
    accepted_per_step = np.zeros(scenario.steps, dtype=int)
    retries: list[int] = []
    next_client_id = 0
    partition_attempted = partition_accepted = 0

    def known(side: int, client_message_id: int, partitioned: bool) -> bool:
        logs = [common] + ([sides[side]] if partitioned else [sides[0], sides[1]])
        return any(e.client_message_id == client_message_id for log in logs for e in log)

    def store(side: int, client_message_id: int, step: int, partitioned: bool) -> None:
        if partitioned:
            seq = len(common) + len(sides[side]) + 1
            sides[side].append(_Entry(client_message_id, step, side, seq))
        else:
            common.append(_Entry(client_message_id, step, side, len(common) + 1))

    # Draw everything up front, per client, so CP and AP see the very same workload.
    arrivals = rng.poisson(scenario.writes_per_step, size=scenario.steps)
    total = int(arrivals.sum())
    first_replica = rng.integers(n, size=total)
    lost_ack = rng.random(total) < scenario.lost_ack_probability
    retry_replica = rng.integers(n, size=total)

    healed = False
    for step in range(scenario.steps):
        partitioned = scenario.partition_start <= step < scenario.partition_end
        if not partitioned and not healed and step >= scenario.partition_end:
            healed = True
            common.extend(sorted(sides[0] + sides[1], key=lambda e: (e.step, e.side)))
        writes = [(next_client_id + i, True) for i in range(int(arrivals[step]))]
        next_client_id += int(arrivals[step])
        writes += [(client_id, False) for client_id in retries]
        retries = []
        attempted_per_step[step] = arrivals[step]
        for client_id, first_attempt in writes:
            replica = int(first_replica[client_id] if first_attempt else retry_replica[client_id])
            side = minority_side if replica >= n - m else majority_side
            writable = not (partitioned and mode == "CP" and side == minority_side)
            if first_attempt:
                partition_attempted += int(partitioned)
                if writable:
                    accepted_per_step[step] += 1
                    partition_accepted += int(partitioned)
            if not writable:
                continue
            if not known(side, client_id, partitioned):
                store(side if mode == "AP" else majority_side, client_id, step, partitioned)
            if first_attempt and lost_ack[client_id]:
                retries.append(client_id)
    if not healed:
        common.extend(sorted(sides[0] + sides[1], key=lambda e: (e.step, e.side)))

    final_seq = {id(e): i + 1 for i, e in enumerate(common)}
    client_ids = [e.client_message_id for e in common]
    seen = [e.seen_seq for e in common]
    attempted = int(attempted_per_step.sum())
    accepted = int(accepted_per_step.sum())
    return ReplicationResult(
        mode=mode,
        scenario=scenario,
        attempted=attempted,
        accepted=accepted,
        refused=attempted - accepted,
        partition_attempted=partition_attempted,
        partition_accepted=partition_accepted,
        duplicates=len(client_ids) - len(set(client_ids)),
        seq_conflicts=len(seen) - len(set(seen)),
        renumbered=sum(final_seq[id(e)] != e.seen_seq for e in common),
        attempted_per_step=tuple(int(x) for x in attempted_per_step),
        accepted_per_step=tuple(int(x) for x in accepted_per_step),
    )


def compare_consistency_modes(scenario: PartitionScenario) -> pd.DataFrame:
    """CP and AP on the same scenario (the same seed, so the same arrivals), one row each."""
    return pd.concat(
        [simulate_partition(mode, scenario).to_frame() for mode in ("CP", "AP")],
        ignore_index=True,
    )


def expected_cp_availability(n_replicas: int, minority_size: int, partition_fraction: float) -> float:
    """CP's expected availability when clients pick replicas uniformly: writes that land on
    the minority side during the partition are refused, so
    ``1 - minority_size / n_replicas x partition_fraction``."""
    if not 1 <= minority_size <= n_replicas // 2:
        raise ValueError("minority_size must be 1..n_replicas // 2")
    check_fraction(partition_fraction, "partition_fraction")
    return 1 - minority_size / n_replicas * partition_fraction
