# Two entry points: `make demo` (the main job) and `make test` (CI). Each builds .venv itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# The CPU wheel of this release lies on the dev/CI machines' disk; a newer torch would pull a
# multi-GB CUDA build.
TORCH ?= torch==2.13.0
MODEL ?= lgcnet_deploy/model/weights/lgcnet_camvid.pt

.PHONY: venv demo test wheel-smoke lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

demo: venv
	$(PY) samples/demo.py --model $(MODEL) --out out/demo

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The built wheel without extras, in a fresh venv outside the checkout: --help everywhere and
# the ONNX path (what CI runs after the tests).
wheel-smoke: venv
	$(PY) .ci/wheel_smoke.py

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) out runs/predict .pytest_cache .ruff_cache
