# The front door. Every target works on a fresh clone: the first one run creates .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch by default; users with GPUs override, e.g.
#   make TORCH_SPEC='torch' TORCH_INDEX='--index-url https://download.pytorch.org/whl/cu124' install
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
MODEL ?=
ARGS ?=
PYTEST_ARGS ?=
# make sweep knobs; empty means the config's default (conf/config.yaml)
DATA ?=
SAMPLER ?=
TRIALS ?=
SEEDS ?=
WORKERS ?=
STUDY ?=
TRIAL ?=
RUN ?=
REASON ?=
ALLOW_UNFINISHED ?=
TABLE ?=
ROWS ?=
COLUMNS ?=
SWEEP_ARGS = $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) $(if $(SAMPLER),sampler=$(SAMPLER)) \
	$(if $(TRIALS),sweep.trials=$(TRIALS)) $(if $(SEEDS),seeds=$(SEEDS)) \
	$(if $(WORKERS),sweep.workers=$(WORKERS)) $(ARGS)

.DEFAULT_GOAL := help
.PHONY: help install sweep study worker mlflow-server final paper report doctor train test test-fast lint bench bench-workers gpu-check bench-pruning bench-racing bench-fused sweep-against bench-overhead ui ui-check dashboard clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: MODEL=<model; default: conf/config.yaml's>  ARGS='<hydra overrides>'  PORT=5000 (make ui; 8080 make dashboard)  TORCH_SPEC=$(TORCH_SPEC)"

# pip stays quiet; these lines say what runs and about how long (~3 minutes on a fresh clone)
$(VENV)/.installed: pyproject.toml
	@echo "install: creating $(VENV) and installing torch and the project, about 3 minutes in all"
	$(PYTHON) -m venv $(VENV)
	@echo "install: torch ($(TORCH_SPEC)): a large download, about 1-2 minutes, silent while it runs"
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	@echo "install: the project and its libraries (optuna, mlflow, hydra, pytest...): about 1 minute"
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@
	@echo "install: done; make help lists the targets"

install: $(VENV)/.installed ## create .venv and install the project (torch CPU build unless TORCH_SPEC says otherwise)

sweep: $(VENV)/.installed ## search MODEL's space: make sweep MODEL=dan [DATA=] [SAMPLER=grid|random|tpe] [TRIALS=] [SEEDS=] [WORKERS=]
	$(PY) -m sweeps.sweep $(SWEEP_ARGS)

study: $(VENV)/.installed ## create a study for workers on many hosts, queue its grid: make study MODEL=dan ARGS='storage=postgres'
	$(PY) -m sweeps.sweep --create-only $(SWEEP_ARGS)

worker: $(VENV)/.installed ## join a study from any host and run its trials: make worker STUDY=<name> ARGS='storage=postgres'
	@test -n "$(STUDY)" || { echo "error: make worker needs STUDY=<name> (make study prints it)" >&2; exit 2; }
	$(PY) -m sweeps.sweep --join=$(STUDY) $(ARGS)

mlflow-server: $(VENV)/.installed ## MLflow tracking server on a PostgreSQL store: SEEDSWEEP_MLFLOW_DB_URL=... make mlflow-server [HOST=] [PORT=]
	$(PY) -m sweeps.mlflow_server $(ARGS)

final: $(VENV)/.installed ## test-set evaluation, once, of a finished search: make final MODEL=dan [STUDY=] [TRIAL=] [RUN=] [REASON=] [ALLOW_UNFINISHED=1]
	$(PY) -m sweeps.final $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) $(if $(SAMPLER),sampler=$(SAMPLER)) \
		$(if $(STUDY),--study=$(STUDY)) $(if $(TRIAL),--trial=$(TRIAL)) $(if $(RUN),--run=$(RUN)) \
		$(if $(REASON),--reason="$(REASON)") $(if $(ALLOW_UNFINISHED),--allow-unfinished) $(ARGS)

paper: $(VENV)/.installed ## a paper's table, cell by cell over 3 seeds, then docs/results.md: make paper TABLE=iyyer2015 [ROWS=] [COLUMNS=] [SST_ROOT=]
	@test -n "$(TABLE)" || { echo "error: make paper needs TABLE=<$$(ls conf/paper | sed 's/.yaml//' | paste -sd'|')>" >&2; exit 2; }
	$(PY) -m sweeps.paper $(TABLE) $(if $(ROWS),--rows=$(ROWS)) $(if $(COLUMNS),--columns=$(COLUMNS)) \
		$(if $(REASON),--reason="$(REASON)") $(ARGS)
	$(PY) -m analysis.paper $(ARGS)

report: $(VENV)/.installed ## tables, plots and report.md of a study under reports/<study>/: make report MODEL=dan [STUDY=]; make report TABLE=all: docs/results.md, every paper table
	$(if $(TABLE),$(PY) -m analysis.paper $(ARGS) && exit 0;) $(PY) -m analysis.report $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) $(if $(SAMPLER),sampler=$(SAMPLER)) \
		$(if $(STUDY),--study=$(STUDY)) $(ARGS)

