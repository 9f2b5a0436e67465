# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mlnb-installed
# Leave one core for the kernels each test worker starts.
PYTEST_WORKERS ?= 2

.PHONY: demo test install lab bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# A kernel spec inside .venv, so papermill and JupyterLab find the kernel that has mlnb.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlnb)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlnb demo

test: $(STAMP)
	$(BIN)/ruff check mlnb tests benchmarks
	# --dist loadfile: a file's tests share its module fixtures on one worker (xdist_group marks are
	# not honoured under pytest 9, whose node ids pytest-xdist 3.8 cannot suffix)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider --durations=12 tests
	# --dist loadfile: a notebook's cells share one kernel, so one worker runs them all
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider --nbval-lax templates
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider --nbval --nbval-sanitize-with notebooks/sanitize.cfg notebooks

# JupyterLab refuses to run as root unless told that it is meant
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
