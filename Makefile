# Two commands do all set-up on a fresh machine (see README):
#   make demo   install into .venv, simulate a dataset, reconstruct it (images + recon.h5)
#   make test   install into .venv with the test tools, run the test suite, then the MPI tier
#               (mpiexec -n 2), and as root with apt the parallel-HDF5 tier (.venv-phdf5);
#               then build the manual (make docs)
#   make docs   build the manual (docs/ -> docs/_build/html), warnings as errors, offline
#   make results  re-measure the quick results pages of the manual (docs/results/)
#   make fresh-clone   what a newcomer does: clone the committed tree (HEAD) into a temporary
#               folder, run `make demo` then `make test` there from nothing, report each
#               command's exit code, wall time and test counts (.ci/fresh_clone.sh; ~the time
#               of both commands on a bare machine). Run it before calling an issue done.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch first, from the CPU pin, so nothing later pulls a multi-GB CUDA build
CONSTRAINTS := -c constraints-cpu.txt
PLUGINS := -e plugins/ptyframe-lightning -e plugins/ptyframe-mpi -e plugins/ptyframe-raar
DEMO_DIR ?= demo
# the readers' test tier: cdtools-py (writes CXI itself) and PtyLab 0.3.7 (reads its own
# layout) in venvs of their own, torch first from the CPU pin; `make test` builds them
CDT := .venv-cdtools
PTYLAB := .venv-ptylab
# pytest worker processes of `make test` (pytest-xdist; the MPI tiers run without it): the
# CI machine has two cores; `make test PYTEST_WORKERS=auto` takes every core
PYTEST_WORKERS ?= 2


.PHONY: install browser demo test parallel-hdf5 lint typecheck bench clean readers-peers peers peers-quick gpu-wheels docs docs-install results docstrings fresh-clone

