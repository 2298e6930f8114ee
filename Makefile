# Quick start: `make demo` then `make test`. Everything runs from ./.venv, created on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP   := $(VENV)/.installed-test

# Byte-compile our own modules once: an editable install leaves them to be compiled on every
# run wherever PYTHONDONTWRITEBYTECODE is set, which doubles the CLI's start-up time.
COMPILE = $(BIN)/python -m compileall -q eventstore projections avro > /dev/null

.PHONY: install demo test test-fast typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs the runtime alone; the tests add a broker, OpenStack's consumers and python-watcher.
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	$(COMPILE)
	touch $(RUNTIME)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,watcher]'
	$(COMPILE)
	touch $(RUNTIME) $(STAMP)

install: $(STAMP)

## The main job on the embedded default: two plans cancelled, all six notification kinds.
demo: $(RUNTIME)
	mkdir -p demo
	$(COMPILE)
	$(BIN)/watcher-es --db demo/watcher-es.db demo

## The import contracts (pyproject.toml), then the whole suite (starts its own Tansu broker for the Kafka tests).
test: $(STAMP)
	$(COMPILE)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

typecheck: $(STAMP)
	$(BIN)/mypy

## Embedded: rebuild speed and memory on a generated log (EVENTS=1000000 for the full measure) and a
## cancel's first notification. Kafka (each on a fresh Tansu broker): commands/s end to end, latency,
## restart, RSS and query times at KAFKA_SCALE plans. The bridge: Watcher notifications handled per second.
EVENTS ?= 200000
KAFKA_SCALE ?= 30000
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.rebuild --events $(EVENTS)
	$(BIN)/python -m tests.benchmarks.latency --plans 1000
	$(BIN)/python -m tests.benchmarks.kafka --plans 3000 --scale-plans $(KAFKA_SCALE) --two-serves --processes
	$(BIN)/python -m tests.benchmarks.bridge --copies 100

clean:
	rm -rf $(VENV) demo *.egg-info .pytest_cache .mypy_cache .hypothesis
