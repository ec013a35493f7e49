"""Non-media files answered with Content-Encoding br or gzip, over real HTTP: negotiation,
bytes, lengths, validators, ranges, and one compression per encoding."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import threading
from pathlib import Path
from typing import Any

import brotli
import pytest

from pixelport.cache.entry import Entry
from pixelport.delivery.encoding import negotiate
from pixelport.produce import compress
from tests.helpers import OriginServer, Pixelport, make_image
from tests.test_delivery import config, web_origin

pytestmark = pytest.mark.integration

SCRIPT = b"".join(b"function f%d(a, b) { return a * %d + b; } // pixelport\n" % (i, i)
                  for i in range(600))
FILES = {
    "app.js": SCRIPT,
    "style.css": b"".join(b".c%d { color: #%06x; margin: %dpx; }\n" % (i, i * 997, i % 40)
                          for i in range(400)),
    "data.json": b"[" + b",".join(b'{"id": %d, "name": "item %d"}' % (i, i)
                                  for i in range(300)) + b"]",
    "page.html": b"<!doctype html><ul>" + b"".join(b"<li>row %d</li>" % i for i in range(400))
                 + b"</ul>",
    "feed.xml": b"<?xml version='1.0'?><feed>" + b"".join(b"<entry n='%d'/>" % i
                                                         for i in range(400)) + b"</feed>",
    "notes.txt": b"".join(b"line %d of plain text\n" % i for i in range(400)),
    "list.m3u8": b"#EXTM3U\n" + b"".join(b"#EXTINF:4.0,\nsegment%d.ts\n" % i
                                         for i in range(200)),
    "font.ttf": b"\x00\x01\x00\x00" + bytes(range(256)) * 8 + b"\x00" * 4096,
    "font.otf": b"OTTO" + b"\x00" * 4096 + bytes(range(256)) * 4,
    "font.eot": b"\x00" * 34 + b"LP" + b"\x00" * 4096,
    "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
                   + b"".join(b'<rect x="%d" y="%d" width="3" height="3" fill="#%06x"/>'
                              % (i % 400, i // 4, i * 4093 % 0xFFFFFF) for i in range(300))
                   + b"</svg>",
}
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress}


@pytest.fixture
def files(library: Path) -> Path:
    for name, data in FILES.items():
        (library / name).write_bytes(data)
    (library / "tiny.js").write_bytes(b"console.log(1);\n")
    (library / "fonts.woff2").write_bytes(b"wOF2" + bytes(range(256)) * 20)
    return library


@pytest.fixture
def pp(serve: Any, files: Path) -> Pixelport:
    server: Pixelport = serve(config(files))
    return server


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The encodings compressed so far (the server runs in this process)."""
    made: list[str] = []
    lock = threading.Lock()
    real = compress.encode

    def encode(body: bytes, encoding: str, content_type: str) -> bytes:
        with lock:
            made.append(encoding)
        return real(body, encoding, content_type)

    monkeypatch.setattr(compress, "encode", encode)
    return made


@pytest.mark.parametrize(("accept", "expected"), [
    ("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br"), ("br, gzip", "br"),
    ("gzip;q=1.0, br;q=1.0", "br"), ("br;q=0.5, gzip;q=0.8", "gzip"), ("br;q=0, gzip", "gzip"),
    ("gzip;q=0, br;q=0", None), ("", None), ("identity", None), ("deflate", None),
    ("*", "br"), ("*;q=0.5, br;q=0", "gzip"), ("x-gzip", "gzip"), ("GZIP;Q=0.3", "gzip"),
    ("gzip;q=0.4, identity;q=0.9", None), ("br;q=abc, gzip", "gzip"), ("br;q=2", None),
])
def test_negotiation(accept: str, expected: str | None) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize(("accept", "encoding"), [
    ("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br"), ("br;q=0, gzip", "gzip"),
    ("br;q=0.1, gzip;q=0.9", "gzip"), ("gzip;q=0, br;q=0", None), ("identity", None),
    (None, None),
])
def test_answer_follows_accept_encoding(pp: Pixelport, files: Path, accept: str | None,
                                        encoding: str | None) -> None:
    response = pp.get("/app.js", {"Accept-Encoding": accept} if accept is not None else {})
    assert response.status == 200
    assert response.headers.get("content-encoding") == encoding
    assert "Accept-Encoding" in response.headers["vary"]
    assert int(response.headers["content-length"]) == len(response.body)
    body = DECODE[encoding](response.body) if encoding else response.body
    assert body == SCRIPT
    if encoding:
        assert len(response.body) < len(SCRIPT) // 3
        assert "accept-ranges" not in response.headers  # ranges are of the identity form


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_every_compressible_type(pp: Pixelport, files: Path, name: str,
                                 encoding: str) -> None:
    plain = pp.get(f"/{name}")
    assert plain.status == 200, plain.ik_error
    assert "content-encoding" not in plain.headers
    response = pp.get(f"/{name}", {"Accept-Encoding": encoding})
    assert response.headers.get("content-encoding") == encoding, name
    assert int(response.headers["content-length"]) == len(response.body)
    assert response.headers["content-type"] == plain.headers["content-type"]
    decoded = DECODE[encoding](response.body)
    assert decoded == plain.body  # an SVG's are its sanitised bytes
    if name != "drawing.svg":
        assert decoded == FILES[name]


