"""``make site``: the book as a static website, from the notebooks' saved outputs.

Sphinx with myst-nb reads a staging folder this script fills: ``index.md`` is the README (its map
of notebooks is the site's front page and table of contents) and ``notebooks/`` holds the
numbered notebooks as saved (never executed here). The settings are in ``site/conf.py``. The
build treats warnings as errors, so a broken cross-link or a notebook missing from the map fails
it; ``make test`` runs it through ``tests/test_site.py``.

Usage: ``python tools/site.py [--out DIR]`` (default ``site/_build/html``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "site"
BUILD = ROOT / "site" / "_build"
DEFAULT_OUT = BUILD / "html"

TOCTREE = """

```{{toctree}}
:hidden:
:maxdepth: 1
:caption: The notebooks

{entries}
```
"""


def stage(staging: Path) -> list[str]:
    """Fill ``staging`` with index.md and the notebooks; returns the notebooks' document names."""
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "notebooks").mkdir(parents=True)
    names = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(path, staging / "notebooks" / path.name)
        names.append(f"notebooks/{path.stem}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (staging / "index.md").write_text(readme + TOCTREE.format(entries="\n".join(names)), encoding="utf-8")
    return names


def sphinx(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """sphinx-build from a staged ``source`` to ``out``, warnings as errors; the finished process."""
    command = [
        sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E", "-c", str(CONF),
        "-d", str(out.parent / "doctrees"), str(source), str(out),
    ]
    return subprocess.run(command, capture_output=True, text=True)


def build(out: Path = DEFAULT_OUT, staging: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Stage the book and build it (see :func:`sphinx`)."""
    source = staging or BUILD / "source"
    stage(source)
    return sphinx(source, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the book as a static website.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (site/_build/html)")
    args = parser.parse_args(argv)
    result = build(args.out)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        print(f"the book as a website: {args.out / 'index.html'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
