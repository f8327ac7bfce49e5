# Two commands on a fresh machine:  `make run` (set up + demo)  and  `make test` (set up + all checks).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test lint bench clean package package-smoke

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

# The desktop bundle (packaging/): PyInstaller, one folder, no torch. The ONNX model is exported
# here with the venv's CPU torch (already installed: `pip install .[package]` adds only
# PyInstaller), then shipped in the bundle. Not part of `make test`: the build takes minutes.
PACKAGE_STAMP := $(VENV)/.package-installed
PACKAGE_MODEL := build/package-model

$(PACKAGE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[package]'
	touch $(PACKAGE_STAMP)

package: $(PACKAGE_STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/copilot --data-dir $(PACKAGE_MODEL) model export --quiet
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/copilot.spec
	du -sh dist/agent-copilot

# Build, then start the bundle offscreen with a temporary data dir, replay a demo, screenshot.
package-smoke: package
	$(BIN)/python packaging/smoke_test.py dist/agent-copilot

clean:
	rm -rf $(VENV) build dist *.egg-info
