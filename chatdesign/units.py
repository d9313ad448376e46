"""Sizes, rates and durations: parse what people write, format what calculators return.

Decimal and binary prefixes are kept apart on purpose: ``KB`` is 1000 bytes and ``KiB`` is
1024 bytes, as in SI and IEC 80000-13. Back-of-the-envelope estimates use decimal units (a
"1 MB photo", "30 TB per day"), and so does :func:`format_bytes` unless asked for binary.

Calendar constants are exact where the calendar is (a day is 86,400 s) and averages where it
is not: a month is 1/12 of the mean Gregorian year of 365.2425 days (2,629,746 s). Published
rules of thumb round this: the system-design-primer's "2.5 million seconds per month" is 5 %
low, which is why its "1 request/s ≈ 2.5 M requests/month" reads 2.63 M here.

Taught in ``notebooks/01_estimation.ipynb``.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from chatdesign.checks import check_number

SECONDS_PER_MINUTE: Final = 60
SECONDS_PER_HOUR: Final = 3_600
SECONDS_PER_DAY: Final = 86_400
DAYS_PER_YEAR: Final = 365.2425
"""Mean Gregorian year in days. Xu's book multiplies by 365; :data:`SECONDS_PER_YEAR` does not."""
SECONDS_PER_YEAR: Final = DAYS_PER_YEAR * SECONDS_PER_DAY
SECONDS_PER_MONTH: Final = SECONDS_PER_YEAR / 12

Period = Literal["second", "minute", "hour", "day", "month", "year"]

SECONDS_PER_PERIOD: Final[dict[str, float]] = {
    "second": 1,
    "minute": SECONDS_PER_MINUTE,
    "hour": SECONDS_PER_HOUR,
    "day": SECONDS_PER_DAY,
    "month": SECONDS_PER_MONTH,
    "year": SECONDS_PER_YEAR,
}

_DECIMAL_PREFIXES: Final = ("", "K", "M", "G", "T", "P", "E")
_BINARY_PREFIXES: Final = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

BYTE_UNITS: Final[dict[str, int]] = {
    **{f"{p}B": 1000**i for i, p in enumerate(_DECIMAL_PREFIXES)},
    **{f"{p}B": 1024**i for i, p in enumerate(_BINARY_PREFIXES) if p},
}
"""Every byte unit :func:`parse_bytes` accepts, with its size in bytes (case-sensitive)."""

BIT_RATE_UNITS: Final[dict[str, int]] = {f"{p}bps": 1000**i for i, p in enumerate(("", "k", "M", "G", "T"))}
"""Bit-rate units for :func:`parse_bitrate`; networks use decimal prefixes (1 kbps = 1000 bit/s)."""

DURATION_UNITS: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1,
    "min": SECONDS_PER_MINUTE,
    "h": SECONDS_PER_HOUR,
    "d": SECONDS_PER_DAY,
    "mo": SECONDS_PER_MONTH,
    "y": SECONDS_PER_YEAR,
}
"""Duration units for :func:`parse_duration`, in seconds."""

_QUANTITY = re.compile(r"^\s*([+-]?(?:\d[\d_,]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")


EXAMPLES: Final[dict[str, str]] = {
    "a size": "1.5 TB",
    "a bit rate": "500 kbps",
    "a duration": "5y",
    "a count": "50M",
}
"""What each parser's error shows as an example of the input it wants (a count is not '1.5 TB')."""


def _split_quantity(text: str, what: str) -> tuple[float, str]:
    example = EXAMPLES[what]
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string such as {example!r}, got {text!r}")
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"cannot read {text!r} as {what}: expected a number and a unit, e.g. {example!r}")
    number = float(match.group(1).replace(",", "").replace("_", ""))
    return number, match.group(2)


def _lookup(unit: str, table: dict[str, float] | dict[str, int], text: str, what: str) -> float:
    if unit in table:
        return table[unit]
    known = ", ".join(name for name in table if name)  # the empty unit (a bare number) is not a name
    raise ValueError(f"unknown unit {unit!r} in {text!r} ({what}); use one of: {known}")


def parse_bytes(text: str) -> int:
    """Read a size such as ``"1.5 TB"``, ``"10KiB"`` or ``"512 B"`` and return bytes (an int).

    A bare number is taken as bytes. Raises ``ValueError`` for junk, unknown units and
    negative sizes.
    """
    number, unit = _split_quantity(text, "a size")
    factor = _lookup(unit or "B", BYTE_UNITS, text, "a size")
    if number < 0:
        raise ValueError(f"a size cannot be negative: {text!r}")
    return round(number * factor)


def _format_scaled(value: float, base: int, prefixes: tuple[str, ...], unit: str, digits: int) -> str:
    magnitude = abs(value)
    index = 0
    while index < len(prefixes) - 1 and magnitude >= base ** (index + 1) * (1 - 0.5 * 10**-digits):
        index += 1
    scaled = value / base**index
    text = f"{scaled:.{digits}g}"
    if "e" in text:  # beyond the largest prefix
        text = f"{scaled:,.0f}"
    return f"{text} {prefixes[index]}{unit}"


