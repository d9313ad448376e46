"""The book's shape: every notebook is saved executed in order, ends the same way, navigates,
and never re-implements what the package exports (nbval checks the outputs themselves)."""

import ast
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import chatdesign

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[dict[str, object]]:
    cells: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return cells


def _source(cell: dict[str, object]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def _package_names() -> set[str]:
    """Every public function and class name defined anywhere in the package."""
    names = set()
    for module_info in pkgutil.walk_packages(chatdesign.__path__, "chatdesign."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if not name.startswith("_") and getattr(value, "__module__", "").startswith("chatdesign"):
                names.add(name)
    return names


def test_there_is_a_book() -> None:
    assert [p.name for p in NOTEBOOKS[:2]] == ["00_start_here.ipynb", "01_estimation.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_executed_top_to_bottom(path: Path) -> None:
    counts = [c.get("execution_count") for c in _cells(path) if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), "re-run it in a fresh kernel: make notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stable_kinds(path: Path) -> None:
    for cell in _cells(path):
        for output in cell.get("outputs", []):  # type: ignore[attr-defined]
            assert output.get("name") != "stderr", f"stderr in {path.name}: {output.get('text')}"
            assert "image/svg+xml" not in output.get("data", {}), f"SVG output in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_wall_clock_timestamps(path: Path) -> None:
    """Execution timing metadata is wall-clock time: ``make notebooks`` does not record it."""
    timed = [i for i, cell in enumerate(_cells(path)) if "execution" in cell.get("metadata", {})]  # type: ignore[operator]
    assert not timed, f"{path.name} cells {timed[:5]} carry execution timestamps: re-run with make notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_exercise_and_interview(path: Path) -> None:
    headings = [
        line.strip()
        for cell in _cells(path)
        if cell["cell_type"] == "markdown"
        for line in _source(cell).splitlines()
        if line.startswith("## ")
    ]
    assert "## Exercise" in headings
    assert headings[-1] == "## In an interview"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_carries_the_notebook_number(path: Path) -> None:
    titles = [
        _source(c).lstrip()
        for c in _cells(path)
        if c["cell_type"] == "markdown" and _source(c).lstrip().startswith("# ")
    ]
    assert titles, f"{path.name} has no '# NN · Title' cell"
    assert titles[0].startswith(f"# {path.name[:2]} · ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_does_not_redefine_package_names(path: Path) -> None:
    exported = _package_names()
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        lines = [line for line in _source(cell).splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        defined = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        assert not defined & exported, f"{path.name} re-implements {defined & exported}; import it instead"


def test_navigation_and_readme_map_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "navigation.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercise_is_answered_by_the_reader_with_the_solution_folded(path: Path) -> None:
    """The exercise convention (issue 14): an answer cell left at None, the solution in <details>."""
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "## Exercise" in _source(c))
    exercise = cells[start:]
    answer_cells = [c for c in exercise if c["cell_type"] == "code" and re.search(r"^\w+ = None\b", _source(c), re.M)]
    assert answer_cells, f"{path.name}: the exercise needs the reader's own cell, e.g. `answer = None  # your estimate`"
    folded = [c for c in exercise if c["cell_type"] == "markdown" and "<summary>Solution</summary>" in _source(c)]
    assert folded, f"{path.name}: the worked solution belongs in a <details><summary>Solution</summary> block"
