# Two commands on a fresh machine (Python 3.11, pip, no GPU):
#   make demo   - set up .venv if missing, install, run one al_cycle on the embedded dataset
#   make test   - set up .venv if missing, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Telemetry off for every tool the project drives; ultralytics stays offline.
export DO_NOT_TRACK := true
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export YOLO_OFFLINE := true
export YOLO_CONFIG_DIR := $(CURDIR)/.ultralytics
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test repro benchmark mlflow-ui

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -c "import torch, torchvision; torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/kedro run --pipeline=al_cycle

test: install
	$(BIN)/python -m pytest

repro: install
	$(BIN)/dvc repro

benchmark: install
	$(BIN)/dvc repro benchmarks/dvc.yaml:benchmark_transfer

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db
