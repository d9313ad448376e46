"""Interactive panels for the notebooks, built on ipywidgets.

Each panel is an ``ipywidgets.interactive`` around a pure function of the package, so a test can
set its sliders and read ``panel.result`` without a browser, and the notebook's static fallback
cell calls the same function with :data:`MESSENGER_PANEL_DEFAULTS`.
"""

from __future__ import annotations

from typing import Final

import ipywidgets as widgets
import pandas as pd

from chatdesign.estimation import estimate_messenger

MESSENGER_PANEL_DEFAULTS: Final[dict[str, float]] = {
    "daily_active_users": 50e6,
    "messages_per_user_per_day": 40,
    "bytes_per_message": 100,
    "receivers_per_message": 1,
    "retention_years": 5,
}
"""The widget's starting values: Xu's 50 M DAU messenger."""


def messenger_table(
    daily_active_users: float,
    messages_per_user_per_day: float,
    bytes_per_message: float,
    receivers_per_message: float,
    retention_years: float,
) -> pd.DataFrame:
    """:func:`chatdesign.estimation.estimate_messenger` as a table, retention in 365-day years."""
    return estimate_messenger(
        daily_active_users,
        messages_per_user_per_day,
        bytes_per_message=bytes_per_message,
        receivers_per_message=receivers_per_message,
        retention_days=retention_years * 365,
    ).to_frame()


def messenger_panel() -> widgets.interactive:
    """Sliders for notebook 01's messenger estimate; ``panel.result`` is the current table."""
    defaults = MESSENGER_PANEL_DEFAULTS
    return widgets.interactive(
        messenger_table,
        daily_active_users=widgets.FloatLogSlider(
            value=defaults["daily_active_users"], base=10, min=4, max=9.5, step=0.1, description="DAU"
        ),
        messages_per_user_per_day=widgets.IntSlider(
            value=int(defaults["messages_per_user_per_day"]), min=1, max=500, description="msgs/user/day"
        ),
        bytes_per_message=widgets.IntSlider(
            value=int(defaults["bytes_per_message"]), min=10, max=5_000, step=10, description="bytes/msg"
        ),
        receivers_per_message=widgets.IntSlider(
            value=int(defaults["receivers_per_message"]), min=1, max=100, description="receivers"
        ),
        retention_years=widgets.IntSlider(
            value=int(defaults["retention_years"]), min=1, max=10, description="keep (years)"
        ),
    )