def test_media_small_and_compressed_files_are_sent_as_they_are(pp: Pixelport,
                                                               files: Path) -> None:
    for target in ("/photo.jpg", "/tr:w-100/photo.jpg", "/alpha.png", "/fonts.woff2",
                   "/tiny.js", "/drawing.svg?tr=f-png"):
        response = pp.get(target, {"Accept-Encoding": "gzip, deflate, br"})
        assert response.status == 200, (target, response.ik_error)
        assert "content-encoding" not in response.headers, target
        assert "Accept-Encoding" not in response.headers.get("vary", ""), target
        assert int(response.headers["content-length"]) == len(response.body)
    assert pp.get("/fonts.woff2", {"Accept-Encoding": "br"}).body == (
        files / "fonts.woff2").read_bytes()
    assert pp.get("/photo.jpg", {"Accept-Encoding": "br"}).image().width == 800


def test_etags_head_and_conditional_requests(pp: Pixelport) -> None:
    answers = {coding: pp.get("/app.js", {"Accept-Encoding": coding} if coding else {})
               for coding in ("br", "gzip", "")}
    tags = {coding: answer.headers["etag"] for coding, answer in answers.items()}
    assert len(set(tags.values())) == 3, tags
    for coding, answer in answers.items():
        sent = {"Accept-Encoding": coding} if coding else {}
        head = pp.get("/app.js", sent, method="HEAD")
        assert head.status == 200 and head.body == b""
        for name in ("content-length", "content-type", "etag", "vary"):
            assert head.headers[name] == answer.headers[name], (coding, name)
        assert head.headers.get("content-encoding") == answer.headers.get("content-encoding")
        same = pp.get("/app.js", {**sent, "If-None-Match": tags[coding]})
        assert same.status == 304 and same.body == b""
        assert same.headers["etag"] == tags[coding]
        assert "Accept-Encoding" in same.headers["vary"]
        other = "gzip" if coding == "br" else "br"
        assert pp.get("/app.js", {**sent, "If-None-Match": tags[other]}).status == 200


def test_range_is_served_from_the_identity_form(pp: Pixelport) -> None:
    for accept in ("br", "gzip, br", ""):
        response = pp.get("/app.js", {"Accept-Encoding": accept, "Range": "bytes=10-99"})
        assert response.status == 206
        assert "content-encoding" not in response.headers
        assert response.body == SCRIPT[10:100]
        assert response.headers["content-range"] == f"bytes 10-99/{len(SCRIPT)}"
        assert response.headers["content-length"] == "90"
    # If-Range naming another representation (the encoded one): the whole identity body.
    encoded = pp.get("/app.js", {"Accept-Encoding": "br"})
    whole = pp.get("/app.js", {"Accept-Encoding": "br", "Range": "bytes=0-9",
                               "If-Range": encoded.headers["etag"]})
    assert whole.status == 200 and whole.body == SCRIPT
    plain = pp.get("/app.js")
    part = pp.get("/app.js", {"Range": "bytes=0-9", "If-Range": plain.headers["etag"]})
    assert part.status == 206 and part.body == SCRIPT[:10]


def test_compressed_once_per_encoding(pp: Pixelport, counted: list[str]) -> None:
    first = pp.get("/style.css", {"Accept-Encoding": "br"})
    assert counted == ["br"]
    assert "cache;desc=miss" in first.headers["server-timing"]
    # Again, as sent (a hot answer), in other spellings that pick br, and as HEAD: stored.
    for accept in ("br", "br", "gzip, deflate, br", "br;q=1, gzip;q=0.5"):
        again = pp.get("/style.css", {"Accept-Encoding": accept})
        assert again.body == first.body
        assert again.headers["etag"] == first.headers["etag"]
        assert "cache;desc=hit" in again.headers["server-timing"]
    assert pp.get("/style.css", {"Accept-Encoding": "br"}, method="HEAD").status == 200
    assert counted == ["br"]
    gzipped = pp.get("/style.css", {"Accept-Encoding": "gzip"})
    assert gzip.decompress(gzipped.body) == FILES["style.css"]
    pp.get("/style.css", {"Accept-Encoding": "gzip"})
    pp.get("/style.css", {"Accept-Encoding": "x-gzip"})
    assert counted == ["br", "gzip"]
    # The identity form was fetched once, and is still sent as it is.
    assert pp.get("/style.css").body == FILES["style.css"]
    assert counted == ["br", "gzip"]


