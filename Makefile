# The targets read like the README: `make up` runs the local federation, `make test` the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: up down status test lint format bench clean

$(STAMP): pyproject.toml
	@scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@rm -f $(VENV)/.installed-*
	@touch $@

up: $(STAMP)
	$(BIN)/karmayogi up

down: $(STAMP)
	$(BIN)/karmayogi down

status: $(STAMP)
	$(BIN)/karmayogi status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	@scripts/browser-deps.sh >/dev/null
	@scripts/run-tests.sh $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench/realms.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
