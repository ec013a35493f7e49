"""End-to-end delivery over real HTTP: endpoints, origin chain, errors, headers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import OriginServer, free_port, make_image, server_timing

pytestmark = pytest.mark.integration


def web_origin(name: str, server: OriginServer, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "web_server", "base_url": server.url, **extra}


def config(library: Path | None, origins: list[dict[str, Any]] | None = None,
           endpoints: list[dict[str, Any]] | None = None, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "security": {"allow_private_networks": True},
        "library": {"dir": str(library) if library else ""},
        "origin": origins or [],
        "endpoint": endpoints or [{"identifier": "",
                                   "origins": [o["name"] for o in origins or []]}],
    }
    data.update(sections)
    return data


# --- endpoints --------------------------------------------------------------------------------

def test_default_named_and_multi_segment_endpoints(serve: Any, origin: OriginServer,
                                                  library: Path) -> None:
    second = OriginServer().start()
    try:
        origin.files["/only-a.jpg"] = make_image(100, 80)
        second.files["/only-b.jpg"] = make_image(120, 90)
        pp = serve(config(None, [web_origin("a", origin), web_origin("b", second)], [
            {"identifier": "", "origins": ["a"]},
            {"identifier": "products", "origins": ["b"]},
            {"identifier": "products/big", "origins": ["a"]},
        ]))
        assert pp.get("/only-a.jpg").status == 200
        assert pp.get("/products/only-b.jpg").status == 200
        assert pp.get("/products/only-a.jpg").status == 404
        # The longest identifier wins: products/big uses origin a.
        assert pp.get("/products/big/only-a.jpg").status == 200
        assert pp.get("/products/big/tr:w-50/only-a.jpg").image().width == 50
        # An unknown first segment belongs to the default endpoint's path.
        assert pp.get("/only-b.jpg").status == 404
    finally:
        second.stop()


def test_custom_domain_drops_identifier(serve: Any, origin: OriginServer) -> None:
    origin.files["/x.jpg"] = make_image(100, 80)
    pp = serve(config(None, [web_origin("a", origin)], [
        {"identifier": "shop", "origins": ["a"], "domains": ["static.example.com"]},
    ]))
    assert pp.get("/x.jpg", {"Host": "static.example.com:8080"}).status == 200
    assert pp.get("/tr:w-40/x.jpg", {"Host": "STATIC.example.com"}).image().width == 40
    assert pp.get("/shop/x.jpg").status == 200
    # No default endpoint: a path outside every identifier is not found.
    response = pp.get("/x.jpg")
    assert response.status == 404 and response.ik_error.startswith("ENOENT")


# --- origin chain -----------------------------------------------------------------------------

def test_library_first_then_origins_in_order(serve: Any, origin: OriginServer,
                                             library: Path) -> None:
    second = OriginServer().start()
    try:
        origin.files["/both.jpg"] = make_image(111, 50)
        second.files["/both.jpg"] = make_image(222, 50)
        second.files["/second-only.jpg"] = make_image(333, 50)
        origin.files["/photo.jpg"] = make_image(10, 10)  # the library copy must win
        pp = serve(config(library, [web_origin("first", origin), web_origin("second", second)]))
        assert pp.get("/both.jpg?tr=f-png").image().width == 111
        assert pp.get("/second-only.jpg?tr=f-png").image().width == 333
        assert pp.get("/photo.jpg?tr=f-png").image().width == 800
        assert "/photo.jpg" not in origin.paths()
        assert origin.paths().count("/second-only.jpg") == 1
    finally:
        second.stop()


def test_error_is_remembered_when_no_later_source_has_the_file(serve: Any,
                                                               origin: OriginServer) -> None:
    second = OriginServer().start()
    try:
        origin.statuses["/x.jpg"] = 403
        second.files["/y.jpg"] = make_image(20, 20)
        pp = serve(config(None, [web_origin("first", origin), web_origin("second", second)]))
        denied = pp.get("/x.jpg")
        assert denied.status == 404
        assert denied.ik_error.startswith("EACCES - ") and "first" in denied.ik_error
        # ... but a later source that has the file still wins over an earlier error.
        origin.statuses["/y.jpg"] = 500
        assert pp.get("/y.jpg").status == 200
    finally:
        second.stop()


# --- the error contract -----------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code"), [(404, "ENOENT"), (410, "ENOENT"), (401, "EACCES"),
                                              (403, "EACCES"), (500, "UNIDENTIFIED"),
                                              (503, "UNIDENTIFIED")])
def test_origin_status_maps_to_ik_error(serve: Any, origin: OriginServer, status: int,
                                        code: str) -> None:
    origin.statuses["/f.jpg"] = status
    pp = serve(config(None, [web_origin("web", origin)]))
    response = pp.get("/tr:w-10/f.jpg")
    assert response.status == 404
    assert response.ik_error.startswith(f"{code} - ")
    assert response.body == b"Not Found"


def test_refused_connection_is_econnrefused(serve: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    pp = serve(config(None, [{"name": "dead", "type": "web_server", "base_url": dead}]))
    response = pp.get("/a.jpg")
    assert response.status == 404
    assert response.ik_error.startswith("ECONNREFUSED - ") and "dead" in response.ik_error


def test_origin_timeout_is_unidentified_and_names_it(serve: Any, origin: OriginServer) -> None:
    origin.files["/slow.jpg"] = make_image(10, 10)
    origin.delays["/slow.jpg"] = 2.0
    pp = serve(config(None, [web_origin("slowpoke", origin, read_timeout=0.3)]))
    began = time.monotonic()
    response = pp.get("/slow.jpg")
    assert time.monotonic() - began < 1.9
    assert response.status == 404
    assert response.ik_error.startswith("UNIDENTIFIED - ")
    assert "slowpoke" in response.ik_error and "timed out" in response.ik_error


def test_bad_transformation_is_einvalid_naming_the_part(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    for tr, part in [("w-abc", "w-abc"), ("zz-1", "zz"), ("c-sideways", "c-sideways"),
                     ("q-101", "q-101"), ("w", "'w'")]:
        response = pp.get(f"/tr:{tr}/photo.jpg")
        assert response.status == 400, tr
        assert response.ik_error.startswith("EINVALID - ") and part in response.ik_error, tr


def test_non_image_asked_to_transform_is_eformat(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    response = pp.get("/tr:w-100/app.js")
    assert response.status == 400 and response.ik_error.startswith("EFORMAT - ")
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    response = pp.get("/tr:w-100/broken.jpg")
    assert response.status == 400 and response.ik_error.startswith("EFORMAT - ")


def test_limits_are_elimit(serve: Any, library: Path) -> None:
    pp = serve(config(library, limits={"max_input_pixels": 1000, "max_input_bytes": "1MB"}))
    response = pp.get("/tr:w-10/photo.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    (library / "big.png").write_bytes(make_image(2, 2, ".png") + b"\0" * 1_100_000)
    response = pp.get("/tr:w-1/big.png")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    pp2 = serve(config(library, limits={"max_output_pixels": 10_000}))
    response = pp2.get("/tr:w-1000,h-1000/photo.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")


# --- origin requests --------------------------------------------------------------------------

def test_origin_receives_x_req_from_and_forwarded_host(serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(10, 10)
    pp = serve(config(None, [web_origin("plain", origin)]))
    pp.get("/a.jpg", {"Host": "cdn.example.org"})
    assert origin.requests[-1].headers["x-req-from"] == "pixelport"
    assert origin.requests[-1].headers["host"] != "cdn.example.org"

    pp2 = serve(config(None, [web_origin("fwd", origin, forward_host_header=True)],
                       server={"origin_header": "x-req-from: imagekit"}))
    pp2.get("/a.jpg", {"Host": "cdn.example.org"})
    assert origin.requests[-1].headers["x-req-from"] == "imagekit"
    assert origin.requests[-1].headers["host"] == "cdn.example.org"


def test_origin_cookies_are_not_kept_between_requests(serve: Any, origin: OriginServer) -> None:
    # A proxy holds no cookie jar: what one fetch's answer sets must not ride on the next
    # (aiohttp keeps cookies by default, for host names, not for IP addresses).
    origin.files["/a.jpg"] = make_image(10, 10)
    origin.files["/b.jpg"] = make_image(10, 10)
    origin.extra_headers["/a.jpg"] = {"Set-Cookie": "session=abc; Path=/"}
    named = {"name": "named", "type": "web_server",
             "base_url": f"http://localhost:{origin.port}"}
    pp = serve(config(None, [named]))
    assert pp.get("/a.jpg").status == 200
    assert pp.get("/b.jpg").status == 200
    assert [r.path for r in origin.requests] == ["/a.jpg", "/b.jpg"]
    assert "cookie" not in origin.requests[-1].headers


def test_canonical_link_header(serve: Any, origin: OriginServer) -> None:
    origin.files["/dir/a b.jpg"] = make_image(10, 10)
    pp = serve(config(None, [web_origin("web", origin,
                                        canonical_base_url="https://www.example.com/")]))
    response = pp.get("/tr:w-5/dir/a%20b.jpg")
    assert response.headers["link"] == '<https://www.example.com/dir/a%20b.jpg>; rel="canonical"'


def test_redirects_are_followed(serve: Any, origin: OriginServer) -> None:
    origin.files["/new.jpg"] = make_image(30, 20)
    origin.redirects["/old.jpg"] = "/new.jpg"
    pp = serve(config(None, [web_origin("web", origin)]))
    assert pp.get("/old.jpg?tr=w-15").image().width == 15


# --- response headers -------------------------------------------------------------------------

def test_server_timing_and_caching_headers(serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(None, [web_origin("web", origin)]))
    response = pp.get("/tr:w-100/a.jpg")
    assert response.status == 200
    timing = server_timing(response.headers["server-timing"])
    assert isinstance(timing["download"], float) and timing["download"] >= 0
    assert isinstance(timing["transformation"], float) and timing["transformation"] > 0
    assert response.headers["content-type"] == "image/jpeg"
    assert int(response.headers["content-length"]) == len(response.body)
    assert response.headers["etag"].startswith('"') and response.headers["etag"].endswith('"')
    assert response.headers["last-modified"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert response.headers["cache-control"] == "public, max-age=31536000"


def test_conditional_requests_answer_304(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    first = pp.get("/tr:w-100/photo.jpg")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = pp.get("/tr:w-100/photo.jpg", {"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    assert pp.get("/tr:w-100/photo.jpg", {"If-None-Match": '"other"'}).status == 200
    assert pp.get("/tr:w-100/photo.jpg", {"If-Modified-Since": modified}).status == 304
    assert pp.get("/tr:w-100/photo.jpg",
                  {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status == 200
    assert pp.get("/app.js", {"If-None-Match": pp.get("/app.js").headers["etag"]}).status == 304


def test_head_request_has_headers_only(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    response = pp.get("/tr:w-100/photo.jpg", method="HEAD")
    assert response.status == 200 and response.body == b""
    assert int(response.headers["content-length"]) > 0
    assert pp.get("/photo.jpg", method="POST").status == 405


def test_range_requests_on_non_image_files(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    response = pp.get("/app.js", {"Range": "bytes=0-6"})
    assert response.status == 206 and response.body == b"console"
    assert response.headers["content-range"] == "bytes 0-6/22"
    assert pp.get("/app.js", {"Range": "bytes=-3"}).body == b");\n"
    assert pp.get("/app.js", {"Range": "bytes=100-"}).status == 416


def test_large_passthrough_is_streamed_with_origin_range(serve: Any, origin: OriginServer) -> None:
    blob = bytes(range(256)) * (40 * 1024)  # 10 MiB, beyond the buffering limit
    origin.files["/video.bin"] = blob
    pp = serve(config(None, [web_origin("web", origin)]))
    response = pp.get("/video.bin")
    assert response.status == 200 and response.body == blob
    assert response.headers["content-length"] == str(len(blob))


# --- paths ------------------------------------------------------------------------------------

def test_special_characters_resolve(serve: Any, library: Path, origin: OriginServer) -> None:
    name = "sub dir/ünï cödé (1)+%.jpg"
    origin.files["/" + name] = make_image(50, 40)
    encoded = "sub%20dir/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9%20(1)+%25.jpg"
    pp = serve(config(library))
    assert pp.get(f"/tr:w-32/{encoded}").image().width == 32
    pp2 = serve(config(None, [web_origin("web", origin)]))
    assert pp2.get(f"/{encoded}?tr=w-25").image().width == 25
    assert origin.paths()[-1] == "/" + name


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
    "/sub%20dir/..%2F..%2Fsecret.txt",
    "/..%5csecret.txt", "/sub%20dir%5c..%5c..%5csecret.txt", "/photo.jpg%00.png",
    "/tr:w-10/../secret.txt", "//etc/passwd", "/%2Fetc%2Fpasswd", "/link/secret.txt",
    "/link-file.txt",
])
def test_traversal_never_leaves_the_library(serve: Any, library: Path, target: str) -> None:
    secret = library.parent / "secret.txt"
    secret.write_text("top secret")
    (library / "link").symlink_to(library.parent)
    (library / "link-file.txt").symlink_to(secret)
    pp = serve(config(library))
    response = pp.get(target)
    assert response.status in (400, 404), target
    assert b"top secret" not in response.body
    assert response.ik_error.split(" ")[0] in ("ENOENT", "EINVALID")


@pytest.mark.parametrize(("name", "content_type"), [
    ("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"), ("font.woff2", "font/woff2"),
])
def test_non_media_passthrough(serve: Any, library: Path, name: str, content_type: str) -> None:
    pp = serve(config(library))
    response = pp.get(f"/{name}")
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.body == (library / name).read_bytes()


# --- formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("accept", "tr", "expected", "vary"), [
    ("image/avif,image/webp,*/*", "w-50", "image/webp", True),
    ("*/*", "w-50", "image/jpeg", True),
    ("image/webp;q=0,*/*", "w-50", "image/jpeg", True),
    ("image/webp", "w-50,f-auto", "image/webp", True),
    ("image/webp", "w-50,f-png", "image/png", False),
    ("*/*", "f-avif", "image/avif", False),
    ("*/*", "f-jpeg", "image/jpeg", False),
])
def test_format_negotiation(serve: Any, library: Path, accept: str, tr: str, expected: str,
                            vary: bool) -> None:
    pp = serve(config(library))
    response = pp.get(f"/tr:{tr}/photo.jpg", {"Accept": accept})
    assert response.headers["content-type"] == expected
    assert ("vary" in response.headers) is vary
    assert response.image().get("vips-loader").startswith(expected.split("/")[1].replace(
        "jpeg", "jpeg").replace("avif", "heif"))


def test_avif_by_accept_only_when_enabled(serve: Any, library: Path) -> None:
    pp = serve(config(library, images={"avif": True}))
    response = pp.get("/tr:w-50/photo.jpg", {"Accept": "image/avif,image/webp"})
    assert response.headers["content-type"] == "image/avif"


def test_alpha_is_kept(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    png = pp.get("/tr:w-100/alpha.png")
    assert png.headers["content-type"] == "image/png" and png.image().hasalpha()
    webp = pp.get("/tr:w-100/alpha.png", {"Accept": "image/webp"})
    assert webp.headers["content-type"] == "image/webp" and webp.image().hasalpha()


def test_orig_true_returns_the_original_bytes(serve: Any, library: Path) -> None:
    pp = serve(config(library))
    response = pp.get("/tr:w-100,orig-true/photo.jpg")
    assert response.body == (library / "photo.jpg").read_bytes()


def test_quality_changes_size(serve: Any, library: Path) -> None:
    (library / "noisy.jpg").write_bytes(
        __import__("pyvips").Image.gaussnoise(400, 300).cast("uchar").write_to_buffer(".jpg"))
    pp = serve(config(library))
    low = pp.get("/tr:w-300,q-10/noisy.jpg").body
    high = pp.get("/tr:w-300,q-95/noisy.jpg").body
    assert len(low) < len(high) / 2


def test_health(serve: Any) -> None:
    pp = serve(config(None))
    assert pp.get("/healthz").status == 200


def test_video_files_stream_with_range_from_the_library(serve: Any, library: Path) -> None:
    blob = bytes(range(256)) * 1000
    (library / "clip.mp4").write_bytes(blob)
    pp = serve(config(library))
    whole = pp.get("/clip.mp4")
    assert whole.status == 200 and whole.body == blob
    assert whole.headers["content-type"] == "video/mp4"
    part = pp.get("/clip.mp4", {"Range": "bytes=1000-1999"})
    assert part.status == 206 and part.body == blob[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(blob)}"
    assert pp.get("/tr:w-10/clip.mp4").ik_error.startswith("EFORMAT")


def test_video_range_is_forwarded_to_web_origins(serve: Any, origin: OriginServer) -> None:
    origin.files["/v.mp4"] = b"0123456789" * 100
    pp = serve(config(None, [web_origin("web", origin)]))
    part = pp.get("/v.mp4", {"Range": "bytes=5-14"})
    assert origin.requests[-1].headers.get("range") == "bytes=5-14"
    assert part.status == 206 and part.body == b"5678901234"
    assert part.headers["content-range"] == "bytes 5-14/1000"
    # Past the end: the origin's 416 is passed on, without its error page.
    past = pp.get("/v.mp4", {"Range": "bytes=1000-"})
    assert past.status == 416 and past.body == b"" and not past.ik_error
    assert past.headers["content-range"] == "bytes */1000"
    # An origin that ignores Range (as a server may): the full body comes back as a 200.
    origin.ranges = False
    whole = pp.get("/v.mp4", {"Range": "bytes=5-14"})
    assert whole.status == 200 and whole.body == b"0123456789" * 100


def test_an_unexpected_failure_is_a_500_without_details_and_the_server_goes_on(
        serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(40, 30)
    pp = serve(config(None, [web_origin("web", origin)]))
    delivery = pp.app.delivery

    def broken(scope: Any) -> Any:
        raise RuntimeError("a secret detail")

    delivery.plan = broken
    failed = pp.get("/tr:w-10/a.jpg")
    assert failed.status == 500 and failed.body == b"Internal Server Error"
    assert failed.headers["ik-error"].startswith("UNIDENTIFIED - Internal error; request id ")
    assert "secret" not in failed.headers["ik-error"]
    assert failed.headers["cache-control"] == "no-store"
    del delivery.plan
    assert pp.get("/tr:w-10/a.jpg").status == 200
