# Every target creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench soak clean

# dbt Core comes with the extras, so `make test` and `make demo` run real dbt; the constraint
# keeps dbt-core below 1.12 (see constraints/dbt.txt).
EXTRAS := dev,postgres,emulator,dbt-duckdb,dbt-postgres

$(STAMP): pyproject.toml constraints/dbt.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/dbt.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench soak
	$(BIN)/ruff format --check src tests bench soak
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/afterload demo

BENCH_ARGS ?=
BARS_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_bars.py $(BARS_ARGS)

SOAK_SECONDS ?= 600
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python soak/run.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-output
