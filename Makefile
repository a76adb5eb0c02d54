# SigDL: two commands set everything up on a fresh machine.
#   make run   creates .venv, installs the core and every plugin, runs `sigdl run`
#   make test  the same install, then the whole test suite
#   make bench the same install, then the benchmarks in bench/ (figures in bench/results/)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SIGDL  := $(VENV)/bin/sigdl
# Every plugin is its own distribution; install them all, editable, with their test extras.
PLUGIN_PROJECTS := $(sort $(wildcard plugins/*/pyproject.toml))
PLUGIN_DIRS     := $(patsubst %/pyproject.toml,%,$(PLUGIN_PROJECTS))
STAMP  := $(VENV)/.sigdl-installed
# pytest workers: 2 on the 2-core CI machine; override with `make test WORKERS=0`.
WORKERS ?= 2

.PHONY: install run test bench isolation clean docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# torch is pinned first: the local CPU wheel; any looser range pulls GBs of CUDA packages.
$(STAMP): $(PY) pyproject.toml $(PLUGIN_PROJECTS)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test,docs,plugin-dev,cluster]' $(foreach d,$(PLUGIN_DIRS),-e '$(d)[test]')
	touch $(STAMP)

install: $(STAMP)

run: install
	$(SIGDL) run

# The real-board tests (plugins/target_remote) run against OpenSSH's sshd on 127.0.0.1.
SSHD := /usr/sbin/sshd
$(SSHD):
	-apt-get install -y -qq openssh-server || (apt-get update -qq && apt-get install -y -qq openssh-server)

test: install $(SSHD)
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile

# The documentation site (mkdocs.yml, docs/) into site/, strict: a broken reference or link fails.
docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

# The benchmarks, then BENCHMARKS.md written from their results (bench/results/*.md).
BENCHES := cli_startup emulation_calibration arm_calibration quant_coding_speed \
           sparse_fc model_inference deep_compression loop fft frameworks acceleration
bench: install
	@set -e; for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py; done
	$(PY) bench/benchmarks_md.py

# Each plugin alone: a fresh venv with only the core and that plugin (and its test extra),
# then that plugin's tests. Slow (one venv per plugin), so not part of `make test`.
ISOLATION_DIR ?= /tmp/sigdl-isolation
# A plugin's in-tree plugin dependencies are not on PyPI: tools/local_deps.py lists them.
isolation:
	@set -e; for d in $(PLUGIN_DIRS); do \
	  v=$(ISOLATION_DIR)/$$(basename $$d); rm -rf $$v; \
	  echo "== $$d alone in $$v"; \
	  $(PYTHON) -m venv $$v; \
	  deps=$$($(PYTHON) tools/local_deps.py $$d/pyproject.toml); \
	  $$v/bin/python -m pip install --quiet -e . $$deps -e "$$d[test]"; \
	  $$v/bin/python -m pytest -q -p no:cacheprovider $$d; \
	done

clean:
	rm -rf $(VENV) sigdl-runs .pytest_cache
