# Quick start: `make demo` then `make test`. Everything runs from ./.venv, created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP   := $(VENV)/.installed-test

.PHONY: install demo test test-fast typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs the runtime alone; the tests add a broker, OpenStack's consumers and python-watcher.
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,watcher]'
	touch $(RUNTIME) $(STAMP)

install: $(STAMP)

## The main job on the embedded default: two plans cancelled, all six notification kinds.
demo: $(RUNTIME)
	mkdir -p demo
	$(BIN)/watcher-es --db demo/watcher-es.db demo

## The whole suite (starts its own Tansu broker for the Kafka tests).
test: $(STAMP)
	$(BIN)/python -m pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy

## Embedded: rebuild speed and memory on a generated log (EVENTS=1000000 for the full measure) and a
## cancel's first notification. Kafka (each on a fresh Tansu broker): commands/s end to end, latency,
## restart, RSS and query times at KAFKA_SCALE plans.
EVENTS ?= 200000
KAFKA_SCALE ?= 30000
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.rebuild --events $(EVENTS)
	$(BIN)/python -m tests.benchmarks.latency --plans 1000
	$(BIN)/python -m tests.benchmarks.kafka --plans 3000 --scale-plans $(KAFKA_SCALE) --two-serves

clean:
	rm -rf $(VENV) demo *.egg-info .pytest_cache .mypy_cache .hypothesis
