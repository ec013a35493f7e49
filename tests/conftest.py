"""Shared fixtures: a demo-like library, a real origin server, pixelport on a real port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.helpers import OriginServer, Pixelport, make_image

pytest_plugins = ["tests.databases", "tests.node_sdk"]

# Property tests: the same examples on every CI run (a landing never depends on luck); random
# ones locally and in `make fuzz` (tests/fuzz.py), whose finds become fixed @examples.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") == "true" else "default"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every hypothesis test `property`, the set `make fuzz` runs."""
    for item in items:
        function = getattr(item, "function", None)
        if getattr(function, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A media library folder with a few generated files."""
    root = tmp_path / "library"
    (root / "sub dir").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(make_image(800, 600))
    (root / "alpha.png").write_bytes(make_image(400, 400, ".png", alpha=True))
    (root / "sub dir" / "ünï cödé (1)+%.jpg").write_bytes(make_image(320, 240))
    (root / "app.js").write_bytes(b"console.log('hello');\n")
    (root / "style.css").write_bytes(b"body { color: red; }\n")
    (root / "data.json").write_bytes(b'{"a": 1}\n')
    (root / "font.woff2").write_bytes(b"wOF2" + b"\0" * 60)
    return root


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    """A real HTTP origin on 127.0.0.1."""
    server = OriginServer().start()
    yield server
    server.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start pixelport with a config dict; every server is stopped after the test."""
    started: list[Pixelport] = []

    def start(config: dict[str, Any]) -> Pixelport:
        server = Pixelport(config, base=tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# Cloud storage emulators (session-scoped, started only by the tests that use them).
from tests.cloud_servers import azurite, gcs_servers, moto_s3  # noqa: E402, F401
