# genlab: `make repro` runs the whole pipeline, `make test` the test suite; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
TORCH_VERSION := 2.13.0
# torch goes in first and pinned: a package that asks for torch before that makes pip resolve
# a CUDA build with several GB of nvidia wheels. For a CPU-only machine elsewhere, point
# PIP_TORCH_ARGS at the PyTorch CPU wheel index (`--index-url <index>`).
PIP_TORCH_ARGS ?=
RUN := env PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1

.PHONY: setup repro test test-fast bench lint clean-venv gpu-wheels gpu-check-dry

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_TORCH_ARGS) torch==$(TORCH_VERSION)
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

repro: setup
	$(RUN) dvc repro

test: setup
	$(RUN) python -m pytest

test-fast: setup
	$(RUN) python -m pytest -m "not e2e and not slow"

# The benchmarks that need no earlier `dvc repro` (evaluation.py and dvc_noop.py do): figures,
# not pass/fail; each script's docstring says what it measures and how long it takes.
bench: setup
	$(RUN) python benchmarks/throughput.py
	$(RUN) python benchmarks/ddp.py
	$(RUN) python benchmarks/sweep_launchers.py
	$(RUN) python benchmarks/watermark_robustness.py
	$(RUN) python benchmarks/signing.py

# The GPU check (docs/benchmarks.md): the wheels a GPU machine without network lacks
# (Python 3.12, manylinux x86_64, pinned by constraints.txt; never torch), carried as
# gpu_wheels/, and the same check on this CPU with a few steps each.
gpu-wheels: setup
	rm -rf gpu_wheels
	$(BIN)/python benchmarks/gpu_check.py wheels gpu_wheels

gpu-check-dry: setup
	PYTHON=$(BIN)/python benchmarks/gpu_check.sh outputs/gpu_check_dry --dry-run

lint: setup
	$(BIN)/ruff check src pipelines tests benchmarks
	cd src && $(BIN)/lint-imports --config ../pyproject.toml

clean-venv:
	rm -rf $(VENV)
