"""URLs built by ImageKit's own Python SDK (imagekitio) are served as ImageKit documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imagekitio import ImageKit

from tests.test_delivery import config

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> ImageKit:
    return ImageKit(private_key="private_test_key")


@pytest.mark.parametrize("position", ["path", "query"])
@pytest.mark.parametrize(("transformation", "size", "content_type"), [
    ({"width": 300}, (300, 225), "image/jpeg"),
    ({"height": 150}, (200, 150), "image/jpeg"),
    ({"width": 120, "height": 120}, (120, 120), "image/jpeg"),
    ({"width": 400, "height": 400, "crop": "at_max"}, (400, 300), "image/jpeg"),
    ({"width": 2000, "height": 2000, "crop": "at_max"}, (800, 600), "image/jpeg"),
    ({"width": 100, "crop": "maintain_ratio", "format": "png"}, (100, 75), "image/png"),
    ({"width": 100, "format": "webp", "quality": 40}, (100, 75), "image/webp"),
    ({"width": 64, "format": "avif"}, (64, 48), "image/avif"),
    ({"width": 50, "format": "jpg"}, (50, 38), "image/jpeg"),
])
def test_build_url_is_served(serve: Any, library: Path, client: ImageKit, position: str,
                             transformation: dict[str, Any], size: tuple[int, int],
                             content_type: str) -> None:
    pp = serve(config(library))
    url = client.helper.build_url(src="/photo.jpg", url_endpoint=pp.url + "/",
                                  transformation=[transformation],
                                  transformation_position=position)
    target = url.removeprefix(pp.url)
    assert ("/tr:" in target) == (position == "path")
    response = pp.get(target)
    assert response.status == 200, response.ik_error
    assert response.headers["content-type"] == content_type
    image = response.image()
    assert (image.width, image.height) == size


def test_chained_transformations(serve: Any, library: Path, client: ImageKit) -> None:
    pp = serve(config(library))
    url = client.helper.build_url(src="/photo.jpg", url_endpoint=pp.url,
                                  transformation=[{"width": 400}, {"height": 100}],
                                  transformation_position="path")
    assert ":h-100" in url
    image = pp.get(url.removeprefix(pp.url)).image()
    assert (image.width, image.height) == (133, 100)


def test_special_character_path_from_sdk(serve: Any, library: Path, client: ImageKit) -> None:
    pp = serve(config(library))
    for position in ("path", "query"):
        url = client.helper.build_url(src="/sub dir/ünï cödé (1)+%.jpg", url_endpoint=pp.url,
                                      transformation=[{"width": 32}],
                                      transformation_position=position)
        response = pp.get(url.removeprefix(pp.url))
        assert response.status == 200, (url, response.ik_error)
        assert response.image().width == 32


def test_named_endpoint_from_sdk(serve: Any, library: Path, client: ImageKit) -> None:
    pp = serve(config(library, endpoints=[{"identifier": "media", "origins": []}]))
    url = client.helper.build_url(src="/photo.jpg", url_endpoint=pp.url + "/media",
                                  transformation=[{"width": 30}], transformation_position="path")
    assert "/media/tr:w-30/photo.jpg" in url
    assert pp.get(url.removeprefix(pp.url)).image().width == 30


def test_original_from_sdk(serve: Any, library: Path, client: ImageKit) -> None:
    pp = serve(config(library))
    url = client.helper.build_url(src="/photo.jpg", url_endpoint=pp.url,
                                  transformation=[{"original": True}])
    assert pp.get(url.removeprefix(pp.url)).body == (library / "photo.jpg").read_bytes()
