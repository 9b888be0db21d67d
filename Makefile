# Two entry points (see README): `make pipeline` and `make test`. Both build the venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
# Stage commands (seqlab, dvc) resolve from the venv without activating it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install fonts pipeline timed-repro results test lint ui clean-state

# The venv is rebuilt when the requirement files change; the stamp records a finished install.
$(VENV)/.installed: requirements.txt requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# trdg needs arabic-reshaper 2.1.3, whose metadata pip >= 24.1 rejects: keep pip below that.
	$(BIN)/python -m pip install -q "pip<24.1"
	$(BIN)/python -m pip install -q -r requirements.txt -c requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed fonts

fonts:  ## Debian font packages of the OCR font inventory (installs with apt-get when root)
	scripts/install_fonts.sh

pipeline: install  ## run the whole DVC pipeline on params.yaml
	$(BIN)/dvc repro

timed-repro: install  ## rerun every stage (dvc repro -f, stage by stage), times -> metrics/pipeline_times.json
	$(BIN)/python scripts/timed_repro.py --force

results: install  ## write README.md's results block from metrics/*.json
	$(BIN)/python scripts/results_table.py --write README.md

test: lint  ## lint, type-check and run the test suite
	$(BIN)/python -m pytest -q

lint: install  ## ruff over all Python code, mypy over the package (config: pyproject [tool.mypy])
	$(BIN)/ruff check src tests tools benchmarks scripts
	$(BIN)/mypy

ui: install  ## MLflow UI on the repository's store, bound to 127.0.0.1
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--artifacts-destination $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000 --workers 1
