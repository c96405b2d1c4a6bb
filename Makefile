# vidgen - every command a user or CI needs. Each target installs what it uses into .venv/ (the
# project) and .venv-sam/ (SAM CLI, kept apart because it pins its own boto3 and pydantic).
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
# checkov pins its own boto3 and friends, so it gets a venv of its own too (dev only; never in the layer).
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
PYTEST_ARGS ?=
# make test: pytest-xdist workers, one local cloud each: one more than the cores, because the tests spend
# much of their time waiting on timers, sockets and subprocesses (on 2 cores, two pairs of runs back to back:
# 2 workers 8 min 7 s and 8 min 36 s, keeping 1.43 cores busy; 3 workers 6 min 51 s and 7 min 45 s, 1.69
# cores busy; the same CPU time in all). The load tests then run alone, so that their hundreds of concurrent
# requests have the machine to themselves. Exit 5 of either run is "no test selected" (a PYTEST_ARGS that
# picks only one kind).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
ENV ?= default

.PHONY: help install browser-deps demo serve test test-unit test-integration test-browser test-faults test-deployed check-template build deploy delete bench lint typecheck clean

help: ## list every target (this text)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/\1\t\2/' | expand -t 18 | sed 's/^/make /'

install: $(VENV)/.installed ## install the project and its dev tools into .venv/

$(VENV)/.installed: pyproject.toml layers/vidgen/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

# The browser tests drive Debian's chromium through its chromium-driver. Installed when missing and we may
# (root); otherwise the tests skip with a one-line reason. Never fails the build by itself.
browser-deps: ## chromium and chromium-driver for the browser tests (installed when missing, as root)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
			|| echo "could not install chromium: the browser tests will be skipped"; \
	else echo "chromium and chromium-driver are missing and cannot be installed here: the browser tests will be skipped"; fi

demo: install ## run the real stack locally (moto + provider simulators) and a set of jobs
	$(BIN)/vidgen demo

serve: install ## serve the API, the playground at / and the API docs at /docs on 127.0.0.1 (VIDGEN_PORT, default 3000) until Ctrl-C
	$(BIN)/vidgen serve

lint: install ## ruff over layers, functions, local and tests
	$(BIN)/ruff check layers functions local tests

typecheck: install ## mypy --strict on layers/ (settings in pyproject.toml)
	$(BIN)/mypy

check-template: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## sam validate --lint, cfn-lint with informational checks, checkov (0 failed), sam build
	$(SAM) validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint --include-checks I -- template.yaml
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(SAM) build --template template.yaml --build-dir .aws-sam/build --no-cached

build: check-template ## the same as check-template

deploy: check-template ## build and deploy the stack of samconfig.toml's ENV (default: dev; ENV=prod)
	$(SAM) deploy --config-env $(ENV)

delete: $(SAM_VENV)/.installed ## delete the ENV stack; its table, bucket and secrets are retained (README, Deploying)
	$(SAM) delete --config-env $(ENV)

test: install browser-deps check-template lint typecheck ## lint, typecheck, validate and build the template, run every test (browser tests too; in parallel, then the load tests)
	$(BIN)/python -m pytest --numprocesses=$(TEST_WORKERS) --dist=loadfile -m 'not load' $(PYTEST_ARGS) || [ $$? = 5 ]
	$(BIN)/python -m pytest -m load $(PYTEST_ARGS) || [ $$? = 5 ]

test-unit: install ## the unit tests only
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install ## the integration and end-to-end tests only
	$(BIN)/python -m pytest tests/integration tests/e2e $(PYTEST_ARGS)

test-browser: install browser-deps ## the headless Chromium tests of the playground and /docs
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

test-faults: install ## fault injection and crash recovery on their own local clouds (prints figures)
	$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

test-deployed: install ## the deployed tier against VIDGEN_API_URL + VIDGEN_ADMIN_KEY (skips without them)
	$(BIN)/python -m pytest tests/deployed $(PYTEST_ARGS)

bench: install ## throughput and latency of the local stack against a bare moto baseline
	$(BIN)/python -m vidgen_local.bench

clean: ## remove build output and tool caches
	rm -rf .aws-sam .pytest_cache .ruff_cache
