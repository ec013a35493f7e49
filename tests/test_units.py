"""Small pure pieces: path checks, HTTP helpers, format sniffing and choice, the SSRF guard."""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pixelport.cache.entry import CorruptEntry, Entry, body_digest
from pixelport.delivery.http import not_modified
from pixelport.errors import InvalidRequest
from pixelport.http_fields import http_date, parse_range
from pixelport.origins.http import parse_http_date
from pixelport.produce.mime import guess
from pixelport.security.network import blocked_reason
from pixelport.security.paths import check_file_path, resolve_under
from pixelport.threadnames import namer
from pixelport.transform.formats import accepts, choose, sniff
from tests.helpers import make_image


@pytest.mark.parametrize("path", ["../a", "a/../../b", "a/./b", "a\\b", "a\x00b", "..", "a/.."])
def test_check_file_path_refuses(path: str) -> None:
    with pytest.raises(InvalidRequest):
        check_file_path(path)


def test_resolve_under_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a")
    (tmp_path / "outside.txt").write_text("x")
    (root / "out").symlink_to(tmp_path / "outside.txt")
    assert resolve_under(root, "a.txt") == (root / "a.txt").resolve()
    assert resolve_under(root, "out") is None
    assert resolve_under(root, "") is None


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)), ("bytes=-10", (90, 99)),
    ("bytes=90-200", (90, 99)), ("bytes=100-", False), ("bytes=-0", False),
    ("bytes=5-2", None), ("bytes=0-1,5-6", None), ("items=0-1", None), (None, None),
])
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_not_modified() -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    assert not_modified({"if-none-match": '"a", "b"'}, '"b"', None)
    assert not_modified({"if-none-match": 'W/"b"'}, '"b"', None)
    assert not_modified({"if-none-match": "*"}, '"b"', None)
    assert not not_modified({"if-none-match": '"a"'}, '"b"', moment)
    ims = {"if-modified-since": "Tue, 01 Jan 2030 00:00:00 GMT"}
    assert not_modified(ims, None, moment)
    assert not not_modified({"if-modified-since": "garbage"}, None, moment)
    # If-None-Match takes precedence over If-Modified-Since.
    assert not not_modified({**ims, "if-none-match": '"x"'}, '"y"', moment)


@pytest.mark.parametrize(("fmt", "name"), [(".jpg", "jpg"), (".png", "png"), (".webp", "webp"),
                                           (".gif", "gif"), (".tif", "tiff"), (".avif", "avif")])
def test_sniff(fmt: str, name: str) -> None:
    assert sniff(make_image(8, 8, fmt)[:1024]) == name


def test_sniff_svg_and_non_images() -> None:
    assert sniff(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>') == "svg"
    assert sniff(b"<svg></svg>") == "svg"
    assert sniff(b"console.log(1)") is None
    assert sniff(b"<html><body></body></html>") is None
    assert sniff(b"") is None


def test_accepts_and_choose() -> None:
    assert accepts("image/webp,*/*", "image/webp")
    assert not accepts("image/webp;q=0", "image/webp")
    assert not accepts("*/*", "image/webp")
    assert choose(None, "jpg", False, "image/webp", True, False).format == "webp"
    assert choose(None, "png", True, "*/*", True, False).format == "png"
    assert choose(None, "png", False, "*/*", True, False).format == "jpg"
    assert choose(None, "png", False, "*/*", False, False).format == "png"
    assert choose("orig", "webp", False, "*/*", True, False).format == "webp"
    assert choose(None, "jpg", False, "image/avif,image/webp", True, True).format == "avif"
    assert choose(None, "jpg", False, "image/avif,image/webp", True, False).format == "webp"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "::1", "::", "fc00::1", "fe80::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "2002:7f00:0001::", "64:ff9b::a9fe:a9fe", "::127.0.0.1", "255.255.255.255",
])
def test_guard_refuses_private_addresses(address: str) -> None:
    assert blocked_reason(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946",
                                     "::ffff:93.184.216.34", "8.8.8.8"])
def test_guard_allows_public_addresses(address: str) -> None:
    assert blocked_reason(address) is None


