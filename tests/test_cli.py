"""python -m chatdesign: help, the estimate subcommand, and its errors."""

import subprocess
import sys

import pytest

from chatdesign.cli import main


def test_help_lists_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatdesign", "--help"], capture_output=True, text=True, check=True
    )
    assert "estimate" in result.stdout


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_estimate_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--dau", "150M", "--messages-per-user", "2", "--replicas", "1"]) == 0
    out = capsys.readouterr().out
    assert "average send rate" in out
    assert "3.47 K" in out
    assert "6.94 K" in out


def test_estimate_explains_bad_units(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", "--bytes-per-message", "12 parsecs"])
    assert exit_info.value.code == 2
    assert "unknown unit 'parsecs'" in capsys.readouterr().err


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_estimate_rejects_bad_fraction_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "--online-share", "3")
    assert "argument --online-share: must be between 0 and 1, got 3" in err
    assert "online_share" not in err


def test_estimate_refuses_zero_receivers(capsys: pytest.CaptureFixture[str]) -> None:
    assert _usage_error(capsys, "--receivers", "0").strip().endswith("argument --receivers: must be at least 1, got 0")


def test_a_duration_needs_a_unit(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "--retention", "5")
    assert "argument --retention: '5' needs a unit, e.g. '5y' or '5d'" in err
    assert main(["estimate", "--retention", "90d"]) == 0


@pytest.mark.parametrize(
    ("flag", "value", "example"),
    [("--dau", "lots", "'50M'"), ("--retention", "forever", "'5y'"), ("--media-size", "big", "'1.5 TB'"),
     ("--receivers", "ten", "'1'")],
)
def test_error_examples_fit_the_flag(capsys: pytest.CaptureFixture[str], flag: str, value: str, example: str) -> None:
    err = _usage_error(capsys, flag, value)
    assert f"argument {flag}:" in err and f"e.g. {example}" in err
    if flag != "--media-size":
        assert "1.5 TB" not in err


def test_errors_after_parsing_name_flags() -> None:
    from chatdesign.estimation_cli import in_flags

    assert in_flags("messages_per_user_per_day must not be negative") == "--messages-per-user must not be negative"
    assert in_flags("receivers_per_message and media_bytes") == "--receivers and --media-size"
