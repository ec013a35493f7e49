# Two commands on a fresh machine: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LISTEN ?= 127.0.0.1:8080
# Test-only tools from npm (the Azurite blob emulator), kept inside the project.
TOOLS  := .tools
AZURITE_VERSION := 3.37.0
AZURITE := $(TOOLS)/.azurite-$(AZURITE_VERSION)

.PHONY: setup run test lint lock clean fuzz

setup: $(STAMP) $(AZURITE)

# Re-install only when the lock or the project metadata changes; a half-built venv has no stamp.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(AZURITE):
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

run: setup
	$(BIN)/pixelport serve --config demo/pixelport.toml --listen $(LISTEN)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy --strict pixelport

test: lint
	$(BIN)/python -m pytest -q

# The property tests (hypothesis) with random seeds, round after round, for FUZZ_SECONDS
# (default 600); `make test` runs them derandomized in CI. Prints any falsifying example.
FUZZ_SECONDS ?= 600
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python tests/fuzz.py

# Benchmarks against thumbor, ipx, nginx and the bare libvips limit (about 8 minutes; never
# part of `make test`). bench/setup.sh installs nginx + wrk (apt), thumbor (own venv) and ipx
# (npm) under bench/; results go to bench/results/ and docs/performance.md.
# Extra options: make bench BENCH_ARGS="--quick --no-docs" (see bench/run.py --help).
.PHONY: bench
bench: $(STAMP)
	PYTHON=$(PYTHON) bash bench/setup.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Regenerate the pinned lock from pyproject.toml (needs network to PyPI).
lock: setup
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra build --python-version 3.11 --no-header -o requirements.lock

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .pytest_cache .ruff_cache
