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
# ImageKit's Node SDK for the compatibility tests, pinned in tests/node/package.json (and lock).
NODE_SDK := tests/node/node_modules/.installed

.PHONY: setup run test lint lock clean fuzz postgres chromium redis

setup: $(STAMP) $(AZURITE) $(NODE_SDK) postgres chromium redis

# Re-install only when the lock or the project metadata changes; a half-built venv has no stamp.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(AZURITE):
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

# The stamp lives in node_modules, so removing that folder installs again.
$(NODE_SDK): tests/node/package.json tests/node/package-lock.json
	npm install --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

# PostgreSQL's server programs: the media library's tests start a throwaway server of their own
# (tests/databases.py; `python -m tests.databases` is its lookup). Nothing to do when they are
# there; as root (CI) apt installs them, without the cluster Debian would create and start on
# port 5432, which nothing here uses; otherwise a warning (only those tests need them).
postgres: $(STAMP)
	@if $(BIN)/python -m tests.databases >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "warning: PostgreSQL's server programs (initdb, pg_ctl, postgres) are missing;" \
	    "install them (Debian: apt-get install postgresql), or the library tests will fail" >&2; \
	else \
	  set -e; echo "installing PostgreSQL (apt-get install postgresql)"; \
	  mkdir -p /etc/postgresql-common/createcluster.d; \
	  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/pixelport.conf; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  $(BIN)/python -m tests.databases; \
	fi

# Debian's Chromium, for the video playback tests (tests/test_video_playback.py drives it with
# playwright's executable_path: no browser download). As root (CI) apt installs it; otherwise a
# warning (only those tests need it).
chromium:
	@if command -v chromium >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "warning: Chromium is missing; install it (Debian: apt-get install chromium)," \
	    "or the video playback tests will fail" >&2; \
	else \
	  set -e; echo "installing Chromium (apt-get install chromium)"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Debian's redis-server, for the cluster tests (tests/redis_server.py starts one of its own on
# a free port). As root (CI) apt installs it, and stops the service Debian starts on 6379,
# which nothing here uses; otherwise a warning (only those tests need it).
redis:
	@if command -v redis-server >/dev/null 2>&1; then exit 0; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "warning: redis-server is missing; install it (Debian: apt-get install" \
	    "redis-server), or the cluster tests will fail" >&2; \
	else \
	  set -e; echo "installing Redis (apt-get install redis-server)"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  (service redis-server stop || true) >/dev/null 2>&1; \
	fi

# The demo needs only the venv (not the test servers); its library folder is indexed into the
# embedded SQLite database first (idempotent: files already indexed are skipped).
run: $(STAMP)
	$(BIN)/pixelport library scan --config demo/pixelport.toml --quiet
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
# part of `make test`). bench/setup.sh installs nginx, wrk and redis-server (apt), thumbor (own
# venv) and ipx (npm) under bench/; results go to bench/results/ and docs/performance.md.
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
	rm -rf $(VENV) $(TOOLS) tests/node/node_modules .mypy_cache .pytest_cache .ruff_cache