def format_bytes(size_bytes: float, binary: bool = False, digits: int = 3) -> str:
    """Format a byte count with the largest fitting prefix: ``3.2e9`` → ``"3.2 GB"``.

    ``binary=True`` uses KiB/MiB/... (powers of 1024). ``digits`` is significant digits.
    """
    value = check_number(size_bytes, "size_bytes")
    if binary:
        return _format_scaled(value, 1024, _BINARY_PREFIXES, "B", digits)
    return _format_scaled(value, 1000, _DECIMAL_PREFIXES, "B", digits)


def parse_bitrate(text: str) -> float:
    """Read a bit rate such as ``"500 kbps"`` or ``"4.3 Mbps"`` and return bits per second."""
    number, unit = _split_quantity(text, "a bit rate")
    factor = _lookup(unit, BIT_RATE_UNITS, text, "a bit rate")
    if number < 0:
        raise ValueError(f"a bit rate cannot be negative: {text!r}")
    return number * factor


def format_bitrate(bits_per_s: float, digits: int = 3) -> str:
    """Format bits per second with a decimal prefix: ``2.5e6`` → ``"2.5 Mbps"``."""
    value = check_number(bits_per_s, "bits_per_s")
    return _format_scaled(value, 1000, ("", "k", "M", "G", "T"), "bps", digits)


def parse_duration(text: str, *, require_unit: bool = False) -> float:
    """Read a duration such as ``"30 s"``, ``"5 min"``, ``"2 h"``, ``"90 d"`` and return seconds.

    Units: ms, s, min, h, d, mo (mean month), y (mean Gregorian year). A bare number is seconds,
    unless ``require_unit`` (the command line's ``--retention 5`` could mean 5 years or 5 days:
    it asks for a unit instead of guessing seconds).
    """
    number, unit = _split_quantity(text, "a duration")
    if require_unit and not unit:
        raise ValueError(f"{text!r} needs a unit, e.g. '{text.strip()}y' or '{text.strip()}d'; use one of: "
                         + ", ".join(DURATION_UNITS))
    factor = _lookup(unit or "s", DURATION_UNITS, text, "a duration")
    if number < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return number * factor


def format_duration(seconds: float, digits: int = 3) -> str:
    """Format seconds with the largest fitting unit: ``5400`` → ``"1.5 h"``, ``0.064`` → ``"64 ms"``."""
    value = check_number(seconds, "seconds")
    magnitude = abs(value)
    for unit in ("y", "d", "h", "min", "s"):
        if magnitude >= DURATION_UNITS[unit]:
            return f"{value / DURATION_UNITS[unit]:.{digits}g} {unit}"
    return f"{value * 1000:.{digits}g} ms"


def format_count(count: float, digits: int = 3) -> str:
    """Format a plain count with K/M/B/T suffixes: ``3_472.2`` → ``"3.47 K"``, ``1e8`` → ``"100 M"``."""
    value = check_number(count, "count")
    return _format_scaled(value, 1000, ("", "K", "M", "B", "T"), "", digits).rstrip()


def per_second(count: float, per: Period = "day") -> float:
    """Convert a count per ``per`` (second, minute, hour, day, month, year) into a rate per second.

    ``per_second(300e6, per="day")`` → 3472.2 requests/s. Raises ``ValueError`` on a negative
    count or an unknown period.
    """
    value = check_number(count, "count", minimum=0)
    if per not in SECONDS_PER_PERIOD:
        raise ValueError(f"unknown period {per!r}; use one of: {', '.join(SECONDS_PER_PERIOD)}")
    return value / SECONDS_PER_PERIOD[per]


def per_period(rate_per_s: float, per: Period = "month") -> float:
    """The inverse of :func:`per_second`: how many events a rate per second makes in ``per``."""
    value = check_number(rate_per_s, "rate_per_s", minimum=0)
    if per not in SECONDS_PER_PERIOD:
        raise ValueError(f"unknown period {per!r}; use one of: {', '.join(SECONDS_PER_PERIOD)}")
    return value * SECONDS_PER_PERIOD[per]


COUNT_SUFFIXES: Final[dict[str, float]] = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
"""Suffixes :func:`parse_count` accepts (K thousand, M million, B billion, T trillion)."""


def parse_count(text: str) -> float:
    """Read a count such as ``"150M"``, ``"2.5 B"`` or ``"40"`` and return it as a float."""
    number, unit = _split_quantity(text, "a count")
    factor = _lookup(unit.upper(), COUNT_SUFFIXES, text, "a count")
    if number < 0:
        raise ValueError(f"a count cannot be negative: {text!r}")
    return number * factor
