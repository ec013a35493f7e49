"""Hot answers: repeated plain GETs written by the protocol, and what must bypass them."""

from __future__ import annotations

import base64
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pixelport.app import App
from pixelport.cache.entry import Entry
from pixelport.cache.memory import MemoryTier
from pixelport.config import from_dict
from pixelport.delivery.hot import HotAnswers, request_key
from pixelport.security.signing import sign_url
from pixelport.server import uvicorn_config
from tests.helpers import OriginServer, make_image, server_timing
from tests.test_cache import KEY, config, fetches, post

GET = b"GET"
TARGET = b"/tr:w-10/a.jpg"


def entry(body: bytes = b"x" * 100, created: float | None = None) -> Entry:
    return Entry(body, {"content-type": "image/jpeg"}, '"e"', "", "/a.jpg",
                 created=time.time() if created is None else created)


def filed(ttl: float = 60, expiry: int | None = None,
          made: Entry | None = None) -> tuple[HotAnswers, MemoryTier, Entry]:
    memory = MemoryTier(1 << 20)
    hot = HotAnswers(memory, ttl)
    made = made or entry()
    memory.put("k", made)
    key = request_key(TARGET, [(b"host", b"h")])
    assert key is not None
    hot.remember(key, {"content-type": "image/jpeg", "content-length": "100"}, made, "k", expiry)
    return hot, memory, made


def test_answer_is_the_stored_headers_and_the_entry_body() -> None:
    hot, _, made = filed()
    answer = hot.lookup(GET, TARGET, [(b"host", b"h")])
    assert answer == (b"content-type: image/jpeg\r\ncontent-length: 100\r\n", made.body)


@pytest.mark.parametrize("headers", [
    [(b"host", b"other")],
    [(b"host", b"h"), (b"accept", b"image/webp")],
    [(b"host", b"h"), (b"sec-ch-dpr", b"2")],
    [(b"host", b"h"), (b"width", b"400")],
])
def test_anything_that_can_change_the_answer_is_in_the_key(
        headers: list[tuple[bytes, bytes]]) -> None:
    hot, _, _ = filed()
    assert hot.lookup(GET, TARGET, headers) is None


@pytest.mark.parametrize("name", [b"range", b"if-none-match", b"if-modified-since",
                                  b"if-range", b"content-length", b"transfer-encoding"])
def test_conditional_ranged_or_bodied_requests_take_the_ordinary_path(name: bytes) -> None:
    hot, _, _ = filed()
    assert hot.lookup(GET, TARGET, [(b"host", b"h"), (name, b"1")]) is None
    assert hot.lookup(GET, TARGET, [(b"host", b"h"), (b"user-agent", b"x")]) is not None


def test_only_get_and_the_exact_target() -> None:
    hot, _, _ = filed()
    assert hot.lookup(b"HEAD", TARGET, [(b"host", b"h")]) is None
    assert hot.lookup(GET, TARGET + b"?x=1", [(b"host", b"h")]) is None


def test_answer_lapses_with_its_cache_entry() -> None:
    hot, memory, _ = filed()
    memory.remove("k")
    assert hot.lookup(GET, TARGET, [(b"host", b"h")]) is None
    hot, memory, _ = filed()
    memory.put("k", entry(b"y" * 100))  # replaced (a purge and a new render)
    assert hot.lookup(GET, TARGET, [(b"host", b"h")]) is None


def test_answer_lapses_with_the_cache_ttl_and_the_signature_expiry() -> None:
    hot, _, _ = filed(ttl=60, made=entry(created=time.time() - 61))
    assert hot.lookup(GET, TARGET, [(b"host", b"h")]) is None
    hot, _, _ = filed(expiry=int(time.time()) - 1)
    assert hot.lookup(GET, TARGET, [(b"host", b"h")]) is None
    hot, _, _ = filed(expiry=int(time.time()) + 60)
    assert hot.lookup(GET, TARGET, [(b"host", b"h")]) is not None


