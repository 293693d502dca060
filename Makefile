# The targets read like the README: `make up` runs the local federation, `make test` the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=
# Parallel pytest workers (docs/decisions.md, "Parallel test workers"); PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2

.PHONY: up down status test test-deps lint format bench clean system-deps translations

$(STAMP): pyproject.toml
	@scripts/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian packages the kit needs beyond Python: gettext compiles the portal's translations,
# PostgreSQL serves the test suite, Pango (with HarfBuzz) and the Noto fonts let WeasyPrint
# shape certificates in every Indian script; each is installed only when missing.
system-deps:
	@scripts/ensure-system-packages.sh gettext postgresql libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-core

translations: system-deps
	@scripts/compile-translations.sh

up: $(STAMP) translations
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

# The production tests terminate TLS with nginx and make Chromium trust their CA with certutil;
# the VM tests build a Debian root with debootstrap, boot it with systemd-nspawn in a network
# namespace (iproute2) and reach it over SSH (docs/vm.md, "The test host"); the directory tests
# run their own slapd (never the system's instance) and fill it with ldapadd; the chart tests'
# control plane makes its certificates with openssl (its tools are built with the machine's Go,
# tests/rig/kube_tools.py).
test-deps:
	@scripts/ensure-system-packages.sh --no-start nginx libnss3-tools \
		debootstrap systemd-container iproute2 openssh-client slapd ldap-utils openssl

test: lint translations test-deps
	@scripts/browser-deps.sh >/dev/null
	@scripts/run-tests.sh $(BIN)/pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	@scripts/ensure-system-packages.sh wrk
	$(BIN)/python scripts/bench/realms.py
	$(BIN)/python scripts/bench/portal.py
	$(BIN)/python scripts/bench/federation.py
	$(BIN)/python scripts/bench/xapi.py
	$(BIN)/python scripts/bench/up.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
