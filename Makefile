# pinworks: two commands on a fresh machine with only Python and make.
#   make run   install, start embedded NATS + Postgres (unless NATS_URL / DATABASE_URL), migrate,
#              start the five services; Ctrl-C stops everything
#   make test  install and run every test tier
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SERVICES := classifier router specialists verifier escalation
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# llama-cpp-python (the local model server) has only a source release: the first install compiles
# it (CPU only, all cores) without what its Python package never loads: the multimodal library
# (LLAVA_BUILD=OFF) and llama.cpp's common library with cpp-httplib, half of the compile steps'
# time (tools/llama_cpp_text_only.cmake). uv caches the wheel, so later installs take seconds
# (they read uv's cache first: tools/uv_sync.sh). Your own CMAKE_ARGS, if set, replace these.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(abspath tools/llama_cpp_text_only.cmake)

.PHONY: install run test test-unit test-unit-other-blas test-e2e test-infra test-isolated lint check-imports bench chaos asyncapi clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	@$(UV) pip show --python $(VENV)/bin/python llama-cpp-python >/dev/null 2>&1 || \
		echo "[make] installing; a first install compiles llama-cpp-python (a few minutes on 2 cores, once)"
	UV=$(UV) tools/uv_sync.sh --frozen --all-packages --python $(PYTHON)
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/pinworks run

test: install lint test-unit test-unit-other-blas test-isolated test-infra test-e2e

# The test tiers keep Python's bytecode cache, under .tools/pycache (make clean removes it), even
# where PYTHONDONTWRITEBYTECODE is set (as on this kind of machine): without it, every interpreter
# a test starts (pytest's workers, the services, the CLI) compiled all it imports from source
# again, about 40% of the CPU of the CLI's tests.
TEST_TIERS := test test-unit test-unit-other-blas test-isolated test-infra test-e2e
$(TEST_TIERS): export PYTHONDONTWRITEBYTECODE :=
$(TEST_TIERS): export PYTHONPYCACHEPREFIX := $(abspath $(TOOLS))/pycache

# The unit tiers run on every core (pytest-xdist; TEST_WORKERS=0 runs them in this process). Tests
# that must not overlap share an xdist_group and run on one worker in turn (--dist loadgroup).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
UNIT_PYTEST := $(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup

test-unit: install
	$(UNIT_PYTEST) libs services tools

# The unit tier's numeric tests again on other float32 kernels than the processor's own: a test
# that holds only on one processor's BLAS fails here, not on a user's machine
# (tools/other_blas_core.py). Only a test whose code can reach numpy or onnxruntime can tell
# kernels apart, so only those run (about a third of the tier); nobody marks them: the plugin
# tools/numeric_tests.py reads every test file's imports (lazy ones, conftest fixtures, helpers,
# `python -c` strings, entry-point groups) and deselects the rest, so a new numeric test is in.
test-unit-other-blas: install
	core=$$($(VENV)/bin/python tools/other_blas_core.py) && echo "== numeric unit tests with OPENBLAS_CORETYPE=$$core" && \
		OPENBLAS_CORETYPE=$$core PYTHONPATH=tools $(UNIT_PYTEST) -p numeric_tests --numeric-only libs services tools

# The console's browser tests drive Debian's chromium (never a Playwright browser download).
test-e2e: install
	command -v chromium || (apt-get update && apt-get install -y chromium)
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration tests/e2e tests/chaos

# promtool (rules and dashboard checks) from Debian's prometheus package, unpacked into
# .tools/: nothing is installed system-wide and no Prometheus server is started.
PROMTOOL := $(TOOLS)/promtool

$(PROMTOOL):
	@command -v promtool >/dev/null && ln -sf "$$(command -v promtool)" $@ || { \
		rm -rf $(TOOLS)/prometheus-deb && mkdir -p $(TOOLS)/prometheus-deb && \
		cd $(TOOLS)/prometheus-deb && \
		{ apt-get download prometheus 2>/dev/null || { apt-get update && apt-get download prometheus; }; } && \
		dpkg -x prometheus_*.deb unpacked && ln -sf prometheus-deb/unpacked/usr/bin/promtool ../promtool; }

test-infra: install $(PROMTOOL)
	@if [ -d tests/infra ]; then PROMTOOL=$(abspath $(PROMTOOL)) $(VENV)/bin/pytest -q -p no:cacheprovider tests/infra; fi

# Each service alone in its own environment: a dependency it imports but does not declare fails here.
# The app is imported with the service's runtime dependencies only (what its image installs); its
# tests then run with its own dev dependency group added (e.g. pinworks-devtools' chat server).
test-isolated: $(UV)
	@for service in $(SERVICES); do \
		env_dir=$(abspath .venv-isolated)/$$service; \
		echo "== $$service alone"; \
		UV_PROJECT_ENVIRONMENT=$$env_dir UV=$(UV) tools/uv_sync.sh --quiet --frozen --no-dev --package pinworks-$$service --python $(PYTHON) || exit 1; \
		$$env_dir/bin/python -c "import pinworks_$$service.app" || exit 1; \
		UV_PROJECT_ENVIRONMENT=$$env_dir UV=$(UV) tools/uv_sync.sh --quiet --frozen --package pinworks-$$service --python $(PYTHON) || exit 1; \
		$(UV) pip install --quiet --python $$env_dir/bin/python pytest pytest-xdist || exit 1; \
		if [ -d services/$$service/tests ]; then \
			(cd services/$$service && $$env_dir/bin/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --import-mode=importlib -c /dev/null --rootdir . tests) || exit 1; \
		fi; \
	done
	@env_dir=$(abspath .venv-isolated)/classifier-training; echo "== classifier training alone"; \
		UV_PROJECT_ENVIRONMENT=$$env_dir UV=$(UV) tools/uv_sync.sh --quiet --frozen --no-dev --package pinworks-classifier-training --python $(PYTHON) && \
		$(UV) pip install --quiet --python $$env_dir/bin/python pytest pytest-xdist && \
		cd services/classifier/training && $$env_dir/bin/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --import-mode=importlib -c /dev/null --rootdir . tests

# The scripts beside the packages (benchmarks, tools, evaluation-set builders: every .py outside a
# src/ or tests/ directory) are type-checked like the packages, so a benchmark cannot rot unseen.
SCRIPTS = $(shell find libs services tools -name '*.py' -not -path '*/src/*' -not -path '*/tests/*' | sort)

lint: install check-imports
	$(VENV)/bin/ruff check libs services tests tools
	$(VENV)/bin/mypy libs/*/src services/*/src services/classifier/training/src $(SCRIPTS)

# The import graph of libs/* and services/* is the layered DAG contracts <- runtime <- services
# <- cli: no library imports a service, no service another, no cycle (tools/import_graph.py).
check-imports: install
	$(VENV)/bin/python tools/import_graph.py

bench: install
	$(VENV)/bin/pinworks bench --count $${COUNT:-5000}

# The full fault tier and a soak at half of measured capacity; prints its figures.
chaos: install
	$(VENV)/bin/pinworks chaos --soak $${CHAOS_SOAK_SECONDS:-1800}

asyncapi: install
	$(VENV)/bin/pinworks asyncapi --out docs/asyncapi

clean:
	rm -rf $(VENV) .venv-isolated $(TOOLS) .run