def test_an_entry_not_in_memory_is_not_filed() -> None:
    memory = MemoryTier(1 << 20)
    hot = HotAnswers(memory, 60)
    key = request_key(TARGET, [])
    assert key is not None
    hot.remember(key, {}, entry(), "k", None)
    assert hot.answers == {}


def test_header_values_with_control_characters_are_not_filed() -> None:
    memory = MemoryTier(1 << 20)
    hot = HotAnswers(memory, 60)
    made = entry()
    memory.put("k", made)
    key = request_key(TARGET, [])
    assert key is not None
    hot.remember(key, {"link": "<a\r\nx: y>"}, made, "k", None)
    assert hot.answers == {}


def test_the_number_of_answers_is_bounded() -> None:
    memory = MemoryTier(1 << 20)
    hot = HotAnswers(memory, 60, limit=3)
    made = entry()
    memory.put("k", made)
    for n in range(5):
        hot.remember((b"/%d" % n,), {}, made, "k", None)
    assert list(hot.answers) == [(b"/2",), (b"/3",), (b"/4",)]


# Through the server.


def raw_exchange(port: int, data: bytes, until: int) -> bytes:
    """Write `data` in one go and read until `until` responses have arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while not _complete(received, until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _complete(data: bytes, count: int) -> bool:
    rest = data
    for _ in range(count):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


@pytest.mark.integration
def test_repeated_get_is_answered_hot_with_the_same_bytes(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    first = pp.get("/tr:w-100/a.jpg")
    assert server_timing(first.headers["server-timing"])["cache"] == "miss"
    # A fresh result goes to disk; asked again, it is promoted to memory (cache/results.py)
    # and its answer filed, once the response is sent (which the client may see first).
    time.sleep(0.2)
    assert not pp.app.hot.answers
    again = pp.get("/tr:w-100/a.jpg")
    assert server_timing(again.headers["server-timing"])["cache"] == "hit"
    deadline = time.monotonic() + 5
    while not pp.app.hot.answers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pp.app.hot.answers
    ordinary = pp.app.timed_delivery

    async def unreachable(*args: Any) -> None:
        raise AssertionError("a hot answer went through ASGI")

    pp.app.timed_delivery = unreachable
    second, third = pp.get("/tr:w-100/a.jpg"), pp.get("/tr:w-100/a.jpg")
    pp.app.timed_delivery = ordinary
    for later in (second, third):
        assert later.status == 200 and later.body == first.body
        assert server_timing(later.headers["server-timing"])["cache"] == "hit"
        for name in ("content-type", "etag", "vary", "cache-control", "last-modified",
                     "content-length"):
            assert later.headers[name] == first.headers[name]
        assert "date" in later.headers and len(later.headers["x-request-id"]) == 16
    assert second.headers["x-request-id"] != third.headers["x-request-id"]
    # What bypasses the hot answers still gets the right answer.
    assert pp.get("/tr:w-100/a.jpg", {"If-None-Match": first.headers["etag"]}).status == 304
    origin.files["/s.css"] = b"body { color: red; }\n"
    assert pp.get("/s.css").body == pp.get("/s.css").body == origin.files["/s.css"]
    ranged = pp.get("/s.css", {"Range": "bytes=0-3"})
    assert ranged.status == 206 and ranged.body == b"body"
    head = pp.get("/tr:w-100/a.jpg", method="HEAD")
    assert head.status == 200 and head.body == b""
    webp = pp.get("/tr:w-100/a.jpg", {"Accept": "image/webp"})
    assert webp.headers["content-type"] == "image/webp"
    assert pp.get("/tr:w-100/a.jpg").headers["content-type"] == "image/jpeg"
    # The WebP variant fetched again: an original asked once is not kept (sources.py).
    assert fetches(origin, "/a.jpg") == 2


@pytest.mark.integration
def test_purge_ends_hot_answers(serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    before = pp.get("/tr:w-100/a.jpg")
    assert pp.get("/tr:w-100/a.jpg").body == before.body
    origin.files["/a.jpg"] = make_image(400, 300, colour=(0, 0, 255))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),
            "Content-Type": "application/json"}
    assert post(pp, "/v1/files/purge", {"url": f"{pp.url}/a.jpg"}, auth)[0] == 201
    after = pp.get("/tr:w-100/a.jpg")
    assert server_timing(after.headers["server-timing"])["cache"] == "miss"
    assert after.body != before.body


@pytest.mark.integration
def test_expired_signed_url_is_refused_after_hot_answers(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    signed = sign_url(f"{pp.url}/tr:w-100/a.jpg", pp.url + "/", KEY, int(time.time()) + 2)
    target = signed[len(pp.url):]
    assert pp.get(target).status == 200
    assert pp.get(target).status == 200
    time.sleep(max(0.0, int(target.split("ik-t=")[1].split("&")[0]) - time.time()) + 0.1)
    expired = pp.get(target)
    assert expired.status == 401 and "expired" in expired.ik_error


@pytest.mark.integration
def test_pipelined_requests_are_answered_in_order(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    origin.files["/b.jpg"] = make_image(300, 200)
    pp = serve(config(origin, tmp_path / "cache"))
    hot = pp.get("/tr:w-100/a.jpg")
    request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    # hot, cold (runs as a task), hot again behind it, then a 404: order must hold.
    data = b"".join(request % t for t in (b"/tr:w-100/a.jpg", b"/tr:w-50/b.jpg",
                                          b"/tr:w-100/a.jpg", b"/missing.jpg"))
    received = raw_exchange(pp.port, data, 4)
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", received)
    assert statuses == [b"200", b"200", b"200", b"404"]
    assert received.count(hot.body) == 2
    assert received.count(b"cache;desc=miss") == 1


@pytest.mark.integration
def test_http_10_and_connection_close_are_answered_and_closed(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    body = pp.get("/tr:w-100/a.jpg").body
    for request in (b"GET /tr:w-100/a.jpg HTTP/1.0\r\n\r\n",
                    b"GET /tr:w-100/a.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", pp.port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):  # ends only when the server closes
                received += chunk
        assert received.endswith(body)


def test_answers_do_not_keep_evicted_entries_alive() -> None:
    import gc
    import weakref

    memory = MemoryTier(1 << 20)
    hot = HotAnswers(memory, 60)
    made = entry(b"z" * 1000)
    alive = weakref.ref(made)
    memory.put("k", made)
    key = request_key(TARGET, [])
    assert key is not None
    hot.remember(key, {}, made, "k", None)
    del made
    memory.remove("k")  # evicted or purged
    gc.collect()
    assert alive() is None
    assert hot.lookup(GET, TARGET, []) is None and not hot.answers


def test_with_an_access_log_no_answers_are_filed(tmp_path: Path) -> None:
    logged = App(from_dict({"library": {"dir": ""}, "cache": {"dir": str(tmp_path / "a")}}),
                 hot_answers=False)  # as `pixelport serve --access-log` makes it
    assert logged.hot is None and logged.delivery.hot is None
    assert not hasattr(uvicorn_config(logged, "127.0.0.1", 0, access_log=True).http,
                       "_write_hot")  # guarded, but no hot answers
    quiet = App(from_dict({"library": {"dir": ""}, "cache": {"dir": str(tmp_path / "b")}}))
    assert quiet.delivery.hot is quiet.hot is not None
    assert hasattr(uvicorn_config(quiet, "127.0.0.1", 0).http, "_write_hot")
    # An access log asked of an App that files answers still logs every request.
    logging = uvicorn_config(quiet, "127.0.0.1", 0, access_log=True).http
    assert issubclass(logging, HttpToolsProtocol) and not hasattr(logging, "_write_hot")
