"""The book's own bookkeeping: which notebook and which package name cover each requirement line.

``data/seed-notes.md`` is a copy of the requirements notes the book is built from;
``data/seed_coverage.csv`` maps every non-empty line of it to the notebook that walks through it
and the package name that implements it (or says which planned chapter will). The start
notebook shows the table; :func:`coverage_problems` is what the test suite checks, so a line
cannot go uncovered, and a notebook or a name cannot vanish, without a test failing.

These files live in the repository (the book), not in an installed wheel.
"""

from __future__ import annotations

import csv
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd

REPOSITORY: Final = Path(__file__).resolve().parent.parent
SEED_NOTES: Final = REPOSITORY / "data" / "seed-notes.md"
COVERAGE: Final = REPOSITORY / "data" / "seed_coverage.csv"
NOTEBOOKS: Final = REPOSITORY / "notebooks"
STATUSES: Final = ("covered", "planned")

_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


KINDS: Final = ("requirement", "section", "placeholder")
"""What a line of the notes is: a requirement to work out; a ``section`` heading that only
groups the requirements under it; a ``placeholder`` left empty in the notes (``output:``, or a
heading whose only bullet is blank). Only requirements are counted as the book's coverage."""


@dataclass(frozen=True)
class SeedLine:
    """One non-empty line of the requirements notes, without its markdown markers."""

    line_number: int
    text: str
    depth: int
    """0 for a heading or top-level bullet, 1 for a nested bullet, and so on."""
    kind: str = "requirement"
    """One of :data:`KINDS`."""


def normalise_seed_line(raw: str) -> str:
    """The text of a requirements line: links reduced to their words, markers and blanks dropped."""
    text = _MARKDOWN_LINK.sub(r"\1", raw.strip())
    return text.lstrip("#").strip().removeprefix("- ").removeprefix("-").strip()


def _kind(raws: list[str], index: int) -> str:
    """Classify line ``index`` of the notes (see :data:`KINDS`)."""
    raw = raws[index]
    text = normalise_seed_line(raw)
    if raw.lstrip().startswith("#"):
        bullets = []
        for following in raws[index + 1 :]:
            if following.lstrip().startswith("#"):
                break
            if following.lstrip().startswith("-"):
                bullets.append(normalise_seed_line(following))
        if not bullets:
            return "requirement"  # a heading that is a requirement by itself ("Testing")
        return "section" if any(bullets) else "placeholder"
    indent = len(raw) - len(raw.lstrip(" "))
    has_children = index + 1 < len(raws) and (len(raws[index + 1]) - len(raws[index + 1].lstrip(" "))) > indent
    if text.endswith(":") and not has_children:
        return "placeholder"  # "output:" with nothing after it
    return "requirement"


def read_seed_lines(path: Path = SEED_NOTES) -> list[SeedLine]:
    """Every line of the requirements notes that says something, in order, with its kind."""
    raws = path.read_text(encoding="utf-8").splitlines()
    lines = []
    for number, raw in enumerate(raws, start=1):
        text = normalise_seed_line(raw)
        if text:
            indent = len(raw) - len(raw.lstrip(" "))
            lines.append(SeedLine(number, text, indent // 2, _kind(raws, number - 1)))
    return lines


def load_coverage(path: Path = COVERAGE) -> pd.DataFrame:
    """The coverage table: ``seed_line``, ``notebook``, ``package``, ``status``, ``note``."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = ["seed_line", "notebook", "package", "status", "note"]
    if not rows or list(rows[0]) != expected:
        raise ValueError(f"{path.name} must have the columns {expected}")
    return pd.DataFrame(rows, columns=expected)


def resolve_name(dotted: str) -> object:
    """Import ``package.module.Name.attribute``; ``ValueError`` if any part is missing."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(target, attribute):
                raise ValueError(f"{dotted}: {attribute!r} not found")
            target = getattr(target, attribute)
        return target
    raise ValueError(f"{dotted}: no such module")


def coverage_problems(
    seed_path: Path = SEED_NOTES, coverage_path: Path = COVERAGE, notebooks: Path = NOTEBOOKS
) -> list[str]:
    """Everything wrong with the coverage table; an empty list means every line is covered."""
    problems = []
    table = load_coverage(coverage_path)
    seed_texts = [line.text for line in read_seed_lines(seed_path)]
    mapped = list(table["seed_line"])
    problems += [f"not in the coverage table: {text!r}" for text in seed_texts if text not in mapped]
    problems += [f"not a line of the seed notes: {text!r}" for text in mapped if text not in seed_texts]
    problems += [f"listed twice: {text!r}" for text in sorted(set(mapped)) if mapped.count(text) > 1]
    for row in table.itertuples():
        if row.status not in STATUSES:
            problems.append(f"{row.seed_line!r}: status must be one of {STATUSES}, not {row.status!r}")
        elif row.status == "planned" and not row.note:
            problems.append(f"{row.seed_line!r}: a planned line needs a note saying where it will go")
        if row.status != "covered":
            continue
        if not (notebooks / f"{row.notebook}.ipynb").exists():
            problems.append(f"{row.seed_line!r}: notebook {row.notebook!r} does not exist")
        for name in filter(None, str(row.package).split()):
            try:
                resolve_name(name)
            except ValueError as error:
                problems.append(f"{row.seed_line!r}: {error}")
    return problems


def coverage_table() -> pd.DataFrame:
    """The coverage table for display: the seed lines in order with where each is taught, and
    each line's kind (a requirement, a section heading or an empty placeholder)."""
    table = load_coverage().set_index("seed_line")
    lines = [line for line in read_seed_lines() if line.text in table.index]
    shown = table.reindex([line.text for line in lines])
    shown.insert(0, "kind", [line.kind for line in lines])
    return shown.rename_axis("requirement (seed notes)")


def coverage_counts(table: pd.DataFrame | None = None) -> pd.Series:
    """How many *requirement* lines are covered and planned (headings and placeholders not counted)."""
    shown = coverage_table() if table is None else table
    requirements = shown[shown["kind"] == "requirement"]
    counts = requirements["status"].value_counts().reindex(list(STATUSES), fill_value=0)
    return counts.rename("requirement lines")
