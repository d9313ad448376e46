"""python -m chatdesign simulate-live: the table, progress on stderr, and errors."""

from __future__ import annotations

import io

import pytest

from chatdesign.cli import main
from chatdesign.live import viewers_carried
from chatdesign.live.cli import progress_printer


def test_simulate_live_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-live", "--viewers", "1100", "--duration", "20 s"]) == 0
    captured = capsys.readouterr()
    assert "edge_hit_ratio" in captured.out
    assert "98.182%" in captured.out
    assert "origin_server" in captured.out
    assert "peak memory" in captured.out
    assert captured.err == ""  # small runs print no progress


def test_short_segments_run_and_the_herd_has_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-live", "--viewers", "500", "--duration", "2", "--segment", "0.5"]) == 0
    assert "segments" in capsys.readouterr().out
    tight = ["simulate-live", "--viewers", "5K", "--duration", "6", "--segment", "3",
             "--no-coalescing", "--jitter", "0 s"]
    leaks = []
    for spread in ("0.05", "0.5"):
        assert main([*tight, "--herd-spread", spread]) == 0
        out = capsys.readouterr().out
        line = next(line for line in out.splitlines() if line.startswith("requests_past_edge_ratio"))
        leaks.append(float(line.split()[-1].rstrip("%")))
    assert leaks[0] > 3 * leaks[1]
    assert main([*tight, "--herd-window", "2.9 s", "--clock-offset", "0.2 s"]) == 2
    assert "must be shorter than segment_s" in capsys.readouterr().err
    assert main([*tight, "--playlist-refresh", "1 s", "--traffic-seed", "4"]) == 0


def test_derived_capacity_and_queueing_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate-live", "--viewers", "50K", "--duration", "3", "--pops", "5",
            "--pop-capacity-rps", "derived", "--queueing"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "peak_rps_10ms" in out and "mean_queue_wait_ms" in out
    spilled_line = next(line for line in out.splitlines() if line.startswith("spilled"))
    assert spilled_line.split()[-1] != "0"


def test_capacity_is_derived_by_default_and_none_lifts_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate-live", "--viewers", "600K", "--duration", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    carried = viewers_carried()
    assert f"the 20 PoPs admit at most {carried:,} requests per segment" in out
    refused = int(next(line for line in out.splitlines() if "were refused" in line)
                  .split(" of ")[0].split()[-1].replace(",", ""))
    assert refused >= 2 * (600_000 - carried)  # 600 K viewers cannot fit in the map
    assert main([*args, "--pop-capacity-rps", "none"]) == 0
    out = capsys.readouterr().out
    assert "PoP capacity: no limit" in out
    assert next(line for line in out.splitlines() if line.startswith("refused")).split()[-1] == "0"


def test_options_reach_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate-live", "--viewers", "2K", "--duration", "10", "--pops", "5",
            "--pop-capacity-rps", "300", "--overflow", "refuse", "--push", "watched",
            "--no-coalescing", "--ramp", "5 s", "--seed", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    refused_line = next(line for line in out.splitlines() if line.startswith("refused"))
    assert refused_line.split()[-1] != "0"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_every_tenth_in_place_on_a_terminal() -> None:
    stream = _Terminal()
    report = progress_printer(stream)
    for done in range(1, 21):
        report(done, 20)
    text = stream.getvalue()
    assert text.count("\r") == 11 and text.count("\n") == 1
    assert text.endswith("segment 20/20 (100 %)\n")


def test_progress_writes_whole_lines_to_a_file() -> None:
    stream = io.StringIO()
    report = progress_printer(stream)
    for done in range(1, 21):
        report(done, 20)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 11
    assert lines[-1] == "simulating: segment 20/20 (100 %)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--viewers", "-5"], "cannot be negative"),
        (["--viewers", "2.5"], "not a whole number"),
        (["--segment", "0"], "segment_s must be positive"),
        (["--duration", "ten"], "cannot read"),
        (["--pop-capacity-rps", "lots"], "neither a number"),
    ],
)
def test_bad_arguments_are_explained(args: list[str], message: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["simulate-live", *args])
    except SystemExit as exit_info:
        code = int(str(exit_info.code))
    assert code == 2
    assert message in capsys.readouterr().err
