# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

# Re-install only when the project's dependency files change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dfd demo

# Unit tests + notebooks (notebooks run in smoke mode: tiny sample, 1 epoch, tiny backbone).
test: $(STAMP)
	DFD_SMOKE=1 $(BIN)/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not notebooks" tests

lint: $(STAMP)
	$(BIN)/ruff check dfdlib tests benchmarks scripts notebooks
	$(BIN)/python scripts/sync_notebooks.py --check

bench: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/predict.py
	$(BIN)/python benchmarks/distributed.py

clean:
	rm -rf runs/ data/sample/ .pytest_cache
