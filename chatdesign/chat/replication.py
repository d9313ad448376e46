"""CP vs AP under a network partition: a small, seeded simulation of a replicated chat log.

The seed's non-functional goals list "Availability: CP vs AP". This model makes the choice
concrete for one conversation stored on ``n_replicas`` replicas:

- Time runs in steps of ``step_s`` seconds (1 s by default). Each step, a Poisson number of
  clients send a message to a replica picked uniformly at random (clients can reach every
  replica; the partition is *between* replicas).
- From ``partition_start`` to ``partition_end`` the last ``minority_size`` replicas cannot talk
  to the others.
- **CP** (majority quorum): a write commits only where a majority of replicas is reachable.
  On the minority side writes are refused; the log stays one log, with no anomalies.
- **AP** (``"AP"``): every replica accepts. Each side extends its own copy of the log and hands
  out the next gap-free ``seq`` it knows, so both sides use the same seqs. At the heal the logs
  merge by (server step, side), so messages get renumbered and some seqs were given to two
  messages.
- **AP with time-sortable ids** (``"AP-merge"``): every replica accepts, but a message gets a
  time-sortable id (step, then replica side: a snowflake in spirit) instead of a gap-free
  ``seq``, so two sides can never hand out the same id and nothing needs renumbering; the merge
  at the heal sorts by id and **de-duplicates by** ``client_message_id``. What remains is what
  no id scheme removes: messages written on one side appear, after the heal, *before* messages
  the other side had already seen (``inserted_before_seen``).
- A client whose acknowledgement is lost (``lost_ack_probability``) retries once, at the next
  step, on another random replica. The retry is deduplicated by its ``client_message_id`` if
  that replica's log already has it; across the partition (AP) it is stored a second time,
  and in AP-merge it is removed again at the heal (``deduplicated_on_merge``).

Counts are of messages; a step lasts ``step_s`` seconds. Every random draw comes from ``seed``.

Taught in ``notebooks/03_consistency.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from chatdesign.checks import check_fraction, check_number, check_whole

ConsistencyMode = Literal["CP", "AP", "AP-merge"]
CONSISTENCY_MODES: tuple[ConsistencyMode, ...] = ("CP", "AP", "AP-merge")
"""The modes :func:`simulate_partition` runs, in the order :func:`compare_consistency_modes` lists them."""


@dataclass(frozen=True)
class PartitionScenario:
    """The workload and the partition: replica count, minority side size, the partition's
    window in steps (``partition_start`` inclusive, ``partition_end`` exclusive), the mean
    writes per step, the chance an acknowledgement is lost, the seed, and how long one step
    lasts (``step_s``, seconds: with the defaults, 2 writes/s to one conversation and a 100-s
    partition)."""

    n_replicas: int = 5
    minority_size: int = 2
    steps: int = 200
    partition_start: int = 50
    partition_end: int = 150
    writes_per_step: float = 2.0
    lost_ack_probability: float = 0.1
    seed: int = 0
    step_s: float = 1.0

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
        check_number(self.step_s, "step_s", positive=True)

    @property
    def partition_fraction(self) -> float:
        """The share of the steps spent partitioned."""
        return (self.partition_end - self.partition_start) / self.steps

    @property
    def duration_s(self) -> float:
        """The whole run, in seconds."""
        return self.steps * self.step_s

    @property
    def partition_duration_s(self) -> float:
        """How long the partition lasts, in seconds."""
        return (self.partition_end - self.partition_start) * self.step_s

    @property
    def writes_per_s(self) -> float:
        """The mean arrival rate of new messages, per second."""
        return self.writes_per_step / self.step_s


@dataclass(frozen=True)
class ReplicationResult:
    """What one mode did in one scenario: writes attempted, accepted and refused (first
    attempts), availability (accepted / attempted, overall and during the partition) and the
    anomalies a reader must reconcile after the heal: ``duplicates`` (one message stored twice),
    ``seq_conflicts`` (one seq given to two messages), ``renumbered`` (messages whose seq
    changed at the merge), ``inserted_before_seen`` (messages that after the heal sort before
    a message the other side had already seen) and ``deduplicated_on_merge`` (retries the
    AP-merge heal removed)."""

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
    inserted_before_seen: int
    deduplicated_on_merge: int
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
            f"{self.renumbered} renumbered, {self.inserted_before_seen} inserted before seen)"
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
            "inserted_before_seen": self.inserted_before_seen,
            "deduplicated_on_merge": self.deduplicated_on_merge,
        }])

    def timeline_frame(self) -> pd.DataFrame:
        """One row per step: its start in seconds, writes attempted and accepted (first attempts)."""
        return pd.DataFrame({
            "step": np.arange(self.scenario.steps),
            "time_s": np.arange(self.scenario.steps) * self.scenario.step_s,
            "attempted": self.attempted_per_step,
            "accepted": self.accepted_per_step,
        })


@dataclass
class _Entry:
    client_message_id: int
    step: int
    side: int
    seen_seq: int | None
    """The seq a reader was shown when the message was stored; ``None`` for an AP-merge
    message written during the partition, which has only its time-sortable id."""

    @property
    def order_key(self) -> tuple[int, int]:
        """The merge order: the step it was stored in, then the side (a time-sortable id)."""
        return (self.step, self.side)


def _merge(sides: dict[int, list[_Entry]], deduplicate: bool) -> tuple[list[_Entry], int, int]:
    """Merge the two sides' logs at the heal by time-sortable id. Returns the merged entries,
    how many sort before a message the *other* side had already seen, and how many retries
    the de-duplication by ``client_message_id`` removed."""
    merged = sorted(sides[0] + sides[1], key=lambda e: e.order_key)
    removed = 0
    if deduplicate:
        seen_ids: set[int] = set()
        kept: list[_Entry] = []
        for entry in merged:
            if entry.client_message_id in seen_ids:
                removed += 1
                continue
            seen_ids.add(entry.client_message_id)
            kept.append(entry)
        merged = kept
    last_seen = {side: max((e.order_key for e in entries), default=None) for side, entries in sides.items()}
    inserted = 0
    for entry in merged:
        other = last_seen[1 - entry.side]
        inserted += int(other is not None and entry.order_key < other)
    return merged, inserted, removed


def simulate_partition(mode: ConsistencyMode, scenario: PartitionScenario) -> ReplicationResult:
    """Run the scenario in ``"CP"``, ``"AP"`` or ``"AP-merge"`` mode (see the module docstring)."""
    if mode not in CONSISTENCY_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, CONSISTENCY_MODES))}, got {mode!r}")
    rng = np.random.default_rng(scenario.seed)
    n, m = scenario.n_replicas, scenario.minority_size
    majority_side, minority_side = 0, 1
    # Before the partition and after the heal there is one log (``common``). During it, AP keeps
    # one log per side; CP keeps only the majority's.
    common: list[_Entry] = []
    sides: dict[int, list[_Entry]] = {majority_side: [], minority_side: []}
    attempted_per_step = np.zeros(scenario.steps, dtype=int)
    accepted_per_step = np.zeros(scenario.steps, dtype=int)
    retries: list[int] = []
    next_client_id = 0
    partition_attempted = partition_accepted = 0
    inserted = removed = 0

    def known(side: int, client_message_id: int, partitioned: bool) -> bool:
        logs = [common] + ([sides[side]] if partitioned else [sides[0], sides[1]])
        return any(e.client_message_id == client_message_id for log in logs for e in log)

    def store(side: int, client_message_id: int, step: int, partitioned: bool) -> None:
        if partitioned:
            seq = None if mode == "AP-merge" else len(common) + len(sides[side]) + 1
            sides[side].append(_Entry(client_message_id, step, side, seq))
        else:
            common.append(_Entry(client_message_id, step, side, len(common) + 1))

    def heal() -> None:
        nonlocal inserted, removed
        merged, inserted, removed = _merge(sides, deduplicate=mode == "AP-merge")
        common.extend(merged)

    # Draw everything up front, per client, so every mode sees the very same workload.
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
            heal()
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
                store(majority_side if mode == "CP" else side, client_id, step, partitioned)
            if first_attempt and lost_ack[client_id]:
                retries.append(client_id)
    if not healed:
        heal()

    final_seq = {id(e): i + 1 for i, e in enumerate(common)}
    client_ids = [e.client_message_id for e in common]
    shown = [e.seen_seq for e in common if e.seen_seq is not None]
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
        seq_conflicts=len(shown) - len(set(shown)),
        renumbered=sum(e.seen_seq is not None and final_seq[id(e)] != e.seen_seq for e in common),
        inserted_before_seen=inserted,
        deduplicated_on_merge=removed,
        attempted_per_step=tuple(int(x) for x in attempted_per_step),
        accepted_per_step=tuple(int(x) for x in accepted_per_step),
    )


def compare_consistency_modes(scenario: PartitionScenario) -> pd.DataFrame:
    """CP, AP and AP-merge on the same scenario (the same seed, so the same arrivals), one row each."""
    return pd.concat(
        [simulate_partition(mode, scenario).to_frame() for mode in CONSISTENCY_MODES],
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
