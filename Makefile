# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vopt-installed

.PHONY: install demo test lint browser-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so nothing can pull the multi-GB CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/vopt build recipes/examples/demo.yaml

test: install browser-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -rs

lint: install
	$(BIN)/ruff check .

browser-deps:
	@true

clean:
	rm -rf build .vopt-cache .pytest_cache
