# The two commands of the quick start: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-http up chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# The system Chromium and chromedriver (Debian/Ubuntu packages; never a browser download).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get install -y -q chromium chromium-driver || \
	    { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }; }

demo: $(BIN)/.installed chromium  ## the demo portal driven in Chromium by the embedded system (SQLite)
	$(BIN)/botyard demo

up: $(BIN)/.installed  ## orchestrator + local workers on SQLite, until Ctrl-C
	$(BIN)/botyard up

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint chromium  ## lint, type-check, then the whole suite (SQLite, PostgreSQL, Chromium)
	$(BIN)/pytest

bench: $(BIN)/.installed  ## W1/W2/W3 on SQLite and PostgreSQL, median of 3
	$(BIN)/python -m bench.run --backend all --repeat 3

bench-http: $(BIN)/.installed  ## one orchestrator process under wrk (apt-get install wrk), both stores
	$(BIN)/python -m bench.http_load --backend all
