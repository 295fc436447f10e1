# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Debian's prometheus package: promtool for the alert-rule tests, the server for the Prometheus test and `make run`.
PROMETHEUS_INSTALL := apt-get install -y --no-install-recommends prometheus

.PHONY: install prometheus-tools run test lint unit integration bench republish rebuild clean

$(INSTALLED): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

install: $(INSTALLED)

## prometheus-tools: installs Debian's prometheus when promtool or prometheus is missing (as root, or with sudo)
prometheus-tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=sudo; \
		else echo "The tests need Debian's prometheus package (promtool too). Run: sudo $(PROMETHEUS_INSTALL)" >&2; exit 1; fi; \
		echo "installing Debian's prometheus (promtool, prometheus)"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo $(PROMETHEUS_INSTALL) -qq >/dev/null; \
	fi

## run: the whole stack in the foreground (PostgreSQL, broker, every service); Ctrl-C stops it
run: $(INSTALLED)
	$(PY) -m devstack .var

## test: lint, type-check, then every test against real PostgreSQL and broker
test: lint unit integration

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(INSTALLED) prometheus-tools
	$(PY) -m pytest tests/unit -q

integration: $(INSTALLED) prometheus-tools
	$(PY) -m pytest tests/integration -q

## bench: throughput figures, each against a baseline measured in the same run
bench: $(INSTALLED)
	$(PY) -m bench.intake
	$(PY) -m bench.escalation
	$(PY) -m bench.scoring
	$(PY) -m bench.projections

## republish: make the relay publish every stored event again (FROM=position, default 0)
republish: $(INSTALLED)
	$(PY) -m services.complaints republish --from-position $(or $(FROM),0)

## rebuild: rebuild the read models from zero beside the live ones (of `make run`) and compare
rebuild: $(INSTALLED)
	$(PY) -m services.projections rebuild

clean:
	rm -rf .var
