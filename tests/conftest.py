"""Shared fixtures: a demo-like library, a real origin server, pixelport on a real port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import OriginServer, Pixelport, make_image


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
