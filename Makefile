# vidgen - every command a user or CI needs. Each target installs what it uses into .venv/ (the
# project) and .venv-sam/ (SAM CLI, kept apart because it pins its own boto3 and pydantic).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
PYTEST_ARGS ?=

.PHONY: help install demo serve test test-unit test-integration test-faults check-template build bench lint clean

help:
	@echo "make demo    run the real stack locally (moto + provider simulators) and a set of jobs"
	@echo "make serve   serve the API on 127.0.0.1:$${VIDGEN_PORT:-3000} until Ctrl-C"
	@echo "make test    lint, validate and build the template, check the ASL, run every test"
	@echo "make test-faults  fault injection and crash recovery on their own local clouds (prints figures)"
	@echo "make bench   throughput and latency of the local stack against a bare moto baseline"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml layers/vidgen/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

demo: install
	$(BIN)/vidgen demo

serve: install
	$(BIN)/vidgen serve

lint: install
	$(BIN)/ruff check layers functions local tests

check-template: $(SAM_VENV)/.installed
	$(SAM) validate --lint --template template.yaml
	$(SAM) build --template template.yaml --build-dir .aws-sam/build --no-cached

build: check-template

test: install check-template lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/python -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

test-faults: install
	$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m vidgen_local.bench

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache
