"""The media library through ImageKit's Node SDK (@imagekit/nodejs), on SQLite and PostgreSQL:
tests/node/library.mjs drives every route and checks delivery after each change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Pixelport, make_image
from tests.library_support import PRIVATE_KEY, library_config
from tests.node_sdk import run_node

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Pixelport]:
    root = tmp_path / "library"
    root.mkdir()
    pp = Pixelport(library_config(root, database_url), base=tmp_path)
    yield pp
    pp.stop()


def test_every_route_through_the_node_sdk(server: Pixelport, tmp_path: Path,
                                          node_sdk: object) -> None:
    photo, other = tmp_path / "photo.jpg", tmp_path / "other.png"
    photo.write_bytes(make_image(320, 240))
    other.write_bytes(make_image(80, 60, ".png"))
    done = run_node("library.mjs", {"IK_BASE_URL": server.url, "IK_PRIVATE_KEY": PRIVATE_KEY,
                                    "IK_PHOTO": str(photo), "IK_OTHER": str(other)},
                    timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")
