# The two commands of the README:
#   make run   set everything up and serve the API on SQLite with demo accounts
#   make test  lint, type-check and run the whole test suite (SQLite and PostgreSQL)
# Everything installs into .venv from the pinned requirements; nothing global.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

CHROMIUM := /usr/bin/chromium
NGINX := /usr/sbin/nginx

.PHONY: run test lint typecheck setup setup-dev browser proxy audit-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

setup: $(VENV)/.runtime

setup-dev: $(VENV)/.dev browser proxy

# The dashboard's browser test drives Debian's Chromium (playwright's own download
# does not work here); installing it needs root, as on CI.
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "Install Chromium (apt-get install chromium) for the dashboard test"; exit 1; }

# The slow-client and proxy tests run Debian's nginx with deploy/nginx/outreach-proxy.conf
# (no daemon is started: the tests run their own).
proxy:
	@test -x $(NGINX) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; } \
	  || { echo "Install nginx (apt-get install nginx-light) for the proxy tests"; exit 1; }

run: setup
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app seed-demo
	@echo
	@echo "Outreach API:      http://$(HOST):$(PORT)/api/v1"
	@echo "API documentation: http://$(HOST):$(PORT)/api/docs"
	@echo "Dashboard:         http://$(HOST):$(PORT)/dashboard  (log in as demo-coordinator)"
	@echo "Field app:         http://$(HOST):$(PORT)/app/  (log in as demo-worker; docs/field-app.md)"
	@echo "Log in: curl -s http://$(HOST):$(PORT)/api/v1/auth/login -H 'Content-Type: application/json' \\"
	@echo "          -d '{\"username\": \"demo-worker\", \"password\": \"<demo password above>\"}'"
	@echo
	$(BIN)/flask --app app run --host $(HOST) --port $(PORT)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# Known vulnerabilities in the pinned requirements (needs PyPI's JSON API or OSV on the
# network; --strict fails on a package it could not check). See docs/security.md.
audit-deps: setup-dev
	$(BIN)/pip install --quiet pip-audit==2.10.1
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt -r requirements-dev.txt

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache test-output