doctor: $(VENV)/.installed ## check a study against MLflow and repair disagreements: make doctor MODEL=dan [STUDY=] [ARGS=--dry-run]
	$(PY) -m sweeps.doctor $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) $(if $(SAMPLER),sampler=$(SAMPLER)) \
		$(if $(STUDY),--study=$(STUDY)) $(ARGS)

train: $(VENV)/.installed ## train one configuration over K seeds: make train MODEL=dan ARGS='data=sst2 seeds=3'
	$(PY) -m sweeps.train $(if $(MODEL),model=$(MODEL)) $(ARGS)

test: $(VENV)/.installed ## run the whole test suite, slow end-to-end tests included
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed ## run the tests not marked slow
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed ## ruff over the code
	$(PY) -m ruff check models sweeps analysis tests benchmarks

bench: $(VENV)/.installed ## speed suite (~10 min): DAN vs plain loop, K seeds stacked vs one after another, NPLM GFLOP/s and PTB-size step, sweep overhead
	$(PY) -m benchmarks.suite $(ARGS)

bench-workers: $(VENV)/.installed ## trials/hour with 1 and 2 workers on PostgreSQL, and a kill's retry time (~10 min)
	$(PY) -m benchmarks.workers $(if $(TRIALS),--trials $(TRIALS)) $(ARGS)

# torch alone (the lent GPU machine has no optuna/mlflow/hydra): system python unless PY_GPU=...
PY_GPU ?= $(if $(wildcard $(VENV)/bin/python),$(PY),$(PYTHON))
gpu-check: ## on a machine with a GPU: stacked-seed parity, NPLM tokens/s, DAN seeds stacked (torch only)
	$(PY_GPU) -m benchmarks.gpu_check $(ARGS)

bench-pruning: $(VENV)/.installed ## default DAN sweep, pruner=patience against none: seed-epochs, best dev (~1 h; --parallel: arms side by side)
	$(PY) -m benchmarks.pruning --trials $(or $(TRIALS),30) -- $(ARGS)

bench-racing: $(VENV)/.installed ## DAN on RT, seeds_policy fixed (K=5) against race 1->5 over 3 sampler seeds: seed-epochs, wall, winners [TRIALS=40] [EPOCHS=5]
	$(PY) -m benchmarks.racing --trials $(or $(TRIALS),40) --max-epochs $(or $(EPOCHS),5) -- $(ARGS)

bench-fused: $(VENV)/.installed ## a 20-trial DAN grid (lr x wd) on RT fused as one model, against seeds stacked a trial and alone: time, parity [TRIALS=20] [EPOCHS=5]
	$(PY) -m benchmarks.fused --trials $(or $(TRIALS),20) --epochs $(or $(EPOCHS),5) $(ARGS)

sweep-against: $(VENV)/.installed ## the default DAN sweep end to end, this checkout against REV (default 57cfc5b), back to back, and this checkout with WORKERS=1 [TRIALS=12] [ARGS='<overrides>']
	$(PY) -m benchmarks.sweep_against --rev $(or $(REV),57cfc5b) --trials $(or $(TRIALS),12) --also sweep.workers=1 $(if $(ARGS),-- $(ARGS))

bench-overhead: $(VENV)/.installed ## a sweep's overhead counted: MLflow calls a trial, weight files, git calls, modules imported per command [TRIALS=4]
	$(PY) -m benchmarks.overhead --trials $(or $(TRIALS),4) $(if $(ARGS),-- $(ARGS))

ui: $(VENV)/.installed ## MLflow UI on http://127.0.0.1:$PORT (default 5000) over the local store (runs/); prints each experiment's runs-table link
	PORT=$(or $(PORT),5000) $(PY) -m sweeps.ui

ui-check: $(VENV)/.installed ## make ui in headless chromium (apt-get install chromium) lands on the runs table; screenshot /tmp/seedsweep-ui-check.png
	@$(PY) -c 'import playwright' 2>/dev/null || $(PY) -m pip install --quiet 'playwright>=1.40'
	SEEDSWEEP_UI_SHOT=$${TMPDIR:-/tmp}/seedsweep-ui-check.png $(PY) -m pytest -q -rs -m browser tests/sweeps/test_ui_browser.py && echo "screenshot: $${TMPDIR:-/tmp}/seedsweep-ui-check.png"

dashboard: $(VENV)/.installed ## optuna-dashboard on http://127.0.0.1:$PORT (default 8080) over the sweeps' study storage: [ARGS='storage=postgres']
	@$(PY) -c 'import optuna_dashboard' 2>/dev/null || $(PY) -m pip install --quiet 'optuna-dashboard>=0.15'
	PORT=$(or $(PORT),8080) $(PY) -m sweeps.dashboard $(ARGS)

clean: ## remove the local runs (MLflow store, Optuna studies); keeps .venv and the data cache
	rm -rf runs outputs
