"""Student copies of the book: every notebook without its worked solutions.

An exercise in this book is the reader's answer cell (``answer = None``), a checker from the
package, and the worked solution in a collapsed block::

    <details><summary>Solution</summary>

    ... the method ...

    </details>

A code cell that computes and checks the worked answer carries the cell tag ``solution``. This
tool copies every ``notebooks/NN_*.ipynb`` to ``workshop/notebooks/`` (or ``--out``) with those
blocks and cells removed, for a teacher to hand out (``make workshop``). Everything else, the
outputs included, is kept, so the copies read like the book.

Usage: ``python tools/workshop.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "workshop" / "notebooks"
SOLUTION_TAG = "solution"

SOLUTION_BLOCK = re.compile(
    r"<details>\s*<summary>[^<]*solution[^<]*</summary>.*?</details>\s*", re.IGNORECASE | re.DOTALL
)
"""A collapsed ``<details>`` block whose summary says "solution", up to its closing tag."""


def strip_solutions(text: str) -> str:
    """Markdown without its solution blocks; ``ValueError`` if a solution block is never closed."""
    stripped = SOLUTION_BLOCK.sub("", text)
    if re.search(r"<summary>[^<]*solution", stripped, re.IGNORECASE):
        raise ValueError("a <details><summary>Solution</summary> block has no closing </details>")
    return stripped.rstrip() + ("\n" if text.endswith("\n") else "")


def student_copy(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """The notebook without solutions, and how many blocks and cells were removed."""
    removed = 0
    cells = []
    for cell in notebook.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            text = strip_solutions(cell.source)
            if text != cell.source:
                removed += len(SOLUTION_BLOCK.findall(cell.source))
                if not text.strip():
                    continue
                cell.source = text
        cells.append(cell)
    notebook.cells = cells
    return notebook, removed


def write_student_copies(source: Path = NOTEBOOKS, out: Path = DEFAULT_OUT) -> dict[str, int]:
    """Write a student copy of every numbered notebook in ``source`` to ``out``.

    Returns the number of solutions removed per notebook name.
    """
    out.mkdir(parents=True, exist_ok=True)
    removed = {}
    for path in sorted(source.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        copy, count = student_copy(notebook)
        nbformat.write(copy, out / path.name)  # type: ignore[no-untyped-call]
        removed[path.name] = count
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write student copies of the notebooks, without solutions.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the copies (workshop/notebooks)")
    args = parser.parse_args(argv)
    removed = write_student_copies(out=args.out)
    for name, count in removed.items():
        print(f"{name}: {count} solution(s) removed")
    print(f"student copies of {len(removed)} notebooks in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
