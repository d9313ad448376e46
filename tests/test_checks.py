"""Tests for chatdesign.checks: every branch of the shared numeric checks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from chatdesign.checks import check_fraction, check_number, check_whole


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.5, 2.5), (-1, -1.0), (np.int64(7), 7.0), (np.float64(0.25), 0.25),
     (np.float32(1.5), 1.5), (np.int8(-2), -2.0), (Fraction(1, 4), 0.25)],
)
def test_check_number_accepts_real_numbers_and_returns_float(value: object, expected: float) -> None:
    result = check_number(value, "x")
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "True"), (np.bool_(False), "False"), ("1", "'1'"), (None, "None"), ([1], r"\[1\]"),
     (1 + 2j, r"\(1\+2j\)")],
)
def test_check_number_rejects_non_numbers(value: object, shown: str) -> None:
    with pytest.raises(ValueError, match=rf"^size must be a number, got {shown}$"):
        check_number(value, "size")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_check_number_rejects_nan_and_infinities(value: float) -> None:
    with pytest.raises(ValueError, match=r"^rate must be a finite number, got (nan|inf|-inf)$"):
        check_number(value, "rate")


def test_check_number_rejects_ints_too_large_for_a_float() -> None:
    with pytest.raises(ValueError, match=r"^n must be a finite number, got 1000"):
        check_number(10**400, "n")


def test_check_number_unit_words_the_type_errors() -> None:
    with pytest.raises(ValueError, match=r"^now_s must be a number of seconds, got 'soon'$"):
        check_number("soon", "now_s", unit="seconds")
    with pytest.raises(ValueError, match=r"^now_s must be a finite number of seconds, got inf$"):
        check_number(math.inf, "now_s", unit="seconds")


def test_check_number_positive() -> None:
    assert check_number(0.1, "segment_s", positive=True) == 0.1
    with pytest.raises(ValueError, match=r"^segment_s must be positive, got 0$"):
        check_number(0, "segment_s", positive=True)
    with pytest.raises(ValueError, match=r"^segment_s must be positive, got -2\.0$"):
        check_number(np.float64(-2), "segment_s", positive=True)


def test_check_number_bounds() -> None:
    assert check_number(0, "count", minimum=0) == 0.0
    assert check_number(5, "x", minimum=1, maximum=5) == 5.0
    assert check_number(-7, "x", maximum=0) == -7.0
    with pytest.raises(ValueError, match=r"^count must not be negative, got -1$"):
        check_number(-1, "count", minimum=0)
    with pytest.raises(ValueError, match=r"^tick_s must be at least 0\.01, got 0\.001$"):
        check_number(0.001, "tick_s", minimum=0.01)
    with pytest.raises(ValueError, match=r"^share must be between 0 and 1, got 1\.5$"):
        check_number(1.5, "share", minimum=0, maximum=1)
    with pytest.raises(ValueError, match=r"^share must be between 0 and 1, got -0\.5$"):
        check_number(-0.5, "share", minimum=0, maximum=1)
    with pytest.raises(ValueError, match=r"^delay must be at most 60, got 61$"):
        check_number(61, "delay", maximum=60)
    with pytest.raises(ValueError, match=r"^x must be at least 2\.5, got 1$"):
        check_number(1, "x", minimum=2.5)


def test_check_whole_accepts_ints_and_numpy_integers() -> None:
    for value in (0, 42, np.int64(42), np.uint8(3)):
        result = check_whole(value, "viewers")
        assert result == int(value)
        assert type(result) is int
    assert check_whole(-5, "offset", minimum=None) == -5
    assert check_whole(100, "page_size", minimum=1, maximum=100) == 100


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2.5, r"^viewers must be a whole number, got 2\.5$"),
        (3.0, r"^viewers must be a whole number \(an int, not a float\), got 3\.0$"),
        (np.float64(4), r"^viewers must be a whole number \(an int, not a float\), got 4\.0$"),
        (math.nan, r"^viewers must be a whole number, got nan$"),
        (True, r"^viewers must be a whole number, got True$"),
        (np.bool_(True), r"^viewers must be a whole number, got True$"),
        ("3", r"^viewers must be a whole number, got '3'$"),
        (None, r"^viewers must be a whole number, got None$"),
    ],
)
def test_check_whole_rejects_everything_but_integers(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_whole(value, "viewers")


def test_check_whole_bounds() -> None:
    with pytest.raises(ValueError, match=r"^viewers must be at least 0, got -1$"):
        check_whole(-1, "viewers")
    with pytest.raises(ValueError, match=r"^pops must be at least 1, got 0$"):
        check_whole(np.int64(0), "pops", minimum=1)
    with pytest.raises(ValueError, match=r"^page_size must be between 1 and 100, got 101$"):
        check_whole(101, "page_size", minimum=1, maximum=100)
    with pytest.raises(ValueError, match=r"^seq must be at most 9, got 10$"):
        check_whole(10, "seq", minimum=None, maximum=9)


def test_check_fraction() -> None:
    assert check_fraction(0, "media_fraction") == 0.0
    assert check_fraction(1, "media_fraction") == 1.0
    assert check_fraction(np.float64(0.3), "media_fraction") == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"^media_fraction must be a fraction between 0 and 1, got 1\.5$"):
        check_fraction(1.5, "media_fraction")
    with pytest.raises(ValueError, match=r"^media_fraction must be a fraction between 0 and 1, got -0\.1$"):
        check_fraction(-0.1, "media_fraction")
    with pytest.raises(ValueError, match=r"^media_fraction must be a finite number, got nan$"):
        check_fraction(math.nan, "media_fraction")
    with pytest.raises(ValueError, match=r"^media_fraction must be a number, got 'half'$"):
        check_fraction("half", "media_fraction")
