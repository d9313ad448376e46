"""chatdesign.units: parsing and formatting, decimal vs binary, calendar constants."""

import math

import pytest

from chatdesign import units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5 TB", 1_500_000_000_000),
        ("10KiB", 10_240),
        ("512 B", 512),
        ("512", 512),
        ("1 MiB", 1_048_576),
        ("2,000 KB", 2_000_000),
        (".5 GB", 500_000_000),
        ("1e3 B", 1_000),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert units.parse_bytes(text) == expected


@pytest.mark.parametrize("junk", ["", "TB", "1.5 XB", "one MB", "1.5 tb", "-1 KB", "1 2 KB"])
def test_parse_bytes_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match=r"size|unit"):
        units.parse_bytes(junk)


def test_parse_bytes_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        units.parse_bytes(1024)  # type: ignore[arg-type]


def test_unknown_unit_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="KiB"):
        units.parse_bytes("3 KIB")


@pytest.mark.parametrize(
    ("size", "binary", "expected"),
    [
        (3.2e9, False, "3.2 GB"),
        (0, False, "0 B"),
        (999, False, "999 B"),
        (999.9, False, "1 KB"),
        (1_536, True, "1.5 KiB"),
        (30e12, False, "30 TB"),
        (54.75e15, False, "54.8 PB"),
        (-2e6, False, "-2 MB"),
    ],
)
def test_format_bytes(size: float, binary: bool, expected: str) -> None:
    assert units.format_bytes(size, binary=binary) == expected


def test_format_bytes_round_trips_through_parse() -> None:
    for size in (1, 12_345, 6.7e9, 8.9e15):
        assert units.parse_bytes(units.format_bytes(size, digits=6)) == pytest.approx(size, rel=1e-5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "3 GB", None, True])
def test_format_bytes_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        units.format_bytes(bad)  # type: ignore[arg-type]


def test_bitrate_round_trip() -> None:
    assert units.parse_bitrate("500 kbps") == 500_000
    assert units.format_bitrate(4.3e6) == "4.3 Mbps"
    with pytest.raises(ValueError, match="bit rate"):
        units.parse_bitrate("500 KB")


def test_durations() -> None:
    assert units.parse_duration("5 min") == 300
    assert units.parse_duration("30") == 30
    assert units.parse_duration("2 y") == pytest.approx(2 * 365.2425 * 86_400)
    assert units.format_duration(5_400) == "1.5 h"
    assert units.format_duration(0.064) == "64 ms"
    assert units.format_duration(3 * 86_400) == "3 d"
    with pytest.raises(ValueError, match="duration"):
        units.parse_duration("-3 s")


def test_counts() -> None:
    assert units.parse_count("150M") == 150e6
    assert units.parse_count("2.5 b") == 2.5e9
    assert units.format_count(3_472.2) == "3.47 K"
    assert units.format_count(1e8) == "100 M"
    with pytest.raises(ValueError, match="count"):
        units.parse_count("12 Q")


def test_calendar_constants() -> None:
    assert units.SECONDS_PER_DAY == 86_400
    assert units.SECONDS_PER_MONTH == pytest.approx(2_629_746)
    assert units.SECONDS_PER_YEAR == pytest.approx(31_556_952)


def test_per_second_and_back() -> None:
    assert units.per_second(300e6, per="day") == pytest.approx(3_472.2, abs=0.1)
    assert units.per_period(units.per_second(1e9, "month"), "month") == pytest.approx(1e9)
    with pytest.raises(ValueError, match="unknown period"):
        units.per_second(10, per="week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        units.per_second(-1)


def test_a_duration_can_require_its_unit() -> None:
    from chatdesign.units import parse_duration

    assert parse_duration("5") == 5
    assert parse_duration("5 y", require_unit=True) == parse_duration("5y")
    with pytest.raises(ValueError, match=r"'5' needs a unit, e\.g\. '5y'"):
        parse_duration("5", require_unit=True)


def test_parse_errors_show_an_example_of_their_own_kind() -> None:
    from chatdesign.units import parse_bitrate, parse_count, parse_duration

    for parse, example in [(parse_count, "'50M'"), (parse_duration, "'5y'"), (parse_bitrate, "'500 kbps'")]:
        with pytest.raises(ValueError, match=f"e.g. {example}") as info:
            parse("??")
        assert "1.5 TB" not in str(info.value)


def test_unknown_count_suffix_lists_only_real_suffixes() -> None:
    from chatdesign.units import parse_count

    with pytest.raises(ValueError, match=r"use one of: K, M, B, T$"):
        parse_count("1.5 TB")
