"""``make site``: the book builds as a static website with warnings as errors (CI builds it here)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _site_module() -> object:
    spec = importlib.util.spec_from_file_location("site_builder", ROOT / "tools" / "site.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["site_builder"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("myst_nb")
    site = _site_module()
    work = tmp_path_factory.mktemp("site")
    result = site.build(work / "html", staging=work / "source")  # type: ignore[attr-defined]
    assert result.returncode == 0, f"sphinx-build failed (warnings are errors):\n{result.stdout}\n{result.stderr}"
    return work / "html"


def test_every_notebook_is_a_page_linked_from_the_front_page(built: Path) -> None:
    front = (built / "index.html").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        page = built / "notebooks" / f"{path.stem}.html"
        assert page.exists(), f"{path.name} has no page"
        assert f'href="notebooks/{path.stem}.html"' in front, f"the front page does not link {path.name}"


def test_pages_show_saved_outputs_and_cross_links(built: Path) -> None:
    start = (built / "notebooks" / "00_start_here.html").read_text(encoding="utf-8")
    assert 'href="01_estimation.html"' in start  # the notebooks' own links became page links
    estimation = (built / "notebooks" / "01_estimation.html").read_text(encoding="utf-8")
    assert "46.3 K rps" in estimation  # a saved output, not re-executed
    assert "application/vnd.jupyter.widget-state+json" in estimation  # widgets from saved state


def test_a_broken_cross_link_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("myst_nb")
    site = _site_module()
    source = tmp_path / "source"
    (source / "notebooks").mkdir(parents=True)
    start = "notebooks/00_start_here.ipynb"
    (source / start).write_bytes((ROOT / start).read_bytes())
    (source / "index.md").write_text(
        "# Book\n\n[gone](notebooks/99_missing.ipynb)\n\n```{toctree}\nnotebooks/00_start_here\n```\n", encoding="utf-8"
    )
    result = site.sphinx(source, tmp_path / "html")  # type: ignore[attr-defined]
    assert result.returncode != 0
    assert "99_missing" in result.stdout + result.stderr
