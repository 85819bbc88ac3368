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
	# PP-OCRv4's ONNX files for the tests; --no-deps: vopt reads the files, not the package (which imports cv2).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt rapidocr-onnxruntime
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/vopt build recipes/examples/demo.yaml

test: install browser-deps
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -rs

lint: install
	$(BIN)/ruff check .

# Headless Chromium + Node + the pinned npm packages for the browser tests (tests/browser); idempotent.
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	@cmp -s vopt/web/package-lock.json vopt/web/node_modules/.vopt-lock.json || { cd vopt/web && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.vopt-lock.json; }

clean:
	rm -rf build .vopt-cache .pytest_cache
