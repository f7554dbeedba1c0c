# Two commands on a fresh machine: `make demo` and `make test`. The rest is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
UV_VERSION := 0.13.9
# The embedded default: everything under .seedance/ in this folder.
export SEEDANCE_STORAGE_URL ?= $(CURDIR)/.seedance/storage
export DAGSTER_HOME ?= $(CURDIR)/.seedance/dagster_home

.PHONY: demo test test-quick check install sysdeps ui clean bench bench-quick reliability lifecycle

# Exactly the versions in uv.lock (`uv lock` after changing pyproject.toml); --inexact keeps pip and uv,
# which installed the environment, in it. Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set
# (CI machines), every command would otherwise compile Dagster's source again, 4 s of each CLI start.
$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv sync --quiet --locked --inexact --active --compile-bytecode \
		--extra simulator --extra ui --extra test --extra lint --extra bench
	$(BIN)/python -m compileall -q -j 0 seedance_pipeline benchmarks seedance_pipeline_tests >/dev/null
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: | $(STAMP)
	$(BIN)/python -c 'import sys, pathlib, seedance_pipeline.event_logs.instance_config as c; c.ensure_instance_config(pathlib.Path(sys.argv[1]))' $(DAGSTER_HOME)

# Sample images and prompts into local storage, then the main job against the built-in simulator.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/seedance-pipeline demo-data
	$(BIN)/seedance-pipeline run

# What the test suite needs from the system: Debian's chromium for the UI test, Debian's PostgreSQL server
# binaries for the production-instance tests (each test session runs a private cluster on loopback).
sysdeps:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The formatter, the linter, the type checker, the import contract (docs/architecture.md) and Dagster's own
# check of the definitions.
check: $(STAMP)
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs

test: check sysdeps
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

# Everything but the tests marked postgres, browser or slow (seedance_pipeline_tests/conftest.py): no system
# packages needed, under two minutes on two cores.
test-quick: check
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m "not postgres and not browser and not slow"

# The full fault campaign (>= 200 clips, seeded; S3 on moto behind a write-failing proxy, one provider
# down for a minute). CI runs a small one inside `make test` (seedance_pipeline_tests/test_campaign.py).
CLIPS ?= 200
SEED ?= 1
reliability: $(STAMP)
	$(BIN)/python -m seedance_pipeline_tests.campaign --clips $(CLIPS) --seed $(SEED) --storage s3 --outage-s 60

# A simulated month of daily use (seeded): files added, deleted, renamed and replaced, prompts edited, reverted,
# deleted and restored, one provider throttling, one forgetting tasks, a run killed each week; the invariants
# checked after every day. CI runs four days of it (seedance_pipeline_tests/test_lifecycle.py).
DAYS ?= 30
lifecycle: $(STAMP)
	$(BIN)/python -m seedance_pipeline_tests.lifecycle --days $(DAYS) --seed $(SEED)

# The Dagster UI (and daemon: sensors, schedule) on the demo's history: http://127.0.0.1:3000
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Performance benchmarks: every figure with its target, PASS/MISS and the load average (benchmarks/README.md).
# Full: under 10 minutes on 2 cores. Quick: scaled sizes and latencies (CI), figures printed, not judged.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .seedance
