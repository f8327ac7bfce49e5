# Two commands on a fresh machine:  `make run` (set up + demo)  and  `make test` (set up + all checks).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# The CPU build of torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/copilot model export --quiet

run: demo

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/copilot demo

lint: $(STAMP)
	$(BIN)/ruff check copilot tests
	$(BIN)/ruff format --check copilot tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: setup
	HF_HUB_OFFLINE=1 $(BIN)/copilot bench search

clean:
	rm -rf $(VENV) build dist *.egg-info
