"""The notebook panels, driven headless: move a slider, read the result.

Whether the result is *displayed* is checked in a real browser by
``tests/browser/test_notebook_widgets.py``; here the panel's wiring is checked in Python.
"""

import pandas as pd
import pytest

from chatdesign.estimation import estimate_messenger
from chatdesign.widgets import MESSENGER_PANEL_DEFAULTS, messenger_panel, messenger_table, sweep


def _control(panel: object, description: str) -> object:
    return next(w for w in panel.children if getattr(w, "description", None) == description)  # type: ignore[attr-defined]


def test_panel_starts_at_the_static_defaults() -> None:
    panel = messenger_panel()
    panel.update()
    expected = messenger_table(**MESSENGER_PANEL_DEFAULTS)
    pd.testing.assert_frame_equal(panel.result, expected)
    assert panel.result.loc["messages per day", "estimate"] == "2 B"


def test_panel_starts_from_the_assumptions_passed_in() -> None:
    assumptions = {"media_fraction": 0.02, "media_bytes": 200e3, "messages_per_user_per_day": 40}
    panel = messenger_panel(assumptions)
    panel.update()
    expected = estimate_messenger(50e6, 40, media_fraction=0.02, media_bytes=200e3).to_frame()
    pd.testing.assert_frame_equal(panel.result, expected)
    assert panel.result.loc["storage over retention (all replicas)", "estimate"] == "44.9 PB"


def test_panel_refuses_an_unknown_assumption() -> None:
    with pytest.raises(ValueError, match="unknown assumptions \\['dau'\\]"):
        messenger_panel({"dau": 1e6})


def test_panel_displays_its_result() -> None:
    # interactive(...) built directly has auto_display=False and shows nothing (issue 14).
    assert messenger_panel().auto_display


def test_moving_sliders_changes_the_estimate() -> None:
    panel = messenger_panel()
    _control(panel, "daily active users").value = 1e8  # type: ignore[attr-defined]
    _control(panel, "receivers per message (1 = one-to-one chat)").value = 10  # type: ignore[attr-defined]
    panel.update()
    expected = estimate_messenger(1e8, 40, bytes_per_message=100, receivers_per_message=10, retention_days=5 * 365)
    pd.testing.assert_frame_equal(panel.result, expected.to_frame())
    assert panel.result.loc["messages per day", "estimate"] == "4 B"


def test_labels_are_words_wide_enough_and_readouts_human() -> None:
    panel = messenger_panel()
    controls = [w for w in panel.children if hasattr(w, "description") and hasattr(w, "value")]
    assert len(controls) == 6
    for control in controls:
        assert " " in control.description, f"{control.description!r} is not in words"
        assert control.style.description_width == "initial", f"{control.description!r} may be cut"
    users = _control(panel, "daily active users")
    assert users.readout_format == ".2s"  # type: ignore[attr-defined]  # 50M, not 5e+7


def test_sweep_shows_the_effect_of_one_control() -> None:
    table = sweep(
        messenger_table, "receivers_per_message", [1, 10, 100], label=lambda n: f"{n} receivers",
        rows=["peak delivery rate", "storage per day (one copy)"],
        **{k: v for k, v in MESSENGER_PANEL_DEFAULTS.items() if k != "receivers_per_message"},
    )
    assert list(table.columns) == ["1 receivers", "10 receivers", "100 receivers"]
    assert list(table.loc["peak delivery rate"]) == ["46.3 K rps", "463 K rps", "4.63 M rps"]
    assert table.loc["storage per day (one copy)"].nunique() == 1  # fan-out does not multiply storage


def test_sweep_needs_two_values() -> None:
    with pytest.raises(ValueError, match="at least two values"):
        sweep(messenger_table, "retention_years", [5], **MESSENGER_PANEL_DEFAULTS)
