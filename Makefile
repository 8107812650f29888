# Two commands do everything on a fresh machine (Python >= 3.11 with venv):
#   make run    set up .venv and run the whole workflow on the embedded simulated sites
#   make test   set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all

.PHONY: setup run test benchmark lint report dry-run

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

test: setup
	$(VENV)/bin/pytest

benchmark: setup
	$(PY) scripts/benchmark_training.py

lint: setup
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/snakefmt --check workflow
	$(VENV)/bin/snakemake --lint

dry-run: setup
	$(VENV)/bin/snakemake -n

report: setup
	$(VENV)/bin/snakemake --report report.html
