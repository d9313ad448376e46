"""Write the book's navigation from the notebooks' own titles, so it never goes stale.

For every ``notebooks/NN_*.ipynb`` this puts a "< previous | contents | next >" markdown cell at
the top and the bottom, fills the contents cell of ``00_start_here.ipynb``, and rewrites the map
of notebooks in ``README.md`` between its two marker comments. A notebook's title is the first
``# `` heading of its first non-navigation markdown cell; its summary is the first paragraph
after that heading.

Usage: ``python tools/navigation.py`` (rewrite) or ``python tools/navigation.py --check``
(exit 1 and list what is stale; the test suite runs this).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
CONTENTS_NOTEBOOK = "00_start_here.ipynb"
NAV_KEY = "chatdesign_navigation"
MAP_START = "<!-- notebook-map:start (written by tools/navigation.py) -->"
MAP_END = "<!-- notebook-map:end -->"


@dataclass(frozen=True)
class Chapter:
    """One notebook as the navigation sees it."""

    path: Path
    title: str
    summary: str


def _is_navigation(cell: nbformat.NotebookNode) -> bool:
    return NAV_KEY in cell.get("metadata", {})


def read_chapter(path: Path) -> Chapter:
    """Title and summary of one notebook; ``ValueError`` if it has no ``# `` title cell."""
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    for cell in notebook.cells:
        if cell.cell_type != "markdown" or _is_navigation(cell):
            continue
        lines = cell.source.strip().splitlines()
        if not lines or not lines[0].startswith("# "):
            break
        paragraphs = "\n".join(lines[1:]).strip().split("\n\n")
        summary = " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
        return Chapter(path, lines[0][2:].strip(), summary)
    raise ValueError(f"{path.name}: the first markdown cell must start with a '# NN · Title' heading")


def chapters() -> list[Chapter]:
    """Every numbered notebook, in order."""
    return [read_chapter(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]


def _link(chapter: Chapter) -> str:
    return f"[{chapter.title}]({chapter.path.name})"


def navigation_text(book: list[Chapter], index: int) -> str:
    """The "< previous | contents | next >" line for the notebook at ``index``."""
    parts = []
    if index > 0:
        parts.append(f"< {_link(book[index - 1])}")
    if book[index].path.name != CONTENTS_NOTEBOOK:
        parts.append(f"[Contents]({CONTENTS_NOTEBOOK})")
    if index + 1 < len(book):
        parts.append(f"{_link(book[index + 1])} >")
    return " | ".join(parts)


def contents_text(book: list[Chapter]) -> str:
    """The contents list shown in the start notebook.

    A bulleted list: the titles carry the notebooks' own numbers, and a numbered list would
    renumber them (HTML counts 0, 1, 2 ... whatever the notebooks skip).
    """
    lines = ["## Contents", ""]
    lines += [f"- {_link(c)}: {c.summary}" for c in book]
    return "\n".join(lines)


def readme_map(book: list[Chapter]) -> str:
    """The README's table of notebooks."""
    rows = ["| Notebook | What it teaches |", "| --- | --- |"]
    rows += [f"| [{c.title}](notebooks/{c.path.name}) | {c.summary} |" for c in book]
    return "\n".join(rows)


def _nav_cell(text: str, role: str) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = nbformat.v4.new_markdown_cell(text, id=f"navigation-{role}")  # type: ignore[no-untyped-call]
    cell.metadata[NAV_KEY] = role
    return cell


def updated_notebook(book: list[Chapter], index: int) -> str:
    """The notebook's JSON with fresh navigation (and contents) cells."""
    notebook = nbformat.read(book[index].path, as_version=4)  # type: ignore[no-untyped-call]
    cells = [c for c in notebook.cells if not _is_navigation(c)]
    text = navigation_text(book, index)
    extra = []
    if book[index].path.name == CONTENTS_NOTEBOOK:
        extra = [_nav_cell(contents_text(book), "contents")]
    # The contents cell goes right after the title cell.
    notebook.cells = [_nav_cell(text, "top"), *cells[:1], *extra, *cells[1:], _nav_cell(text, "bottom")]
    written: str = nbformat.writes(notebook)  # type: ignore[no-untyped-call]
    return written + "\n"


def updated_readme(book: list[Chapter]) -> str:
    """README.md with a fresh map; ``ValueError`` if its markers are missing."""
    text = README.read_text(encoding="utf-8")
    if MAP_START not in text or MAP_END not in text:
        raise ValueError(f"README.md needs the two markers {MAP_START!r} and {MAP_END!r}")
    head, rest = text.split(MAP_START, 1)
    _, tail = rest.split(MAP_END, 1)
    return f"{head}{MAP_START}\n{readme_map(book)}\n{MAP_END}{tail}"


def stale_files(write: bool) -> list[Path]:
    """Files whose navigation is out of date; rewritten when ``write`` is true."""
    book = chapters()
    wanted = {c.path: updated_notebook(book, i) for i, c in enumerate(book)}
    wanted[README] = updated_readme(book)
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]
    if write:
        for path in stale:
            path.write_text(wanted[path], encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    stale = stale_files(write=not args.check)
    for path in stale:
        verb = "stale" if args.check else "updated"
        print(f"{verb}: {path.relative_to(ROOT)}")
    if args.check and stale:
        print("run `make nav` to rewrite the navigation", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
