# eqlens: `make app` starts the app, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.eqlens-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

export STREAMLIT_SERVER_FILE_WATCHER_TYPE := none
export STREAMLIT_BROWSER_GATHER_USAGE_STATS := false

.PHONY: setup app test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	# escnn without its py3nj requirement (Fortran build, SO(3) only): see pyproject.toml
	$(PIP) install -c constraints.txt --no-deps escnn==1.0.11
	$(PIP) install -c constraints.txt -e '.[app,dev]'
	touch $(STAMP)

app: $(STAMP)
	$(BIN)/streamlit run app/main.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_gsa_memory.py
	$(BIN)/python benchmarks/bench_app_update.py

clean:
	rm -rf $(VENV)
