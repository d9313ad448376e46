# The book's two commands are `make lab` and `make test`; everything else here serves them.
# Each sets up .venv from the exact pins in requirements.txt first (again when they change).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# JupyterLab refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test lint typecheck pytest system-deps notebooks nav bench freeze clean workshop site

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0) if v == (3, 11) else print(f"warning: the pins are for Python 3.11, this is {v[0]}.{v[1]}")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Open the book in JupyterLab; prints the URL that opens 00_start_here directly.
lab: setup
	$(BIN)/python tools/lab.py $(LAB_ARGS)

## Everything CI runs: lint, type-check, unit tests and every notebook under nbval.
test: setup system-deps lint typecheck pytest

system-deps:
	bash tools/system_deps.sh

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

## Re-execute every notebook in a fresh kernel and save its outputs (after changing the package).
notebooks: setup
	for nb in notebooks/*.ipynb; do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; \
	done
	$(BIN)/python tools/navigation.py

## Student copies of every notebook, without the worked solutions, in workshop/notebooks/.
workshop: setup
	$(BIN)/python tools/workshop.py

## The book as a static website from the saved outputs (Sphinx + myst-nb), in site/_build/html.
site: setup
	$(BIN)/python tools/site.py

## Rewrite the navigation cells and the README's map of notebooks.
nav: setup
	$(BIN)/python tools/navigation.py

## Benchmarks print ratios against baselines measured in the same run; one table at the end.
## BENCH_ARGS=--quick for a short run (see benchmarks/_runner.py and CONTRIBUTING.md).
bench: setup system-deps
	$(BIN)/python benchmarks/_runner.py $(BENCH_ARGS)

freeze: setup
	{ echo "# The book's environment: exact pins for Python 3.11 (package ranges live in pyproject.toml)."; \
	  echo "# Regenerate with: make freeze"; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
