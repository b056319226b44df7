# qdff: `make demo` runs the built-in demo, `make test` runs the test suite.
# Both call `make setup`, which installs Debian packages (apt-get) and a
# virtual environment in .venv/ from pyproject.toml (the one place with pins).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.qdff-setup-done
APT_PACKAGES := cp2k cp2k-data libopenmpi-dev chromium slurm-wlm munge
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CORES ?= $(shell nproc)

.PHONY: setup apt venv demo test test-fast clean-demo help

help:
	@echo "make demo   - set up, then run the demo pipeline (config/demo.yaml)"
	@echo "make test   - set up, then run the test suite"
	@echo "make setup  - apt packages + .venv/ only"

setup: apt $(STAMP)

# Debian packages: only call apt-get when something is missing.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "[setup] Debian packages present: $(APT_PACKAGES)"; fi

# The venv is rebuilt when pyproject.toml or this Makefile changes.
$(STAMP): pyproject.toml Makefile
	@echo "[setup] virtual environment in $(VENV)/"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$$($(PY) scripts/pin.py torch)"
	@# DeePMD-kit is built from source against the pinned torch: the PyPI
	@# wheel's custom-op library targets another torch and fails to import.
	$(PIP) install -q scikit-build-core cmake ninja setuptools_scm packaging tomli dependency-groups hatch-fancy-pypi-readme
	$(PY) -c "import deepmd.pt" 2>/dev/null || \
	  DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 $(PIP) install -q --no-build-isolation --no-deps \
	    --no-binary deepmd-kit "$$($(PY) scripts/pin.py deepmd-kit)"
	$(PIP) install -q -e ".[deepmd,schnetpack,nequip,cluster,test]"
	@# schnetpack 2.1.1 declares requirements pip cannot resolve beside torch 2.13 (sympy<=1.12,
	@# dev tools): installed without them; its real runtime dependencies are the [schnetpack] extra.
	$(PIP) install -q --no-deps "$$($(PY) scripts/pin.py schnetpack)"
	$(PY) -c "import torch, deepmd.pt, nequip, allegro, qdff.backends.schnetpack as s; s._compat(); import schnetpack, qdff; \
	  assert torch.__version__.startswith('2.13.0'), torch.__version__; \
	  print('[setup] torch', torch.__version__, '| deepmd', deepmd.__version__, '| schnetpack', schnetpack.__version__, \
	        '| nequip', nequip.__version__, '| qdff', qdff.__version__)"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/snakemake --profile profiles/local --configfile config/demo.yaml --cores $(CORES)
	@echo "Report: $$(pwd)/results/$$($(PY) -c 'import yaml;print(yaml.safe_load(open("config/demo.yaml"))["name"])')/report.html"

test: setup
	$(VENV)/bin/python -m pytest -ra tests

clean-demo:
	rm -rf results/cdse-demo logs benchmarks/rules .snakemake