$(BIN)/.installed: pyproject.toml constraints-cpu.txt $(wildcard plugins/*/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(CONSTRAINTS) torch
	$(PIP) install --quiet $(CONSTRAINTS) -e '.[test,joblib,tune,fftw]' $(PLUGINS)
	touch $@

install: $(BIN)/.installed

demo: install
	mkdir -p $(DEMO_DIR)
	cd $(DEMO_DIR) && ../$(BIN)/ptyframe simulate out=demo.h5 overwrite=true
	cd $(DEMO_DIR) && ../$(BIN)/ptyframe reconstruct data.path=demo.h5 \
		engine=epie engine.alpha=0.5 engine.beta=0.5 engine.epochs=200 \
		hydra.run.dir=result output.overwrite=true
	@echo "demo: images and recon.h5 in $(DEMO_DIR)/result"

# the report test opens report.html in Debian's chromium: install it where we can (root + apt)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt) for the report's browser test"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium; } >/dev/null || echo "could not install chromium"; \
	  else echo "chromium not found (sudo apt-get install chromium): its test will skip"; fi; }

test: install browser $(CDT)/bin/.installed $(PTYLAB)/bin/.installed
	$(BIN)/ruff check ptyframe plugins tests benchmarks
	$(BIN)/ruff format --check ptyframe plugins tests benchmarks
	$(BIN)/mypy
	@# the parallel-HDF5 venv builds (h5py from source, minutes) while pytest runs: the suite
	@# leaves a core idle part of the time; its tier waits for the build after the MPI tier
	@rm -f $(PHDF5_BUILD).rc; if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "building $(PHDF5) in the background (log: $(PHDF5_BUILD).log)"; \
		{ $(MAKE) --no-print-directory $(PHDF5)/bin/.installed > $(PHDF5_BUILD).log 2>&1; \
		  echo $$? > $(PHDF5_BUILD).rc; } & fi
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=15 \
		plugins/ptyframe-lightning/tests plugins/ptyframe-mpi/tests plugins/ptyframe-raar/tests tests; rc=$$?; \
		if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi
	# the MPI tier: the same pytest inside two ranks (exit 5: nothing selected is fine)
	OMP_NUM_THREADS=1 timeout 600 $(BIN)/mpiexec -n 2 $(BIN)/python -m pytest -q -m mpi \
		-p no:cacheprovider plugins/ptyframe-mpi/tests; rc=$$?; \
		if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		while [ ! -f $(PHDF5_BUILD).rc ]; do sleep 2; done; \
		if [ "$$(cat $(PHDF5_BUILD).rc)" != 0 ]; then cat $(PHDF5_BUILD).log; \
		  echo "the parallel-HDF5 venv did not build (log above)"; exit 1; fi; \
		$(MAKE) parallel-hdf5; \
	else echo "not root with apt: skipping the parallel-HDF5 tier (see make parallel-hdf5)"; fi
	$(MAKE) docs

# hdf5_object with parallel HDF5 (collective writes, driver="mpio"): Debian's Open MPI and
# parallel HDF5, h5py built from source, in a venv of its own (the mpich wheel of .venv must
# not meet an h5py linked to Open MPI). Needs root and apt; ~5 min the first time (`make test`
# builds it in the background while pytest runs).
PHDF5 := .venv-phdf5
#: the log and exit code of the background build that `make test` starts
PHDF5_BUILD := .phdf5-build
OMPI_ROOT := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

$(PHDF5)/bin/.installed: pyproject.toml constraints-cpu.txt plugins/ptyframe-mpi/pyproject.toml
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends openmpi-bin libopenmpi-dev libhdf5-openmpi-dev pkg-config >/dev/null
	$(PYTHON) -m venv $(PHDF5)
	$(PHDF5)/bin/python -m pip install --quiet --upgrade pip
	$(PHDF5)/bin/python -m pip install --quiet $(CONSTRAINTS) torch
	$(PHDF5)/bin/python -m pip install --quiet numpy mpi4py 'cython>=3,<4' pkgconfig \
		'setuptools>=77' wheel
	HDF5_MPI=ON CC=mpicc HDF5_PKGCONFIG_NAME=hdf5-openmpi $(PHDF5)/bin/python -m pip install \
		--quiet --no-binary=h5py --no-build-isolation 'h5py==3.16.0'
	$(PHDF5)/bin/python -m pip install --quiet $(CONSTRAINTS) -e '.[test]'
	$(PHDF5)/bin/python -m pip install --quiet --no-deps -e plugins/ptyframe-mpi
	$(PHDF5)/bin/python -c "import h5py; assert h5py.get_config().mpi, 'h5py without MPI'"
	touch $@

parallel-hdf5: $(PHDF5)/bin/.installed
	$(OMPI_ROOT) timeout 600 /usr/bin/mpiexec.openmpi --oversubscribe -n 2 $(PHDF5)/bin/python -m pytest -q \
		-m mpi -p no:cacheprovider plugins/ptyframe-mpi/tests


$(CDT)/bin/.installed: constraints-cpu.txt
	$(PYTHON) -m venv $(CDT)
	$(CDT)/bin/python -m pip install --quiet --upgrade pip
	$(CDT)/bin/python -m pip install --quiet $(CONSTRAINTS) torch
	$(CDT)/bin/python -m pip install --quiet $(CONSTRAINTS) 'cdtools-py==0.3.2'
	touch $@

$(PTYLAB)/bin/.installed:
	$(PYTHON) -m venv $(PTYLAB)
	$(PTYLAB)/bin/python -m pip install --quiet --upgrade pip
	$(PTYLAB)/bin/python -m pip install --quiet 'ptylab==0.3.7'
	touch $@

readers-peers: install $(CDT)/bin/.installed $(PTYLAB)/bin/.installed
	$(BIN)/python -m pytest -q tests/readers/test_readers_cdtools.py tests/readers/test_readers_ptylab.py

fresh-clone:
	bash .ci/fresh_clone.sh

lint: install
	$(BIN)/ruff check ptyframe plugins tests benchmarks
	$(BIN)/ruff format --check ptyframe plugins tests benchmarks
	$(BIN)/mypy

# the type checker over ptyframe/ (config in pyproject.toml: strict on the contracts)
typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/epie_sweep.py

# the peers of benchmarks/peers (PtyLab 0.3.7, pty-chi 2.2.0), each in a venv of its own
# (.venv-ptylab, .venv-ptychi); torch==2.13.0 first where torch goes in (see install.sh)
peers: install
	PYTHON=$(PYTHON) bash benchmarks/peers/install.sh all

# a smoke run of the peer table on small cases (minutes)
peers-quick: peers
	$(BIN)/python benchmarks/peers/compare.py --quick

# wheels for the prepared GPU check (benchmarks/gpu/h200_check.sh): what the device machine's
# python3 lacks (hydra-core, omegaconf, antlr4; all pure Python, antlr4 built here from its
# sdist) and ptyframe with its RAAR and Lightning plugins (for their entry points; the code
# itself is imported from the working tree). Rebuild after adding an entry point.
GPU_WHEELS := .gpu-wheels
gpu-wheels: install
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(PIP) wheel --quiet --no-deps -w $(GPU_WHEELS) 'hydra-core==1.3.8' 'omegaconf==2.3.1' \
		'antlr4-python3-runtime==4.9.3'
	$(PIP) wheel --quiet --no-deps --no-build-isolation -w $(GPU_WHEELS) . \
		plugins/ptyframe-raar plugins/ptyframe-lightning
	@ls -la $(GPU_WHEELS)

# the manual: Sphinx (furo, MyST, autodoc, sphinx-gallery) from the `docs` extra. -W: any
# warning fails the build; nitpicky cross-references; no intersphinx (the build is offline);
# the configuration reference is generated from the registry and the examples run.
$(BIN)/.docs-installed: $(BIN)/.installed pyproject.toml
	$(PIP) install --quiet $(CONSTRAINTS) -e '.[docs]'
	touch $@

docs-install: $(BIN)/.docs-installed

docs: $(BIN)/.docs-installed
	rm -rf docs/_build/html docs/reference/generated
	@start=$$(date +%s); \
	$(BIN)/python -m sphinx -b html -W --keep-going -n -q -j 2 \
		docs docs/_build/html || exit $$?; \
	echo "docs: $$(find docs/_build/html -name '*.html' | wc -l) pages, no warnings, built in \
	$$(( $$(date +%s) - start )) s; open docs/_build/html/index.html"

# the quick results pages (minutes): each benchmark writes docs/results/NAME.md with its
# stamp (date, commit, machine, load, command); a timing takes the lock file RESULTS_LOCK so
# that two timings on one machine never overlap
RESULTS_LOCK ?= /tmp/ptyframe-bench.lock
results: install
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/metric_floor.py
	flock $(RESULTS_LOCK) $(BIN)/python benchmarks/fft_pairs.py --rounds 9

# measured figures, README citations, history and machine facts in docstrings and comments
docstrings:
	$(BIN)/python tests/_support/docstring_figures.py

clean:
	rm -rf docs/_build docs/auto_examples docs/reference/generated docs/reference/configuration.md \
		docs/reference/config
	rm -rf $(VENV) $(GPU_WHEELS) $(PHDF5) $(PHDF5_BUILD).log $(PHDF5_BUILD).rc $(CDT) $(PTYLAB) $(DEMO_DIR) outputs multirun .venv-ptychi .peers-work
