# Two commands on a fresh machine: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LISTEN ?= 127.0.0.1:8080

.PHONY: setup run test lint lock clean

setup: $(STAMP)

# Re-install only when the lock or the project metadata changes; a half-built venv has no stamp.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/pixelport serve --config demo/pixelport.toml --listen $(LISTEN)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy --strict pixelport

test: lint
	$(BIN)/python -m pytest -q

# Regenerate the pinned lock from pyproject.toml (needs network to PyPI).
lock: setup
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra build --python-version 3.11 --no-header -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
