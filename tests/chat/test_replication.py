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
    assert table["mode"].tolist() == ["CP", "AP"]
    assert table["attempted"].nunique() == 1
    assert simulate_partition("AP", scenario) == simulate_partition("AP", scenario)


def test_without_partition_the_modes_agree() -> None:
    scenario = PartitionScenario(partition_start=0, partition_end=0, seed=3)
    cp, ap = simulate_partition("CP", scenario), simulate_partition("AP", scenario)
    assert cp.availability == ap.availability == 1.0
    assert (ap.duplicates, ap.seq_conflicts, ap.renumbered) == (0, 0, 0)


def test_no_lost_acks_no_duplicates() -> None:
    ap = simulate_partition("AP", PartitionScenario(lost_ack_probability=0.0))
    assert ap.duplicates == 0 and ap.seq_conflicts > 0


def test_result_frames() -> None:
    result = simulate_partition("CP", PartitionScenario(steps=20, partition_start=5,
                                                         partition_end=10))
    assert len(result.timeline_frame()) == 20
    assert result.timeline_frame()["attempted"].sum() == result.attempted
    assert result.to_frame().loc[0, "availability"] == result.availability
    assert repr(result).startswith("ReplicationResult(CP: availability")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_replicas": 1}, "n_replicas"), ({"minority_size": 3}, "minority_size"),
     ({"partition_end": 300}, "partition_start"), ({"writes_per_step": 0}, "writes_per_step"),
     ({"lost_ack_probability": 1.0}, "lost_ack"), ({"seed": -1}, "seed"),
     ({"steps": 2.5}, "steps")],
)
def test_scenario_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PartitionScenario(**kwargs)  # type: ignore[arg-type]


def test_bad_mode_and_expectation_inputs() -> None:
    with pytest.raises(ValueError, match="mode"):
        simulate_partition("CA", PartitionScenario())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition_fraction"):
        expected_cp_availability(5, 2, 1.5)
    assert expected_cp_availability(5, 2, 0.5) == pytest.approx(0.8)
