# Two commands on a fresh machine (Python 3.11, pip, no GPU):
#   make demo   - set up .venv if missing, install, run one al_cycle on the embedded dataset and
#                 print what it did (docs/guide/demo.md); the full log goes to logs/kedro.log
#   make test   - set up .venv (and .venv-labelstudio) if missing, install, run the test suite
#   make test-fast - the unit tests only (no Kedro session, process, Ray or training; ~1 minute)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Label Studio, the annotation server the tests start, pins packages the project's venv cannot hold
# (numpy<2.3, Django...), so it has a venv of its own.
LS_VENV := .venv-labelstudio
LS_VERSION := 1.23.2
# Telemetry off for every tool the project drives; ultralytics stays offline.
export DO_NOT_TRACK := true
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export YOLO_OFFLINE := true
export YOLO_CONFIG_DIR := $(CURDIR)/.ultralytics
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install labelstudio demo test test-fast repro benchmark mlflow-ui

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import torch, torchvision; torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)"
	touch $@

install: $(BIN)/.installed

# Also migrates an empty Label Studio database once (minutes); each test session copies it.
$(LS_VENV)/.installed-$(LS_VERSION):
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(LS_VENV)/bin/python -m pip install --quiet "label-studio==$(LS_VERSION)"
	rm -rf $(LS_VENV)/test-data-template
	LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN= \
		$(LS_VENV)/bin/label-studio version --data-dir $(LS_VENV)/test-data-template > /dev/null
	touch $@

labelstudio: $(LS_VENV)/.installed-$(LS_VERSION)

demo: install
	$(BIN)/kedro run --pipelines=al_cycle

# The full suite, which CI runs (.ci/run). Which tests are unit tests: tests/conftest.py.
test: install labelstudio
	$(BIN)/python -m pytest --durations=15

test-fast: install
	$(BIN)/python -m pytest -m unit --durations=15

repro: install
	$(BIN)/dvc repro

benchmark: install
	$(BIN)/dvc repro benchmarks/dvc.yaml:benchmark_transfer_evaluation

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db
