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


def test_estimate_rejects_bad_fraction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--online-share", "3"]) == 2
    assert "online_share" in capsys.readouterr().err
