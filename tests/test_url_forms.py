"""ImageKit's URL forms over real HTTP: `/ik-seo/<path without extension>/<seo name>.<ext>`
serves `<path>.<ext>`; `ik-obj-version` is ignored by origins without versions (the media
library's versions are tested in test_library_api.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imagekitio import ImageKit

from tests.helpers import OriginServer, make_image
from tests.test_delivery import config, web_origin
from tests.test_signing import parse

pytestmark = pytest.mark.integration
KEY = "seo_private_key"


def test_seo_name_serves_the_file(serve: Any, library: Path) -> None:
    pp = serve(config(library, endpoints=[{"identifier": "", "origins": []},
                                          {"identifier": "media", "origins": []}]))
    original = pp.get("/photo.jpg").body  # as delivered (re-encoded, metadata stripped)
    for target in ("/ik-seo/photo/my-lovely-photo.jpg", "/media/ik-seo/photo/another-name.jpg",
                   "/ik-seo/photo/n%C3%A4me%20with%20spaces.jpg"):
        response = pp.get(target)
        assert response.status == 200, (target, response.ik_error)
        assert response.body == original
        assert response.headers["content-type"] == "image/jpeg"
    # The file's folders stay: sub dir/ünï cödé (1)+%.jpg under any SEO name.
    nested = pp.get("/ik-seo/sub%20dir/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9%20(1)+%25/x.jpg")
    assert nested.status == 200 and nested.image().width == 320
    # The SEO name's extension is the file's: another extension is another (absent) file.
    assert pp.get("/ik-seo/photo/my-lovely-photo.png").status == 404
    missing = pp.get("/ik-seo/just-a-name.jpg")
    assert missing.status == 404 and missing.ik_error.startswith("ENOENT")


def test_seo_name_with_transformations(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    for target in ("/tr:w-100/ik-seo/photo/lovely.jpg", "/ik-seo/tr:w-100/photo/lovely.jpg",
                   "/ik-seo/photo/lovely.jpg?tr=w-100"):
        response = pp.get(target)
        assert response.status == 200, (target, response.ik_error)
        assert response.image().width == 100
    # The same result as the plain URL: the SEO name is not part of what is made.
    plain = pp.get("/tr:w-100/photo.jpg")
    assert pp.get("/tr:w-100/ik-seo/photo/other.jpg").body == plain.body


def test_seo_name_names_the_download(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    response = pp.get("/ik-seo/photo/my-lovely-photo.jpg?ik-attachment=true")
    assert response.status == 200
    assert 'filename="my-lovely-photo.jpg"' in response.headers["content-disposition"]


@pytest.mark.parametrize("position", ["path", "query"])
def test_signed_seo_urls_from_the_sdk(serve: Any, library: Path, position: str) -> None:
    pp = serve(config(library, security={"allow_private_networks": True, "private_key": KEY,
                                         "require_signed_urls": True}))
    client = ImageKit(private_key=KEY)
    url = client.helper.build_url(src="/ik-seo/photo/lovely photo.jpg", url_endpoint=pp.url,
                                  transformation=[{"width": 60}],
                                  transformation_position=position, signed=True,
                                  expires_in=300)
    target = url.removeprefix(pp.url)
    response = pp.get(target)
    assert response.status == 200, (target, response.ik_error)
    assert response.image().width == 60
    # The signature covers the URL as requested, SEO name included.
    tampered = target.replace("lovely%20photo", "other-name")
    assert pp.get(tampered).status == 401
    assert pp.get("/ik-seo/photo/lovely%20photo.jpg?tr=w-60").status == 401


def test_obj_version_is_ignored_by_other_origins(serve: Any, origin: OriginServer) -> None:
    origin.files["/web.jpg"] = make_image(120, 90)
    pp = serve(config(None, [web_origin("web", origin)]))
    response = pp.get("/tr:w-60/web.jpg?ik-obj-version=0123456789abcdef01234567")
    assert response.status == 200, response.ik_error
    assert response.image().width == 60
    assert all("ik-obj-version" not in r.query for r in origin.requests)


@pytest.mark.parametrize(("target", "path", "seo", "chain"), [
    ("/ik-seo/photos/cat/my-lovely-cat.jpg", "photos/cat.jpg", "my-lovely-cat.jpg", ""),
    ("/tr:w-10/ik-seo/a/b.c.png", "a.png", "b.c.png", "w-10"),
    ("/ik-seo/tr:w-10/a/nice.jpg?tr=h-5", "a.jpg", "nice.jpg", "w-10:h-5"),
    ("/ik-seo/clip/nice.mp4/ik-thumbnail.jpg", "clip.mp4", "nice.mp4", ""),
    ("/ik-seo/https://example.com/img/cat/seo-name.jpg", "https://example.com/img/cat.jpg",
     "seo-name.jpg", ""),
    ("/ik-seo/noext/seo-name", "noext", "seo-name", ""),
    ("/photos/ik-seo/cat.jpg", "photos/ik-seo/cat.jpg", None, ""),  # only right after tr:
])
def test_seo_targets(target: str, path: str, seo: str | None, chain: str) -> None:
    request = parse(target)
    assert (request.file_path, request.seo_name, request.transformation) == (path, seo, chain)
    # What is signed is the target as requested, SEO name included.
    assert request.signed_target == target.lstrip("/")


def test_obj_version_is_read_from_the_query() -> None:
    assert parse("/a.jpg?ik-obj-version=abc&v=2").version == "abc"
    assert parse("/a.jpg?ik-obj-version=").version is None
    assert parse("/a.jpg?ik-obj-version=abc&v=2").origin_query == "v=2"
