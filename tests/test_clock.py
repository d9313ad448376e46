"""chatdesign.clock: a manual clock moves forward on demand and back only when asked to."""

import math

import pytest

from chatdesign.clock import ManualClock


def test_forward_moves() -> None:
    clock = ManualClock(10)
    assert clock() == 10.0
    assert clock.advance(2.5) == 12.5
    assert clock.set(20) == 20.0 == clock.now_s
    assert repr(clock) == "ManualClock(now_s=20.0)"


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1", True])
def test_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match=r"seconds must be a (finite )?number of seconds"):
        ManualClock().advance(bad)  # type: ignore[arg-type]


def test_only_step_back_goes_back() -> None:
    clock = ManualClock(100)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.set(99)
    assert clock() == 100.0
    assert clock.step_back(60) == 40.0
    with pytest.raises(ValueError, match="positive duration"):
        clock.step_back(-5)
