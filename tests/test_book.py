"""The requirements checklist: every line of the seed notes is mapped, and the map is true."""

from pathlib import Path

import pytest

from chatdesign import book

SHARED_SEED_NOTES = book.REPOSITORY.parent / "shared" / "requirements" / "seed-notes.md"


def test_every_requirement_line_is_covered_by_an_existing_notebook_and_name() -> None:
    assert book.coverage_problems() == []


@pytest.mark.skipif(not SHARED_SEED_NOTES.exists(), reason="no shared/ checkout beside this repository")
def test_seed_notes_copy_matches_the_project_notes() -> None:
    assert book.SEED_NOTES.read_text(encoding="utf-8") == SHARED_SEED_NOTES.read_text(encoding="utf-8")


def test_normalise_seed_line() -> None:
    assert book.normalise_seed_line("### [Chat Server](https://example.org/x)") == "Chat Server"
    assert book.normalise_seed_line("  - idempotent key") == "idempotent key"
    assert book.normalise_seed_line("- ") == ""


def test_problems_are_reported(tmp_path: Path) -> None:
    seed = tmp_path / "seed.md"
    seed.write_text("# Title\n- covered line\n  - forgotten line\n", encoding="utf-8")
    (tmp_path / "01_real.ipynb").write_text("{}", encoding="utf-8")
    coverage = tmp_path / "coverage.csv"
    coverage.write_text(
        "seed_line,notebook,package,status,note\n"
        "Title,01_real,chatdesign.units.parse_bytes,covered,\n"
        "covered line,02_missing,chatdesign.units.no_such_name,covered,\n"
        "invented line,01_real,,planned,\n",
        encoding="utf-8",
    )
    problems = book.coverage_problems(seed, coverage, tmp_path)
    assert "not in the coverage table: 'forgotten line'" in problems
    assert "not a line of the seed notes: 'invented line'" in problems
    assert "'covered line': notebook '02_missing' does not exist" in problems
    assert "'covered line': chatdesign.units.no_such_name: 'no_such_name' not found" in problems
    assert "'invented line': a planned line needs a note saying where it will go" in problems
    assert not any("Title" in p for p in problems)


def test_resolve_name() -> None:
    from chatdesign.units import parse_bytes

    assert book.resolve_name("chatdesign.units.parse_bytes") is parse_bytes
    with pytest.raises(ValueError, match="no such module"):
        book.resolve_name("nosuchpackage.thing")


def test_coverage_table_follows_the_seed_order() -> None:
    table = book.coverage_table()
    texts = [line.text for line in book.read_seed_lines()]
    assert list(table.index) == texts


def test_only_requirement_lines_are_counted(tmp_path: Path) -> None:
    from chatdesign.book import read_seed_lines

    notes = tmp_path / "notes.md"
    notes.write_text(
        "### Topic\n- a requirement\n  - output:\n  - input: a, b\n#### Empty\n- \n### Testing\n", encoding="utf-8"
    )
    kinds = {line.text: line.kind for line in read_seed_lines(notes)}
    assert kinds == {
        "Topic": "section",
        "a requirement": "requirement",
        "output:": "placeholder",
        "input: a, b": "requirement",
        "Empty": "placeholder",
        "Testing": "requirement",
    }


def test_coverage_counts_requirements_only() -> None:
    from chatdesign.book import coverage_counts, coverage_table

    table = coverage_table()
    counts = coverage_counts(table)
    assert counts.sum() == (table["kind"] == "requirement").sum() < len(table)
    assert "…" not in "".join(table["note"])
