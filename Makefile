# Two commands do everything on a fresh machine (Python >= 3.11 with venv):
#   make run    set up .venv and run the whole workflow on the embedded simulated sites
#   make test   set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all

THROUGHPUT ?= docs/measurements/h200-2026-11-27.jsonl
CONFIG ?= config/config.yaml

.PHONY: setup run test benchmark cost gpu-check lint report dry-run

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES) --show-failed-logs

test: setup
	$(VENV)/bin/pytest

benchmark: setup
	$(PY) scripts/benchmark_training.py

# GPU-hours, SLURM jobs and runtime per job of a config, from measured throughput, e.g.
#   make cost CONFIG=config/paper.yaml COST_ARGS="--site M1S1=302:34000 --site M2S1=299:49000"
cost: setup
	$(PY) -m sacnn.cost --configfile $(CONFIG) --throughput $(THROUGHPUT) $(COST_ARGS)

# Every GPU measurement (throughput, precision, profile) in ~7 minutes: make gpu-check OUT=dir
gpu-check: setup
	PYTHON=$(PY) scripts/gpu_check.sh $(or $(OUT),gpu-check) $(SITE)

lint: setup
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/snakefmt --check workflow
	$(VENV)/bin/snakemake --lint

dry-run: setup
	$(VENV)/bin/snakemake -n

report: setup
	$(VENV)/bin/snakemake --report report.html
