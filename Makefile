# Two entry points: `make demo` (the main job) and `make test` (CI). Each builds .venv itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# The CPU wheel of this release; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
MODEL ?= lgcnet_deploy/model/weights/lgcnet_camvid.pt

.PHONY: venv demo test fuzz wheel-smoke lint clean gpu-sprint gpu-carry shipped-onnx

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

demo: venv
	LGCNET_CAMVID=$(abspath $(CAMVID)) $(PY) samples/demo.py --model $(MODEL) --out out/demo

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2

# The loaders' property-based tests at length (make test runs a few cases per loader).
fuzz: venv
	LGCNET_FUZZ=long $(PY) -m pytest -q tests/test_loader_fuzz.py

# The built wheel without extras, in a fresh venv outside the checkout: --help everywhere and
# the ONNX path (what CI runs after the tests).
wheel-smoke: venv
	LGCNET_CAMVID=$(abspath $(CAMVID)) $(PY) .ci/wheel_smoke.py

# Each shipped checkpoint's ONNX beside it (package data: what the base install runs). Run it
# after replacing a .pt in weights/; tests/test_shipped.py fails until the ONNX is re-exported.
shipped-onnx: venv
	for pt in lgcnet_deploy/model/weights/*.pt; do \
		$(VENV)/bin/lgcnet export "$$pt" -o "$${pt%.pt}.onnx" || exit 1; done

lint: venv
	$(PY) -m ruff check .

# The GPU sprint (experiments/gpu_sprint/README.md). On the GPU machine there is no venv and no
# package registry: its python3 runs it from the repository root into the results folder OUT.
# Its plan without training: make gpu-sprint SPRINT_ARGS="--plan". A dry run on any CPU:
# make gpu-sprint SPRINT_PY=.venv/bin/python OUT=runs/sprint_dry SPRINT_ARGS="--dry-run"
SPRINT_PY ?= python3
OUT ?= runs/gpu_sprint
gpu-sprint:
	PYTHONUNBUFFERED=1 $(SPRINT_PY) -m experiments.gpu_sprint --out $(OUT) $(SPRINT_ARGS)

# CamVid for demo, wheel-smoke and gpu-carry (the tests: tests/conftest.py): $LGCNET_CAMVID,
# else the checkout's sibling shared/data/camvid. The package itself reads only --data or
# $LGCNET_CAMVID.
CAMVID ?= $(or $(LGCNET_CAMVID),../shared/data/camvid)
# What a GPU run takes along beside the tree (a sibling shared/ is not part of the payload),
# packed to fit the sprint's 64 MiB payload budget: CamVid train+val at JPEG quality 85 and
# the ImageNet weights (bf16) in the ignored .carry/ (experiments/gpu_sprint/README.md).
gpu-carry: venv
	$(PY) -m experiments.gpu_sprint.carry --data $(CAMVID)

clean:
	rm -rf $(VENV) out runs/predict .pytest_cache .ruff_cache