def test_default_worker_threads_are_one_per_usable_core_plus_one() -> None:
    import os

    from pixelport.transform.pool import WorkPool, default_threads

    assert default_threads() == len(os.sched_getaffinity(0)) + 1
    pool = WorkPool(0, 4)
    try:
        assert pool.threads == default_threads() and pool.capacity == pool.threads + 4
    finally:
        pool.shutdown()
    explicit = WorkPool(3, 0)
    assert explicit.threads == 3
    explicit.shutdown()


def test_every_origin_type_resolves_and_cloud_sdks_load_only_when_used() -> None:
    import subprocess
    import sys

    from pixelport.origins.registry import BUILDERS, builder

    assert all(callable(builder(name)) for name in BUILDERS)
    assert builder("ftp") is None
    probe = ("import sys, pixelport.app, pixelport.cli; "
             "print(sorted(m for m in ('botocore', 'aiobotocore', 'google.auth') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_cache_entry_round_trip_and_damage() -> None:
    entry = Entry(b"body bytes" * 100, {"content-type": "image/jpeg"}, '"e"', "ep", "/a.jpg")
    data = entry.head() + entry.body  # the on-disk form, as the disk tier writes it
    again = Entry.decode(data)
    assert (again.body, again.headers, again.etag, again.path) == (
        entry.body, entry.headers, entry.etag, entry.path)
    damaged = bytearray(data)
    damaged[-3] ^= 0x01  # one bit of the body
    with pytest.raises(CorruptEntry, match="checksum"):
        Entry.decode(bytes(damaged))
    with pytest.raises(CorruptEntry, match="truncated"):
        Entry.decode(data[:-1])


def test_cache_entry_of_the_first_format_still_reads() -> None:
    body = b"x" * 1000
    header = json.dumps({"headers": {}, "etag": '"e"', "endpoint": "", "path": "/a",
                         "created": 1.0, "download_ms": 0, "transform_ms": 0,
                         "length": len(body), "checksum": body_digest(body)}).encode()
    data = b"PXPC1\n" + struct.pack(">I", len(header)) + header + body
    assert Entry.decode(data).body == body
    with pytest.raises(CorruptEntry):
        Entry.decode(data[:-1] + b"y")


@pytest.mark.parametrize(("path", "expected"), [
    ("/a/b.jpg", "image/jpeg"), ("/a/B.JPG", "image/jpeg"), ("/v1.2/file", None),
    ("/x.tar.gz", "application/x-tar"), ("/s.css", "text/css"), ("/a.b.webp", "image/webp"),
    ("/noext", None), ("/a/b.JSON", "application/json"), ("/f.mp4", "video/mp4"),
])
def test_mime_guess_by_suffix(path: str, expected: str | None) -> None:
    assert guess(path) == expected


def test_http_dates_round_trip() -> None:
    moment = datetime(2026, 11, 22, 18, 5, 7, tzinfo=UTC)
    assert http_date(moment) == "Sun, 22 Nov 2026 18:05:07 GMT"
    assert parse_http_date(http_date(moment)) == moment
    assert parse_http_date("not a date") is None and parse_http_date(None) is None


@pytest.mark.skipif(sys.platform != "linux", reason="native thread names are read from /proc")
def test_worker_threads_carry_native_names() -> None:
    def comm() -> str:
        return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()

    with ThreadPoolExecutor(2, initializer=namer("pp-test")) as executor:
        names = {executor.submit(comm).result() for _ in range(8)}
    assert names and names <= {"pp-test0", "pp-test1"}


def test_a_plain_thumbnail_decodes_straight_into_the_encoder(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pyvips

    from pixelport.config import ImagesConfig, LimitsConfig
    from pixelport.transform import engine, registry

    copies: list[int] = []
    real = pyvips.Image.copy_memory

    def counted(self: pyvips.Image) -> pyvips.Image:
        copies.append(self.width)
        return real(self)

    monkeypatch.setattr(pyvips.Image, "copy_memory", counted)
    data = make_image(1200, 900, ".jpg")
    options = engine.RenderOptions("", ImagesConfig(), LimitsConfig())
    plain = engine.render(data, registry.parse("w-300,f-jpg"), options)
    assert (plain.width, plain.height) == (300, 225) and copies == []  # lazy: no copy
    cropped = engine.render(data, registry.parse("w-300,h-100,f-jpg"), options)
    assert (cropped.width, cropped.height) == (300, 100) and copies  # read twice: copied


def test_libvips_jpeg_shrink_on_load_at_exact_and_inexact_sizes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pyvips

    from pixelport.transform import jpeg_decode
    from pixelport.transform.load import Probe, _jpeg_shrunk

    # For the JPEGs that transform/jpeg_decode.py leaves to libvips' loader.
    monkeypatch.setattr(jpeg_decode, "shrunk", lambda *args: None)

    accesses: list[str] = []
    real = pyvips.Image.jpegload_buffer

    def recorded(data: bytes, **options: object) -> pyvips.Image:
        accesses.append(str(options["access"]))
        return real(data, **options)

    monkeypatch.setattr(pyvips.Image, "jpegload_buffer", recorded)

    def size(image: pyvips.Image) -> tuple[int, int]:
        out = pyvips.Image.new_from_buffer(image.jpegsave_buffer(), "")  # read once only
        return out.width, out.height

    exact = make_image(1200, 900, ".jpg")  # 1/4 is 300x225 exactly: read once, uncached
    image = _jpeg_shrunk(exact, Probe("jpg", 1200, 900, 1), 4, 300, 225, "none", True)
    assert size(image) == (300, 225) and accesses == ["sequential-unbuffered"]
    odd = make_image(1207, 907, ".jpg")  # 1/4 is 301x226: resized, which reads lines again
    image = _jpeg_shrunk(odd, Probe("jpg", 1207, 907, 1), 4, 300, 225, "none", True)
    assert size(image) == (300, 225) and accesses[1:] == ["sequential"]
    # A header that misled the forecast: decoded again with the line cache, not an error.
    image = _jpeg_shrunk(odd, Probe("jpg", 1200, 900, 1), 4, 300, 225, "none", True)
    assert size(image) == (300, 225)
    assert accesses[2:] == ["sequential-unbuffered", "sequential"]


def test_webp_effort_setting_reaches_the_encoder() -> None:
    import pyvips

    from pixelport.config import ImagesConfig, LimitsConfig
    from pixelport.transform import engine, registry

    data = make_image(1200, 900, ".jpg")

    def webp(effort: int | None) -> bytes:
        options = engine.RenderOptions("", ImagesConfig(webp_effort=effort), LimitsConfig())
        return engine.render(data, registry.parse("w-300,f-webp"), options).data

    auto, fastest, four = webp(None), webp(0), webp(4)
    assert auto == four  # a thumbnail: effort 4 by default
    assert fastest != auto and pyvips.Image.new_from_buffer(fastest, "").width == 300


def test_serving_sets_a_short_gil_switch_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pixelport import server

    served: list[object] = []

    class Server:
        def __init__(self, config: object, app: object) -> None:
            self.config = config

        def run(self, sockets: object = None) -> None:
            served.append(sys.getswitchinterval())

    monkeypatch.setattr(server, "uvicorn_config", lambda *args, **options: "config")
    monkeypatch.setattr(server, "Server", Server)
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # Python's default
        server.run(object(), "127.0.0.1", 0, "warning", False)
    finally:
        sys.setswitchinterval(before)
    assert served == [pytest.approx(server.GIL_SWITCH_INTERVAL)]
    assert server.GIL_SWITCH_INTERVAL < 0.005


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc")
def test_importing_the_server_starts_no_threads() -> None:
    import subprocess

    code = ("import os, pixelport.app, pixelport.transform.jpeg_decode; "
            "print(len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "1"  # numpy's OpenBLAS thread pool would be one more per core


def test_lru_keeps_the_most_recently_used() -> None:
    from pixelport.lru import LRU

    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)  # b goes
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3 and len(lru) == 2
    assert lru.pop("a") == 1 and lru.pop("a") is None and lru.get("zz") is None
