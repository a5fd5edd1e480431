# learntolearn: `make book` builds the book, `make test` runs every check.
# Both create the environment (.venv, pinned by constraints.txt) on first use.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHAPTERS := $(sort $(wildcard book/[0-9]*.ipynb))
# Empty: every chapter runs with the profile its parameters cell names (the stored results).
PROFILE ?=
# make reproduce: PLAN=1 prints the plan only; ALLOW_CPU=1 trains the paper profile on a CPU;
# BUDGET=2h stops cleanly after that much training (runs resume from results/in-progress/).
PLAN ?=
ALLOW_CPU ?=
BUDGET ?=

# Read data from ../shared/data when it exists (CI and the team's machines), else download.
ifneq ($(wildcard ../shared/data),)
export LEARNTOLEARN_DATA ?= $(abspath ../shared/data)
endif
export PYTHONHASHSEED := 0
unexport MPLBACKEND
export TQDM_DISABLE ?=

.PHONY: help env book execute html test lint unit slow smoke nbval render chromium reproduce campaign clean

help:
	@echo "make book       build the book (executes chapters from the results store)"
	@echo "make test       all checks: lint, unit tests, smoke runs, nbval, book render"
	@echo "make reproduce  print the plan, then train every experiment of PROFILE (default paper)"
	@echo "                missing from results/ (PLAN=1: plan only; ALLOW_CPU=1: paper on a CPU;"
	@echo "                BUDGET=2h: stop cleanly after 2 h, to be resumed by the same command)"
	@echo "make execute    re-execute the chapter notebooks in place (PROFILE=... to override)"
	@echo "make campaign   the standing queue: missing paper runs, most published numbers per"
	@echo "                CPU-hour first, on both cores (BUDGET=2h30m, WORKERS=2, PLAN=1)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

# Execute every chapter with papermill from the committed results store, then render HTML.
book: execute html

execute: $(STAMP)
	for nb in $(CHAPTERS); do
	  TQDM_DISABLE=1 $(PY) -m learntolearn notebook "$$nb" $(if $(PROFILE),--profile $(PROFILE))
	done

html: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going
	@echo "Book: $(abspath _build/html/index.html)"

test: lint unit slow smoke nbval render

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests book benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

unit: $(STAMP)
	$(VENV)/bin/pytest -q -m "not book and not slow"

# Trainings in other processes: torchrun ranks, a killed and resumed run, parallel searches,
# a new method added to a copy of the package.
slow: $(STAMP)
	$(VENV)/bin/pytest -q -m "slow and not book"

# Every chapter at the smoke profile, into a temporary folder with a fresh results store.
smoke: $(STAMP)
	$(VENV)/bin/pytest -q tests/test_chapters.py -m book -k smoke

# The committed notebooks, re-executed from the committed results store (no training allowed).
nbval: $(STAMP)
	LEARNTOLEARN_NO_TRAIN=1 TQDM_DISABLE=1 $(VENV)/bin/pytest -q -p no:cacheprovider \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(CHAPTERS)

# Build the book with warnings as errors and render the chapter pages in headless Chromium.
render: $(STAMP) chromium
	$(VENV)/bin/pytest -q tests/test_book.py -m book

# Debian's Chromium renders the built pages for the render check.
chromium:
	command -v chromium >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The standing queue on both cores, at the lowest priority, for BUDGET (default 2h30m): start it
# at the beginning of a stretch of work, commit results/ (in-progress/ included) at its end.
campaign: $(STAMP)
	$(PY) -m learntolearn campaign --profile $(or $(PROFILE),paper) --allow-cpu \
	  --budget $(or $(BUDGET),2h30m) --workers $(or $(WORKERS),2) $(if $(PLAN),--plan)

reproduce: $(STAMP)
	$(PY) -m learntolearn reproduce --profile $(or $(PROFILE),paper) \
	  $(if $(PLAN),--plan) $(if $(ALLOW_CPU),--allow-cpu) $(if $(BUDGET),--budget $(BUDGET))

clean:
	rm -rf _build
