# The two commands in README.md: `make demo` and `make test`. Both do all set-up first.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast dev

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/forge demo

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

dev: setup
	$(VENV)/bin/dagster dev
