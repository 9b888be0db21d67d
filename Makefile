# Two entry points (README.md): `make pipeline` and `make test`. Both build the venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build `make install` puts in the venv (docs/development.md "Installation"). cpu (default): PyTorch's CPU
# index serves 2.13.0+cpu, which satisfies the torch==2.13.0 pin (a local wheel of that build, where pip
# finds one, does too). cuda: PyPI's own torch 2.13.0 wheel, built against CUDA 13.0 (its metadata
# requires cuda-toolkit 13.0.3), several GB. TORCH_INDEX=<url> names another PyTorch index (cu126...).
TORCH ?= cpu
TORCH_INDEX_cpu := https://download.pytorch.org/whl/cpu
TORCH_INDEX_cuda :=
TORCH_INDEX ?= $(TORCH_INDEX_$(TORCH))
ifeq ($(filter $(TORCH),cpu cuda),)
$(error TORCH must be cpu or cuda (got '$(TORCH)'))
endif
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
# Stage commands (seqlab, dvc) resolve from the venv without activating it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install vega shell fonts pipeline plots timed-repro results bench test test-fast lint ui clean-state

# The venv is rebuilt when the requirement files change; the stamp records a finished install.
# (Switching TORCH in an existing venv: remove .venv first; pip keeps an installed torch of the pinned version.)
$(VENV)/.installed: requirements.txt requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# trdg needs arabic-reshaper 2.1.3, whose metadata pip >= 24.1 rejects: keep pip below that.
	$(BIN)/python -m pip install -q "pip<24.1"
	# torch first, so only its lookups see TORCH_INDEX; --retries 1: an unreachable index is skipped
	# after one retry and pip takes the other sources (a local wheel, PyPI).
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--retries 1 --extra-index-url $(TORCH_INDEX)) \
		-c requirements-lock.txt "$$(grep -E '^torch==' requirements.txt)"
	$(BIN)/python -m pip install -q -r requirements.txt -c requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed fonts vega  ## the venv (TORCH=cpu|cuda, default cpu), the OCR font packages, Vega

# Vega, Vega-Lite and vega-embed for the offline plots page (`make plots`), pinned by the lock file;
# npm ci rewrites node_modules/.package-lock.json, the stamp. Without npm the rest still installs.
VEGA_STAMP := tools/vega/node_modules/.package-lock.json
vega: $(VEGA_STAMP)
$(VEGA_STAMP): tools/vega/package.json tools/vega/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tools/vega --no-audit --no-fund --loglevel=error \
		|| echo "make: npm ci failed, Vega skipped: 'make plots' needs it" >&2; \
	else echo "make: npm not found, Vega skipped: 'make plots' needs it (apt-get install npm)" >&2; fi

shell: install  ## an interactive shell with the venv active: seqlab, dvc, mlflow on PATH (`exit` leaves it)
	@echo "venv $(VENV) active: seqlab, dvc, mlflow, pytest are on PATH; 'exit' returns"
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $${SHELL:-/bin/bash} -i

fonts:  ## Debian font packages of the OCR font inventory (installs with apt-get when root)
	scripts/install_fonts.sh

pipeline: install  ## run the whole DVC pipeline on params.yaml
	$(BIN)/dvc repro

timed-repro: install  ## rerun every stage (dvc repro -f, stage by stage), times -> metrics/pipeline_times.json
	$(BIN)/python scripts/timed_repro.py --force

plots: install  ## `dvc plots show` as a page that draws offline (Vega inlined) -> dvc_plots/index.html
	$(BIN)/python tools/dvc_plots.py show

results: install  ## regenerate the results blocks of README.md, docs/results.md, docs/benchmarks.md from metrics/
	$(BIN)/python scripts/results_table.py --write README.md docs/results.md docs/benchmarks.md

bench: install  ## benchmark suite, each figure a ratio measured in one run -> metrics/bench.json (idle machine)
	$(BIN)/seqlab bench

test: lint  ## lint, type-check and run the whole test suite (the CI gate); lists the 15 slowest tests
	$(BIN)/python -m pytest -q --durations=15

test-fast: install  ## the unit tier (the folder tests/unit) less its few `slow` tests (about a minute); no lint
	$(BIN)/python -m pytest -q -m "not slow" tests/unit

lint: install  ## ruff over all Python code, mypy over the package (config: pyproject [tool.mypy])
	$(BIN)/ruff check src tests tools benchmarks scripts
	$(BIN)/mypy

ui: install  ## MLflow UI on the repository's store, bound to 127.0.0.1
	@$(BIN)/python tools/mlflow_ui.py links --base http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
		--artifacts-destination $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000 --workers 1
