# mtlmad: the two commands a newcomer runs are `make demo` and `make test`.
# Both create .venv when no virtual environment is active, then install mtlmad into it.
SHELL := /bin/bash
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

ifdef VIRTUAL_ENV
BIN := $(VIRTUAL_ENV)/bin
else
BIN := $(CURDIR)/.venv/bin
endif
PY := $(BIN)/python
# The CPU build of torch installed when the environment has none (CUDA users install theirs first).
TORCH_PIN ?= torch==2.13.0
STAMP := $(BIN)/../.mtlmad-installed
# nbdev_test flags: `slow` cells run too; `cuda` cells run only where a GPU is present.
TEST_FLAGS ?= slow $(shell $(PY) -c "import torch; print('cuda' if torch.cuda.is_available() else '')" 2>/dev/null)
DEMO_DIR ?= demo_runs
# `make execute` runs these notebooks (default: all of nbs/).
NB ?=
# Two notebooks run at once under nbdev_test: one torch thread each, or their thread pools fight over the cores.
NBTEST := OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(PY):
	python3 -m venv $(BIN)/..

$(STAMP): $(PY) setup.py settings.ini
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create the environment and install mtlmad with its dev tools

demo: setup  ## build the demo data from the embedded MRI, train, evaluate, report
	$(BIN)/mtlmad demo --out $(DEMO_DIR)

sync: setup  ## notebooks clean, package exported, README rebuilt; fails if any of them changed
	$(PY) tools/check_sync.py

nbtest: setup  ## run every notebook (nbdev_test)
	$(NBTEST) --flags "$(TEST_FLAGS)" --timing

pytest: setup  ## the pytest suite
	$(PY) -m pytest tests -q

test: setup  ## every check: sync, notebooks, pytest
	$(PY) tools/check_sync.py
	$(NBTEST) --flags "$(TEST_FLAGS)" --timing
	$(PY) -m pytest tests -q

execute: setup  ## run every notebook and save its outputs (figures) in place; NB=nbs/06_score.ipynb for one
	OMP_NUM_THREADS=1 $(PY) tools/execute_notebooks.py $(NB)

docs: setup  ## build the HTML site from the executed notebooks into _docs/
	$(PY) tools/build_docs.py

wheel: setup  ## build the sdist and wheel, then try the wheel in a brand-new venv outside the repository
	$(PY) tools/smoke_wheel.py

pretrained: setup  ## rebuild the run shipped in mtlmad/pretrained/demo: train the demo schedule (CPU, one thread, fixed seed), measure it, write its model card
	OMP_NUM_THREADS=1 $(PY) -c "from mtlmad.zoo import build_pretrained; build_pretrained()"

export: setup  ## export notebooks to the package and rebuild README.md (no checks)
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(PY) tools/make_readme.py

clean:  ## remove build outputs (keeps .venv)
	rm -rf build dist *.egg-info _proc _docs $(DEMO_DIR)

.PHONY: help setup demo sync nbtest pytest test execute docs wheel pretrained export clean
