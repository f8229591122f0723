# pushdeploy: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pyenv's newest Python 3.13 where present (the Lambda runtime's version), else python3 (>= 3.11).
PYTHON ?= $(shell p=$$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3 2>/dev/null | sort -V | tail -n 1); \
	if [ -n "$$p" ] && [ -x "$$p" ]; then echo "$$p"; else echo python3; fi)
VENV := .venv
TOOLS := .venv-tools
SAM_CLI_VERSION := 1.170.0
BIN := $(VENV)/bin

.PHONY: help venv tools lint typecheck unit test demo build bench soak fuzz clean

help:
	@echo "make demo   run the scripted scenario on the local cloud"
	@echo "make test   set up and run lint, type checks and every test"
	@echo "make build  sam build (no Docker needed)"
	@echo "make bench  every performance figure, beside its target; BENCH_OUT=file for the JSON"
	@echo "make soak   run the fault simulation longer: SEED=n STEPS=n (a random seed when unset)"
	@echo "make fuzz   run the whole fuzz suite: FUZZ_SEED=n FUZZ_CASES=n (n webhook requests, n events)"

$(BIN)/pushdeploy: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "pushdeploy needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/pushdeploy

# SAM CLI pins its own boto3 and pydantic, so it lives in a venv of its own.
$(TOOLS)/bin/sam:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'

tools: $(TOOLS)/bin/sam

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy
	@# Each function is a module named `app`: check them one at a time.
	@for app in functions/*/app.py; do $(BIN)/mypy --strict --no-error-summary "$$app" || exit 1; done

test: venv tools lint typecheck
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/pytest

build: tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(TOOLS)/bin/sam build

# Every benchmark (benchmarks/run.py): a table beside the targets, and bench.json at BENCH_OUT.
bench: venv
	BENCH_OUT="$(BENCH_OUT)" $(BIN)/python benchmarks/run.py

demo: venv
	$(BIN)/python -m pushdeploy.local.demo

# The deterministic fault simulation (tests/simulation) with SEED and STEPS from the environment or the
# command line; exits 1 on a violation, after printing the shortest failing schedule it found.
soak: venv
	SEED="$(SEED)" STEPS="$(STEPS)" $(BIN)/python -m tests.simulation.run

# The fuzz suite (tests/fuzz) in full: FUZZ_CASES webhook requests and as many EventBridge events (10,000
# each unless set) from FUZZ_SEED (9 unless set; `random` for a new one). Ends with
# `fuzz: cases=N unhandled=U deployed_from_invalid=D`; exits 1 unless U and D are 0.
fuzz: venv
	FUZZ_SEED="$(FUZZ_SEED)" FUZZ_CASES="$(FUZZ_CASES)" $(BIN)/python -m tests.fuzz.run

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
