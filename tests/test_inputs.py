"""The request headers that change an answer: declared once, read only so, in both keys.

Planning (parse, key, job) may read no request header that `inputs.INPUTS` does not declare;
every declared header is part of the hot-answer key, and can change the result key. A header
read in planning but missing from either key would serve one client's answer to another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelport.app import App
from pixelport.asgi import Scope
from pixelport.config import from_dict
from pixelport.delivery import handler
from pixelport.delivery.hot import KEYED, request_key
from pixelport.delivery.inputs import INPUTS
from tests.helpers import make_image

TARGETS = ["/a.jpg", "/tr:w-auto/a.jpg", "/tr:w-10,dpr-auto/a.jpg", "/tr:f-auto/a.jpg",
           "/tr:w-10,f-png/a.jpg", "/app.js", "/a.jpg?v=2&tr=w-5", "/tr:orig-true/a.jpg",
           "/tr:if-iw_gt_5,w-auto,if-end/a.jpg"]
BASE = {"host": "pixelport.test", "accept": "image/webp,*/*", "sec-ch-width": "300",
        "sec-ch-dpr": "2", "accept-encoding": "gzip, br"}
# For each declared input: a request, and another value of that header alone that must give
# another result key.
CHANGES = {
    "host": ("/a.jpg", "cdn.example.test"),
    "accept": ("/tr:w-10/a.jpg", "image/avif,*/*;q=0.5"),
    "sec-ch-width": ("/tr:w-auto/a.jpg", "900"),
    "width": ("/tr:w-auto/a.jpg", "1900"),
    "sec-ch-dpr": ("/tr:w-10,dpr-auto/a.jpg", "3"),
    "dpr": ("/tr:w-10,dpr-auto/a.jpg", "1.5"),
    "accept-encoding": ("/app.js", "gzip"),
}


class Recording(dict[str, str]):
    """Headers that remember which names were asked for."""

    asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        Recording.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        Recording.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        Recording.asked.add(str(key))
        return super().__contains__(key)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("inputs")
    (root / "a.jpg").write_bytes(make_image(40, 30))
    (root / "app.js").write_bytes(b"1")
    made = App(from_dict({
        "library": {"dir": str(root)}, "cache": {"dir": str(root / "cache")},
        "images": {"avif": True},
        "endpoint": [{"identifier": "", "origins": []},
                     {"identifier": "media", "origins": [], "domains": ["cdn.example.test"]}],
    }, base=Path(root)))
    yield made
    made.pool.shutdown()


def scope(target: str, headers: dict[str, str]) -> Scope:
    path, _, query = target.partition("?")
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


def result_key(app: App, target: str, headers: dict[str, str]) -> str:
    """The key the answer is cached under: its encoded form's where one is negotiated."""
    plan = app.delivery.plan(scope(target, headers))
    key = app.delivery.key(plan)
    encoding = app.delivery.encoding(plan)
    return app.delivery.job(plan, key, encoding).key


def test_planning_reads_only_the_declared_inputs(app: App,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "request_headers",
                        lambda s: Recording({k.decode(): v.decode() for k, v in s["headers"]}))
    Recording.asked = set()
    for target in TARGETS:
        for host in ("pixelport.test", "cdn.example.test"):
            result_key(app, target, {**BASE, "host": host, "width": "10", "dpr": "1"})
    assert Recording.asked, "the recording saw nothing: the test would pass vacuously"
    assert Recording.asked <= set(INPUTS), Recording.asked - set(INPUTS)


def test_every_declared_input_is_in_the_hot_key() -> None:
    assert [name.decode() for name in KEYED] == list(INPUTS)
    plain = request_key(b"/a.jpg", [(name.encode(), b"1") for name in INPUTS])
    for name in INPUTS:
        changed = request_key(b"/a.jpg", [(n.encode(), b"2" if n == name else b"1")
                                          for n in INPUTS])
        assert changed != plain, name


@pytest.mark.parametrize("name", INPUTS)
def test_every_declared_input_can_change_the_result_key(app: App, name: str) -> None:
    target, other = CHANGES[name]
    headers = {k: v for k, v in BASE.items() if not (name in ("width", "dpr") and k in (
        "sec-ch-width", "sec-ch-dpr"))}  # the older spelling counts where the newer is absent
    assert result_key(app, target, headers) != result_key(app, target, {**headers, name: other})
