"""Self-checks must accept right answers and reject wrong ones with the reason."""

import pytest

from chatdesign.exercises import CheckReport, MessengerScenario, check_messenger_estimate, check_within


def test_check_within_accepts_and_explains() -> None:
    result = check_within("peak", 105, 100, rel_tol=0.1, unit="rps")
    assert result.passed
    assert "within 10%" in str(result)


def test_check_within_says_too_high_or_low_without_the_answer() -> None:
    high = check_within("peak", 300, 100, rel_tol=0.1, unit="rps", hint="did you count receivers twice?")
    low = check_within("storage", 1e12, 1e15, unit="bytes")
    assert not high and "too high" in high.explanation and "factor of 3" not in high.explanation
    assert "order of magnitude" in high.explanation and "receivers twice" in high.explanation
    assert not low and "too low" in low.explanation and "orders of magnitude" in low.explanation
    assert "100" not in high.explanation and "1 PB" not in low.explanation


def test_check_within_not_answered_gives_the_hint() -> None:
    result = check_within("peak", None, 100, hint="start from messages per day")
    assert not result.passed
    assert str(result) == "✗ peak: not answered yet. start from messages per day"


def test_check_within_wrong_sign_and_zero() -> None:
    assert "wrong sign" in check_within("x", -5, 5).explanation
    assert not check_within("x", 3, 0) and check_within("x", 0, 0)


@pytest.mark.parametrize("bad", ["100", float("nan")])
def test_check_within_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="answer must be"):
        check_within("x", bad, 1)  # type: ignore[arg-type]


def test_messenger_check_catches_a_forgotten_fanout_and_replication() -> None:
    scenario = MessengerScenario()
    right = check_messenger_estimate(scenario.expected_peak_delivery_rps(), scenario.expected_total_storage_bytes())
    assert right.passed
    forgot = check_messenger_estimate(
        scenario.expected_peak_delivery_rps() / scenario.receivers_per_message,
        scenario.expected_total_storage_bytes() / scenario.replication_factor,
    )
    assert isinstance(forgot, CheckReport)
    assert not forgot.passed
    assert [r.passed for r in forgot.results] == [False, False]
    assert "0/2 checks passed" in str(forgot)


def test_messenger_expected_values() -> None:
    scenario = MessengerScenario()
    # 20 M x 30 / 86,400 x 2 (peak) x 10 receivers
    assert scenario.expected_peak_delivery_rps() == pytest.approx(20e6 * 30 / 86_400 * 2 * 10)
    per_day = 20e6 * 30 * (150 + 0.05 * 300e3)
    assert scenario.expected_total_storage_bytes() == pytest.approx(per_day * 730 * 3)


def test_check_within_names_a_known_mistake_without_the_answer() -> None:
    result = check_within(
        "delivery", 100, 1_000, unit="rps", hint="general hint", mistakes={"the fan-out is missing": 100}
    )
    assert not result and "the fan-out is missing" in result.explanation
    assert "general hint" not in result.explanation and "1 K" not in result.explanation
    other = check_within("delivery", 300, 1_000, hint="general hint", mistakes={"the fan-out is missing": 100})
    assert "general hint" in other.explanation and "fan-out" not in other.explanation


def test_messenger_check_diagnoses_each_slip() -> None:
    scenario = MessengerScenario()
    forgot = check_messenger_estimate(
        scenario.expected_peak_delivery_rps() / scenario.receivers_per_message,
        scenario.expected_total_storage_bytes() / scenario.replication_factor,
    )
    assert "fan-out is missing" in forgot.results[0].explanation
    assert "replication factor is missing" in forgot.results[1].explanation
    unanswered = check_messenger_estimate(None, None)
    assert all("not answered yet" in r.explanation for r in unanswered.results)
