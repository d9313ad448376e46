"""Interactive panels for the notebooks, built on ipywidgets.

Each panel is an ``ipywidgets.interactive`` around a pure function of the package, so a test can
set its sliders and read ``panel.result`` without a browser, and the notebook's static fallback
cell calls the same function (:func:`sweep` shows the effect of one control over a few values).

Two rules learned the hard way (issue 14):

- ``widgets.interactive(f, ...)`` built directly does not display ``f``'s result
  (``auto_display=False``): a panel passes ``{"auto_display": True}`` so the table appears under
  the sliders. ``tests/browser/test_notebook_widgets.py`` moves every control in a real
  browser and checks that the output appears and changes.
- Labels are words with units, never cut (``description_width: initial``), and readouts are in
  human units (``50M``, not ``5.01e+7``).

Taught in ``notebooks/01_estimation.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import ipywidgets as widgets
import pandas as pd

from chatdesign.estimation import estimate_messenger

MESSENGER_PANEL_DEFAULTS: Final[dict[str, float]] = {
    "daily_active_users": 50e6,
    "messages_per_user_per_day": 40,
    "bytes_per_message": 100,
    "receivers_per_message": 1,
    "retention_years": 5,
    "media_fraction": 0.0,
    "media_bytes": 0.0,
    "peak_factor": 2.0,
    "replication_factor": 3.0,
    "online_share": 0.1,
}
"""The panel's starting values when a notebook passes none: Xu's 50 M DAU messenger, text only.
Notebook 01 passes its own assumptions instead, so the panel starts where the notebook is."""

SLIDER_STYLE: Final[dict[str, str]] = {"description_width": "initial"}
"""Let a description take the room it needs, so "messages per user per day" is not cut."""

SLIDER_LAYOUT: Final[dict[str, str]] = {"width": "36em"}


def messenger_table(
    daily_active_users: float,
    messages_per_user_per_day: float,
    bytes_per_message: float,
    receivers_per_message: float,
    retention_years: float,
    media_fraction: float = 0.0,
    media_bytes: float = 0.0,
    peak_factor: float = 2.0,
    replication_factor: float = 3.0,
    online_share: float = 0.1,
) -> pd.DataFrame:
    """:func:`chatdesign.estimation.estimate_messenger` as a table, retention in 365-day years."""
    return estimate_messenger(
        daily_active_users,
        messages_per_user_per_day,
        bytes_per_message=bytes_per_message,
        receivers_per_message=receivers_per_message,
        retention_days=retention_years * 365,
        media_fraction=media_fraction,
        media_bytes=media_bytes,
        peak_factor=peak_factor,
        replication_factor=replication_factor,
        online_share=online_share,
    ).to_frame()


def _slider_kwargs(description: str) -> dict[str, Any]:
    return {"description": description, "style": SLIDER_STYLE, "layout": SLIDER_LAYOUT, "continuous_update": False}


def messenger_panel(assumptions: Mapping[str, float] | None = None) -> widgets.interactive:
    """Sliders for notebook 01's messenger estimate, starting from ``assumptions``.

    ``assumptions`` uses :func:`messenger_table`'s parameter names (missing ones come from
    :data:`MESSENGER_PANEL_DEFAULTS`); the parameters without a slider (media size, peak factor,
    replicas, online share) stay fixed at their value. The current table is ``panel.result``
    and is shown under the sliders. Raises ``ValueError`` for an unknown name.
    """
    given = dict(assumptions or {})
    unknown = sorted(set(given) - set(MESSENGER_PANEL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown assumptions {unknown}; use: {', '.join(MESSENGER_PANEL_DEFAULTS)}")
    values = {**MESSENGER_PANEL_DEFAULTS, **given}
    controls: dict[str, Any] = {
        "daily_active_users": widgets.FloatLogSlider(
            value=values["daily_active_users"], base=10, min=4, max=9.5, step=0.1, readout_format=".2s",
            **_slider_kwargs("daily active users"),
        ),
        "messages_per_user_per_day": widgets.IntSlider(
            value=round(values["messages_per_user_per_day"]), min=1, max=500,
            **_slider_kwargs("messages sent per user per day"),
        ),
        "bytes_per_message": widgets.IntSlider(
            value=round(values["bytes_per_message"]), min=10, max=5_000, step=10,
            **_slider_kwargs("bytes of text and metadata per message (B)"),
        ),
        "receivers_per_message": widgets.IntSlider(
            value=round(values["receivers_per_message"]), min=1, max=100,
            **_slider_kwargs("receivers per message (1 = one-to-one chat)"),
        ),
        "retention_years": widgets.IntSlider(
            value=round(values["retention_years"]), min=1, max=10, **_slider_kwargs("history kept (years)")
        ),
        "media_fraction": widgets.FloatSlider(
            value=values["media_fraction"], min=0.0, max=0.2, step=0.005, readout_format=".1%",
            **_slider_kwargs("messages carrying an image (share)"),
        ),
    }
    fixed = {name: widgets.fixed(values[name]) for name in values if name not in controls}
    return widgets.interactive(messenger_table, {"auto_display": True}, **controls, **fixed)


def sweep(
    table: Callable[..., pd.DataFrame | pd.Series],
    parameter: str,
    values: Iterable[Any],
    label: Callable[[Any], str] = str,
    rows: Iterable[str] | None = None,
    **fixed: Any,
) -> pd.DataFrame:
    """What a panel's control does: ``table(**fixed, parameter=value)`` for each value, side by side.

    ``table`` returns a one-column DataFrame (or a Series) of labelled figures, as the panels'
    functions do; the sweep puts one column per value, headed ``label(value)``, and keeps only
    ``rows`` if given. This is the static fallback shown under an ``interact`` cell: the same
    function the slider calls, over 3-5 values. Raises ``ValueError`` for fewer than two values.
    """
    chosen = list(values)
    if len(chosen) < 2:
        raise ValueError(f"a sweep needs at least two values of {parameter!r}, got {chosen!r}")
    columns = {}
    for value in chosen:
        result = table(**{**fixed, parameter: value})
        column = result.iloc[:, 0] if isinstance(result, pd.DataFrame) else result
        columns[label(value)] = column
    frame = pd.DataFrame(columns)
    frame.columns.name = parameter.replace("_", " ")
    return frame.loc[list(rows)] if rows is not None else frame
