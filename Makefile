# Everything runs from the project's own virtual environment, created on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# checkov, the manifests' and the Dockerfile's security scan, in a virtual environment of its own: its pins
# conflict with the project's (tabulate), so it has its own lock, requirements-checkov.lock.
CHECKOV_VENV := .venv-checkov
CHECKOV_INSTALLED := $(CHECKOV_VENV)/.installed
# How `make lock` compiles: hashes of every file of each pinned release; the image's Python; the versions already
# pinned are kept unless UPGRADE says otherwise.
UV_COMPILE := --generate-hashes --python-version 3.11 --custom-compile-command "make lock" --quiet \
	$(if $(filter 1,$(UPGRADE)),--upgrade,$(foreach package,$(UPGRADE),--upgrade-package $(package)))

# Installs a Debian package when one of its commands is missing (as root, or with sudo), else says how.
# $(1): the commands, $(2): the package, $(3): who needs it
define debian_package
	@missing=; for command in $(1); do command -v $$command >/dev/null || missing=yes; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=sudo; \
		else echo "$(3) need Debian's $(2) package. Run: sudo apt-get install -y --no-install-recommends $(2)" >&2; exit 1; fi; \
		echo "installing Debian's $(2) ($(1))"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends -qq $(2) >/dev/null; \
	fi
endef

.PHONY: image image-tools replay-dead-letters help install lock checkov-tool bytecode prometheus-tools wrk-tool run test lint unit integration bench republish rebuild verify-audit clean

## help: this list of targets (the default)
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); split($$0, part, ": "); printf "  make %-17s %s\n", part[1], substr($$0, length(part[1]) + 3); next } \
	      /^## / { sub(/^## /, ""); printf "  %-22s %s\n", "", $$0 }' $(MAKEFILE_LIST)

$(INSTALLED): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

## install: the virtual environment .venv with every locked dependency (made on first use by every target)
install: $(INSTALLED)

## lock: compile requirements.lock (pyproject.toml's dependencies and its `dev` extra), requirements-runtime.lock
## (the image's: the dependencies alone, at requirements.lock's versions) and requirements-checkov.lock again with
## uv, hashed, keeping every version already pinned; UPGRADE=1 takes the newest of everything, UPGRADE="name ..."
## the newest of those packages
lock: $(INSTALLED)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(UV_COMPILE) --output-file requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml $(UV_COMPILE) --constraint requirements.lock --no-annotate \
		--output-file requirements-runtime.lock
	echo checkov | $(VENV)/bin/uv pip compile - $(UV_COMPILE) --output-file requirements-checkov.lock

$(CHECKOV_INSTALLED): requirements-checkov.lock
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-checkov.lock
	touch $@

## checkov-tool: checkov in .venv-checkov, for the security scan of the manifests and the Dockerfile (a unit test)
checkov-tool: $(CHECKOV_INSTALLED)

## bytecode: compile the project's modules ahead (where PYTHONDONTWRITEBYTECODE is set, as here, Python
## never caches them itself, and every service start compiled them again: 0.15-0.2 s of scoring's restart)
bytecode: $(INSTALLED)
	$(PY) -m compileall -q services shared devstack bench

## prometheus-tools: Debian's prometheus (promtool for the alert-rule tests, the server for the Prometheus test and `make run`)
prometheus-tools:
	$(call debian_package,promtool prometheus prometheus-postgres-exporter,prometheus prometheus-postgres-exporter,The tests)

## wrk-tool: Debian's wrk, the C load generator the intake benchmark drives HTTP with
wrk-tool:
	$(call debian_package,wrk,wrk,The benchmarks)

## image-tools: Debian's buildah, podman and mmdebstrap, which build and run the image without a Docker engine
image-tools:
	$(call debian_package,buildah podman mmdebstrap,buildah podman mmdebstrap,The image and its test)

## image: the services' image, localhost/service-quality:dev, with buildah (a Debian base if no registry answers)
image: $(INSTALLED) image-tools
	$(PY) -m devstack.image

## run: the whole stack in the foreground (PostgreSQL, broker, every service); Ctrl-C stops it
run: $(INSTALLED) bytecode
	$(PY) -m devstack .var

## test: lint, type-check, then every test against real PostgreSQL and broker
test: lint unit integration

## lint: ruff (lint and format) and mypy --strict
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## unit: the fast tests (domain logic, policies, manifests, alert rules)
unit: $(INSTALLED) bytecode prometheus-tools checkov-tool
	$(PY) -m pytest tests/unit -q

## integration: the tests against whole stacks of real PostgreSQL, broker and services
integration: $(INSTALLED) bytecode prometheus-tools image-tools
	$(PY) -m pytest tests/integration -q

## bench: throughput figures, each against a baseline measured in the same run
bench: $(INSTALLED) bytecode wrk-tool
	$(PY) -m bench.intake
	$(PY) -m bench.escalation
	$(PY) -m bench.scoring
	$(PY) -m bench.projections
	$(PY) -m bench.incidents
	$(PY) -m bench.stack

## republish: make the relay publish every stored event again (FROM=position, default 0)
republish: $(INSTALLED)
	$(PY) -m services.complaints republish --from-position $(or $(FROM),0)

## rebuild: rebuild the read models from zero beside the live ones (of `make run`) and compare
rebuild: $(INSTALLED)
	$(PY) -m services.projections rebuild

## verify-audit: recompute every event store's hash chain (of `make run`); names each break, exits 1 if any
verify-audit: $(INSTALLED)
	$(PY) -m services.verify_audit

## replay-dead-letters: once their cause is fixed, send a consumer's dead letters again (CONSUMER=projections)
replay-dead-letters: $(INSTALLED)
	$(PY) -m services.replay_dead_letters $(or $(CONSUMER),$(error name the consumer: CONSUMER=escalation|scoring|projections))

## clean: delete .var (the local stack's data)
clean:
	rm -rf .var
