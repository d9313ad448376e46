"""The CP vs AP partition simulation."""

from __future__ import annotations

import pytest

from chatdesign.chat.replication import (
    PartitionScenario,
    compare_consistency_modes,
    expected_cp_availability,
    simulate_partition,
)


def test_cp_refuses_minority_writes_and_has_no_anomalies() -> None:
    scenario = PartitionScenario(seed=1)
    cp = simulate_partition("CP", scenario)
    assert cp.refused > 0
    assert (cp.duplicates, cp.seq_conflicts, cp.renumbered) == (0, 0, 0)
    expected = expected_cp_availability(5, 2, scenario.partition_fraction)
    assert cp.availability == pytest.approx(expected, abs=0.05)
    assert cp.partition_availability == pytest.approx(0.6, abs=0.08)


def test_ap_accepts_everything_and_must_reconcile() -> None:
    ap = simulate_partition("AP", PartitionScenario(seed=1))
    assert ap.availability == 1.0 and ap.refused == 0
    assert ap.seq_conflicts > 0 and ap.renumbered > 0 and ap.duplicates > 0


def test_both_modes_see_the_same_workload_and_runs_repeat() -> None:
    scenario = PartitionScenario(seed=7)
    table = compare_consistency_modes(scenario)
    assert table["mode"].tolist() == ["CP", "AP", "AP-merge"]
    assert table["attempted"].nunique() == 1
    assert simulate_partition("AP", scenario) == simulate_partition("AP", scenario)


def test_ap_merge_has_no_seq_anomalies_and_removes_retried_duplicates() -> None:
    scenario = PartitionScenario(seed=1)
    ap, merged = simulate_partition("AP", scenario), simulate_partition("AP-merge", scenario)
    assert merged.availability == 1.0
    # Time-sortable ids cannot collide and need no renumbering; the merge drops the retries
    # that AP stored twice (same arrivals, same retries, so the same count).
    assert (merged.duplicates, merged.seq_conflicts, merged.renumbered) == (0, 0, 0)
    assert merged.deduplicated_on_merge == ap.duplicates > 0
    # What no id scheme removes: the other side's messages land inside history already seen.
    assert merged.inserted_before_seen > 0 and ap.inserted_before_seen > 0
    assert simulate_partition("CP", scenario).inserted_before_seen == 0


def test_ap_merge_inserted_count_is_the_interleaving() -> None:
    # Two replicas, one on each side, both written during a partition that lasts to the end
    # of the run (so the heal happens after the last step): some of one side's messages must
    # sort before the last message the other side saw, and never more than were written.
    scenario = PartitionScenario(n_replicas=2, minority_size=1, steps=10, partition_start=5,
                                 partition_end=10, writes_per_step=3.0, seed=2)
    result = simulate_partition("AP-merge", scenario)
    assert result.attempted > 0 and result.inserted_before_seen > 0
    partition_writes = sum(result.attempted_per_step[5:])
    assert result.inserted_before_seen <= partition_writes


def test_without_partition_the_modes_agree() -> None:
    scenario = PartitionScenario(partition_start=0, partition_end=0, seed=3)
    cp, ap = simulate_partition("CP", scenario), simulate_partition("AP", scenario)
    assert cp.availability == ap.availability == 1.0
    assert (ap.duplicates, ap.seq_conflicts, ap.renumbered) == (0, 0, 0)


def test_no_lost_acks_no_duplicates() -> None:
    ap = simulate_partition("AP", PartitionScenario(lost_ack_probability=0.0))
    assert ap.duplicates == 0 and ap.seq_conflicts > 0
    merged = simulate_partition("AP-merge", PartitionScenario(lost_ack_probability=0.0))
    assert merged.deduplicated_on_merge == 0


def test_result_frames() -> None:
    result = simulate_partition("CP", PartitionScenario(steps=20, partition_start=5,
                                                         partition_end=10))
    assert len(result.timeline_frame()) == 20
    assert result.timeline_frame()["time_s"].iloc[-1] == 19.0
    assert result.timeline_frame()["attempted"].sum() == result.attempted
    assert result.to_frame().loc[0, "availability"] == result.availability
    assert repr(result).startswith("ReplicationResult(CP: availability")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_replicas": 1}, "n_replicas"), ({"minority_size": 3}, "minority_size"),
     ({"partition_end": 300}, "partition_start"), ({"writes_per_step": 0}, "writes_per_step"),
     ({"lost_ack_probability": 1.0}, "lost_ack"), ({"seed": -1}, "seed"),
     ({"steps": 2.5}, "steps"), ({"step_s": 0}, "step_s")],
)
def test_scenario_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PartitionScenario(**kwargs)  # type: ignore[arg-type]


def test_step_duration() -> None:
    scenario = PartitionScenario(step_s=0.5)
    assert scenario.duration_s == 100.0 and scenario.partition_duration_s == 50.0
    assert scenario.writes_per_s == 4.0
    assert simulate_partition("CP", scenario).timeline_frame()["time_s"].iloc[1] == 0.5


def test_bad_mode_and_expectation_inputs() -> None:
    with pytest.raises(ValueError, match="mode"):
        simulate_partition("CA", PartitionScenario())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition_fraction"):
        expected_cp_availability(5, 2, 1.5)
    assert expected_cp_availability(5, 2, 0.5) == pytest.approx(0.8)
