"""Every example URL in docs/transformations.md works against the demo media library."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Pixelport

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "transformations.md").read_text()
EXAMPLES = sorted(set(re.findall(r"`(/tr:[^`\s]+)`", DOC)))
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pixelport]:
    database = tmp_path_factory.mktemp("demo") / "library.db"  # never beside the checkout's
    server = Pixelport({"library": {"dir": str(ROOT / "demo" / "library")},
                        "database": {"url": f"sqlite:///{database}"},
                        "transformations": {"thumb_small": "w-100,h-100,c-at_max"}})
    yield server
    server.stop()


def test_there_are_examples() -> None:
    assert len(EXAMPLES) > 40


@pytest.mark.parametrize("target", EXAMPLES)
def test_example_is_served(demo: Pixelport, target: str) -> None:
    response = demo.get(target, {"Accept": "image/webp,*/*"})
    assert response.status == 200, (target, response.ik_error)
