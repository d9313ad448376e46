"""One implementation of the package's numeric input checks.

Every calculator, model and service validates its numbers with these three functions, so the
rules and the wording of the errors are the same everywhere:

- :func:`check_number` -- a finite real number, optionally positive or within bounds;
- :func:`check_whole` -- a whole number (an ``int``), at least a minimum (0 by default);
- :func:`check_fraction` -- a number between 0 and 1 inclusive.

They accept Python numbers and numpy scalars (``np.int64`` from a pandas column, ``np.float64``)
and return plain Python ``float``/``int``. They reject ``bool`` (``True`` is not a count), strings,
``None``, NaN and infinities. Every error is a ``ValueError`` whose message names the argument
and shows the value received: ``"segment_s must be positive, got 0"``.

Not taught on its own: the notebooks meet these rules through the errors of the calculators,
models and services that call them (``notebooks/01_estimation.ipynb`` onwards).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_fraction", "check_number", "check_whole"]


def _shown(value: object) -> str:
    """The value as an error message shows it: numpy scalars as the Python number they hold."""
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def _bound(limit: float) -> str:
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def _is_real(value: object) -> bool:
    if isinstance(value, bool | np.bool_):  # True is not a number of anything
        return False
    return isinstance(value, numbers.Real)


def _is_integral(value: object) -> bool:
    return _is_real(value) and isinstance(value, numbers.Integral)


def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    unit: str = "",
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number within the limits given.

    ``minimum`` and ``maximum`` are inclusive; ``positive=True`` also rejects zero. ``unit``
    (e.g. ``"seconds"``) only words the type errors: ``"now_s must be a finite number of
    seconds"``. Raises ``ValueError`` naming ``name`` and the value otherwise.
    """
    of_unit = f" of {unit}" if unit else ""
    if not _is_real(value):
        raise ValueError(f"{name} must be a number{of_unit}, got {_shown(value)}")
    try:
        number = float(value)  # type: ignore[arg-type]  # a numbers.Real converts
    except OverflowError:  # an int (or Fraction) too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number{of_unit}, got {_shown(value)}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be positive, got {_shown(value)}")
    _check_limits(number, value, name, minimum=minimum, maximum=maximum)
    return number


def check_whole(value: object, name: str, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is a whole number in ``minimum..maximum`` (inclusive).

    Accepts ``int`` and numpy integers. Floats are rejected even when integral (``3.0``): the
    frozen dataclasses keep the value they were given, and a count must stay an ``int``.
    ``minimum=None`` means no lower bound. Raises ``ValueError`` naming ``name`` and the value.
    """
    if not _is_integral(value):
        if isinstance(value, float | np.floating) and float(value).is_integer():
            raise ValueError(f"{name} must be a whole number (an int, not a float), got {_shown(value)}")
        raise ValueError(f"{name} must be a whole number, got {_shown(value)}")
    number: int = int(value)  # type: ignore[call-overload]  # a numbers.Integral converts
    _check_limits(number, value, name, minimum=minimum, maximum=maximum, counting=True)
    return number


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a number between 0 and 1 inclusive."""
    number = check_number(value, name)
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must be a fraction between 0 and 1, got {_shown(value)}")
    return number


def _check_limits(
    number: float, value: object, name: str, *, minimum: float | None, maximum: float | None, counting: bool = False
) -> None:
    """Raise the one message that states the whole allowed range if ``number`` is outside it.

    A quantity below 0 "must not be negative"; a count (``counting``) states its least value,
    "must be at least 0", as it does for any other minimum.
    """
    if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
        return
    if minimum is not None and maximum is not None:
        rule = f"must be between {_bound(minimum)} and {_bound(maximum)}"
    elif minimum is not None:
        rule = "must not be negative" if minimum == 0 and not counting else f"must be at least {_bound(minimum)}"
    else:
        assert maximum is not None
        rule = f"must be at most {_bound(maximum)}"
    raise ValueError(f"{name} {rule}, got {_shown(value)}")
