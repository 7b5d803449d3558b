# The two commands of the README: `make demo` runs the main job on embedded defaults, `make test` runs the tests.
# Both set everything up on first use (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stridetwin-installed

.PHONY: demo test lint bench setup clean protos

demo: $(STAMP)
	$(VENV)/bin/stridetwin demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/stridetwin bench

# Regenerate the gRPC contract's Python code (protos/stridetwin/v1/*_pb2*.py) with the pinned grpcio-tools.
protos: $(STAMP)
	$(PY) -m protos.generate

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
