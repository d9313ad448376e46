"""``make workshop``: student copies keep everything but the worked solutions."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("workshop", ROOT / "tools" / "workshop.py")
assert _spec is not None and _spec.loader is not None
workshop = importlib.util.module_from_spec(_spec)
sys.modules["workshop"] = workshop
_spec.loader.exec_module(workshop)


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Exercise\n\nEstimate the peak."),
        nbformat.v4.new_code_cell("answer = None  # your estimate\ncheck(answer)"),
        nbformat.v4.new_markdown_cell(
            "Before.\n\n<details><summary>Solution</summary>\n\nMultiply by the fan-out.\n\n</details>\n\nAfter."
        ),
        nbformat.v4.new_markdown_cell("<details>\n<summary>Worked solution</summary>\nonly this\n</details>"),
        nbformat.v4.new_code_cell("check(worked)", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("<details><summary>More about units</summary>kept</details>"),
    ]
    return nb


def test_student_copy_removes_solution_blocks_and_cells_only() -> None:
    copy, removed = workshop.student_copy(_notebook())
    sources = [c.source for c in copy.cells]
    assert removed == 3
    assert sources == [
        "## Exercise\n\nEstimate the peak.",
        "answer = None  # your estimate\ncheck(answer)",
        "Before.\n\nAfter.",
        "<details><summary>More about units</summary>kept</details>",
    ]


def test_an_unclosed_solution_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="no closing"):
        workshop.strip_solutions("<details><summary>Solution</summary> the answer is 42")


def test_every_notebook_gets_a_copy_without_solutions(tmp_path: Path) -> None:
    removed = workshop.write_student_copies(out=tmp_path)
    names = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(removed) == names == sorted(p.name for p in tmp_path.glob("*.ipynb"))
    for name in names:
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "<summary>Solution" not in text, name
        original = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        if "<summary>Solution" in "".join(c.source for c in original.cells):
            assert removed[name] > 0