def test_purge_drops_the_encoded_forms(serve: Any, files: Path, counted: list[str]) -> None:
    pp = serve(config(files, security={"allow_private_networks": True,
                                       "private_key": "purge_key"}))
    assert brotli.decompress(pp.get("/notes.txt", {"Accept-Encoding": "br"}).body) == FILES[
        "notes.txt"]
    changed = b"changed\n" * 400
    (files / "notes.txt").write_bytes(changed)
    conn = http.client.HTTPConnection("127.0.0.1", pp.port, timeout=30)
    try:
        auth = base64.b64encode(b"purge_key:").decode()
        conn.request("POST", "/v1/files/purge", json.dumps({"url": pp.url + "/notes.txt"}),
                     {"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
        assert conn.getresponse().status == 201
    finally:
        conn.close()
    again = pp.get("/notes.txt", {"Accept-Encoding": "br"})
    assert brotli.decompress(again.body) == changed
    assert counted == ["br", "br"]


def test_large_bodies_are_compressed_off_the_event_loop(pp: Pixelport, files: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    threads: list[str] = []
    real = compress.encode

    def encode(body: bytes, encoding: str, content_type: str) -> bytes:
        threads.append(threading.current_thread().name)
        return real(body, encoding, content_type)

    monkeypatch.setattr(compress, "encode", encode)
    big = SCRIPT * 40  # 2 MB
    (files / "big.js").write_bytes(big)
    response = pp.get("/big.js", {"Accept-Encoding": "br"})
    assert brotli.decompress(response.body) == big
    assert threads and all(name.startswith("pixelport-work") for name in threads), threads


def test_encoded_bodies_are_not_served_to_identity_clients_by_hot_answers(
        pp: Pixelport) -> None:
    for _ in range(3):  # made, then from memory, then a hot answer
        assert "content-encoding" in pp.get("/data.json", {"Accept-Encoding": "br"}).headers
    for _ in range(3):
        plain = pp.get("/data.json")
        assert "content-encoding" not in plain.headers
        assert plain.body == FILES["data.json"]


def test_what_is_compressible() -> None:
    jpeg = Entry(make_image(200, 200), {"content-type": "image/jpeg"}, '"a"', "", "a.jpg")
    text = Entry(SCRIPT, {"content-type": "text/javascript; charset=utf-8"}, '"b"', "", "a.js")
    assert not compress.compressible(jpeg)
    assert compress.compressible(text)
    assert not compress.compressible(Entry(b"x" * 100, dict(text.headers), '"c"', "", "b.js"))


def test_a_full_pool_sends_the_bytes_as_they_are(pp: Pixelport) -> None:
    pool = pp.app.pool
    capacity, pool.capacity = pool.capacity, 0  # every job refused (Busy) from now on
    try:
        response = pp.get("/app.js", {"Accept-Encoding": "br"})
        assert response.status == 200
        assert "content-encoding" not in response.headers and response.body == SCRIPT
    finally:
        pool.capacity = capacity
    later = pp.get("/app.js", {"Accept-Encoding": "br"})
    assert later.headers["content-encoding"] == "br"
    assert brotli.decompress(later.body) == SCRIPT


def test_web_origin_types_decide(serve: Any, origin: OriginServer) -> None:
    """A file without an extension is compressed by the type its origin declares."""
    origin.files["/styles"] = FILES["style.css"]
    origin.extra_headers["/styles"] = {"Content-Type": "text/css"}
    origin.files["/picture"] = make_image(300, 200)
    origin.extra_headers["/picture"] = {"Content-Type": "image/jpeg"}
    pp = serve(config(None, [web_origin("web", origin)]))
    styles = pp.get("/styles", {"Accept-Encoding": "gzip"})
    assert styles.status == 200, styles.ik_error
    assert styles.headers["content-encoding"] == "gzip"
    assert gzip.decompress(styles.body) == FILES["style.css"]
    for _ in range(2):
        picture = pp.get("/picture", {"Accept-Encoding": "gzip, br"})
        assert picture.status == 200 and "content-encoding" not in picture.headers
        assert picture.image().width == 300
    assert origin.paths().count("/styles") == 1 and origin.paths().count("/picture") == 1
