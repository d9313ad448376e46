"""The notebook panels, driven headless: move a slider, read the result."""

import pandas as pd

from chatdesign.estimation import estimate_messenger
from chatdesign.widgets import MESSENGER_PANEL_DEFAULTS, messenger_panel, messenger_table


def _control(panel: object, description: str) -> object:
    return next(w for w in panel.children if getattr(w, "description", None) == description)  # type: ignore[attr-defined]


def test_panel_starts_at_the_static_defaults() -> None:
    panel = messenger_panel()
    panel.update()
    expected = messenger_table(**MESSENGER_PANEL_DEFAULTS)
    pd.testing.assert_frame_equal(panel.result, expected)
    assert panel.result.loc["messages per day", "estimate"] == "2 B"


def test_moving_sliders_changes_the_estimate() -> None:
    panel = messenger_panel()
    _control(panel, "DAU").value = 1e8  # type: ignore[attr-defined]
    _control(panel, "receivers").value = 10  # type: ignore[attr-defined]
    panel.update()
    expected = estimate_messenger(1e8, 40, bytes_per_message=100, receivers_per_message=10, retention_days=5 * 365)
    pd.testing.assert_frame_equal(panel.result, expected.to_frame())
    assert panel.result.loc["messages per day", "estimate"] == "4 B"
