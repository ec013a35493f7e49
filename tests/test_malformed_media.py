"""Bad input: image bombs, broken files, hostile SVGs, lying origins, and a URL fuzzer."""

from __future__ import annotations

import asyncio
import http.client
import resource
import socket
import socketserver
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelport.app import App
from pixelport.config import from_dict
from pixelport.errors import LimitExceeded, UnsupportedFormat
from pixelport.security.headers import DOCUMENT_CSP
from pixelport.security.svg import safe_css, sanitize_svg
from tests.helpers import Response, decode, free_port, make_image
from tests.test_delivery import config, web_origin

# --- the corpus, generated -------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header declares `width` x `height` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG with its frame header rewritten to claim `width` x `height`."""
    data = bytearray(make_image(16, 16))
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at != -1:
            data[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF marker")


def bad_crc_png() -> bytes:
    data = bytearray(make_image(50, 40, ".png"))
    data[29] ^= 0xFF  # the last byte of the IHDR CRC
    return bytes(data)


def truncated_photo() -> bytes:
    """Half of a 640x480 noisy JPEG: its header is whole, its scans end early."""
    noise = pyvips.Image.gaussnoise(640, 480, mean=128, sigma=40)
    data = noise.bandjoin([noise, noise]).cast("uchar").copy(interpretation="srgb")
    encoded = bytes(data.jpegsave_buffer(Q=90))
    return encoded[: len(encoded) // 2]


def damaged_tiff() -> bytes:
    """A JPEG-compressed TIFF whose header is sound and whose strip data is overwritten."""
    image = pyvips.Image.xyz(256, 256)[0].cast("uchar").bandjoin([128, 60])
    data = bytearray(image.copy(interpretation="srgb").write_to_buffer(".tif",
                                                                      compression="jpeg"))
    for at in range(len(data) // 4, len(data) // 2):
        data[at] = 0xFF if at % 2 else 0xD9
    return bytes(data)


def many_frames_gif(frames: int) -> bytes:
    """A 1x1 animated GIF with `frames` frames (about 23 bytes each)."""
    head = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"
             + b"\x02\x02\x44\x01\x00")
    return head + loop + frame * frames + b"\x3b"


HOSTILE_SVG = b"""<?xml version="1.0"?>
<?xml-stylesheet href="https://evil.test/x.css"?>
<!DOCTYPE svg [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
  <!ENTITY company "Example Co">
]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:h="http://www.w3.org/1999/xhtml" width="10" height="10" onload="alert(1)">
  <script>alert(2)</script>
  <svg:script xmlns:svg="http://www.w3.org/2000/svg">alert(3)</svg:script>
  <h:script>alert(4)</h:script>
  <text>&xxe;&company;</text>
  <foreignObject><h:iframe src="javascript:alert(5)"/></foreignObject>
  <a xlink:href="javascript:alert(6)"><rect width="5" height="5" ONCLICK="alert(7)"/></a>
  <a href=" JaVaScRiPt:alert(8)"><circle r="2"/></a>
  <use href="https://evil.test/sprite.svg#x"/>
  <image href="data:image/png;base64,iVBORw0KGgo="/>
  <rect fill="url(#grad)" style="fill: url(https://evil.test/x.png)" width="1" height="1"/>
  <style>@import url(https://evil.test/y.css); rect { fill: red }</style>
  <style>rect &gt; circle { fill: url(#g) }</style>
  <set attributeName="href" to="javascript:alert(9)"/>
  <animate attributeName="onclick" values="alert(10)"/>
  <animate attributeName="opacity" values="0;1" dur="1s"/>
  <linearGradient id="grad"><stop offset="0" stop-color="red"/></linearGradient>
  <!-- a comment -->
</svg>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE svg [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&lol3;</text></svg>
"""


def corpus(jpeg: bytes) -> dict[str, bytes]:
    """name -> bytes of each malformed or hostile file."""
    return {
        "truncated-header.jpg": jpeg[:100],
        "truncated-half.jpg": jpeg[: len(jpeg) // 2],
        "truncated-end.jpg": jpeg[:-200],
        "truncated-photo.jpg": truncated_photo(),
        "bad-crc.png": bad_crc_png(),
        "damaged-strip.tif": damaged_tiff(),
        "zero.jpg": b"",
        "zero.png": b"",
        "bomb.png": png_bomb(50_000, 50_000),
        "bomb.jpg": jpeg_claiming(60_000, 60_000),
        "frames.gif": many_frames_gif(5000),
        "hostile.svg": HOSTILE_SVG,
        "laughs.svg": BILLION_LAUGHS,
        "not-svg.svg": b"<html><script>alert(1)</script></html>",
        "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\xff" * 500,
    }


# --- a minimal ASGI caller (no sockets: fast enough for the fuzzer) --------------------------

class AsgiClient:
    """Calls the pixelport ASGI app directly on its own event loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def get(self, target: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> Response:
        """Send `target` (already percent-encoded ASCII) as the raw request target."""
        return self.loop.run_until_complete(self._call(target, headers or {}, method))

    async def _call(self, target: str, headers: dict[str, str], method: str) -> Response:
        raw_path, _, query = target.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "raw_path": raw_path.encode("latin-1"),
            "path": unquote(raw_path, encoding="latin-1"),
            "query_string": query.encode("latin-1"), "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in {"host": "pixelport.test", **headers}.items()],
        }
        status = 0
        response_headers: dict[str, str] = {}
        body = bytearray()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers.update({k.decode("latin-1"): v.decode("latin-1")
                                         for k, v in message["headers"]})
            else:
                body.extend(message.get("body", b""))

        await self.app(scope, receive, send)
        return Response(status, response_headers, bytes(body))

    def close(self) -> None:
        """Stop the app's workers and the loop."""
        self.loop.run_until_complete(self.app.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def media_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("malformed") / "library"
    (root / "sub").mkdir(parents=True)
    (root.parent / "secret.txt").write_text("top secret")
    jpeg = make_image(64, 48)
    (root / "photo.jpg").write_bytes(jpeg)
    (root / "alpha.png").write_bytes(make_image(40, 40, ".png", alpha=True))
    (root / "sub" / "ü b.webp").write_bytes(make_image(30, 20, ".webp"))
    (root / "app.js").write_bytes(b"console.log(1)\n")
    (root / "icon.svg").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="8" '
                                    b'height="8"><rect width="8" height="8"/></svg>')
    for name, data in corpus(jpeg).items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def client(media_library: Path) -> Iterator[AsgiClient]:
    app = App(from_dict({
        "library": {"dir": str(media_library)},
        "cache": {"dir": str(media_library.parent / "cache")},
        "security": {"private_key": "fuzz-key"},
        "limits": {"max_output_pixels": 2_000_000, "max_input_bytes": "2MB", "max_frames": 100},
        "server": {"processing_threads": 2},
        "endpoint": [{"identifier": "", "origins": []},
                     {"identifier": "media", "origins": [], "domains": ["cdn.example.test"]},
                     {"identifier": "locked", "origins": [], "require_signed_urls": True}],
    }))
    asgi = AsgiClient(app)
    yield asgi
    asgi.close()


# --- the corpus, served -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "code"), [
    ("truncated-header.jpg", "EFORMAT"), ("truncated-half.jpg", "EFORMAT"),
    ("truncated-photo.jpg", "EFORMAT"), ("garbage.png", "EFORMAT"), ("bomb.png", "ELIMIT"),
    ("bomb.jpg", "ELIMIT"),
    ("laughs.svg", "EFORMAT"), ("not-svg.svg", "EFORMAT"),
])
@pytest.mark.parametrize("tr", ["", "tr:w-20/", "tr:w-20,h-20,c-force,f-png/",
                                "tr:w-80,e-grayscale,r-10,f-jpg/", "tr:w-20,h-20,cm-pad_resize/"])
def test_malformed_files_get_a_clean_4xx(client: AsgiClient, name: str, code: str,
                                        tr: str) -> None:
    if name == "laughs.svg" and ("f-png" in tr or "f-jpg" in tr):
        pytest.skip("rasterised by librsvg, which expands small entity trees itself")
    response = client.get(f"/{tr}{name}")
    assert response.status == 400, (name, response.status, response.ik_error)
    assert response.ik_error.startswith(f"{code} - "), response.ik_error
    assert response.headers["cache-control"].startswith("public, max-age=")


@pytest.mark.parametrize("name", ["truncated-end.jpg", "bad-crc.png", "damaged-strip.tif"])
def test_damage_libvips_tolerates_is_served_or_refused_cleanly(client: AsgiClient,
                                                               name: str) -> None:
    # libvips decodes these leniently (missing scan data turns grey, a PNG's CRC is not
    # checked, a TIFF's JPEG strip is read as far as it goes): either a valid image or a
    # clean 4xx is acceptable, never a 5xx, whichever operation first pulls the pixels.
    for target in (f"/{name}", f"/tr:w-10/{name}", f"/tr:w-80,e-grayscale,r-10,f-jpg/{name}",
                   f"/tr:f-png/{name}", f"/tr:e-contrast,t-true/{name}"):
        response = client.get(target)
        assert response.status in (200, 400), (target, response.ik_error)
        if response.status == 200:
            assert decode(response.body).width > 0


def test_zero_byte_files(client: AsgiClient) -> None:
    for name in ("zero.jpg", "zero.png"):
        refused = client.get(f"/tr:w-10/{name}")
        assert refused.status == 400 and refused.ik_error.startswith("EFORMAT - ")
        # Untransformed, an empty file is not an image and passes through as it is: empty.
        served = client.get(f"/{name}")
        assert served.status == 200 and served.body == b""
        assert served.headers["x-content-type-options"] == "nosniff"


def test_huge_declared_dimensions_are_refused_before_decoding(client: AsgiClient) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in ("bomb.png", "bomb.jpg"):
        began = time.perf_counter()
        response = client.get(f"/tr:w-100/{name}")
        elapsed = time.perf_counter() - began
        assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
        assert "0000x" in response.ik_error, response.ik_error  # the declared size, named
        assert elapsed < 0.5, elapsed
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024  # 50000x50000 RGB would be 7.5 GB


def test_thousands_of_frames_are_elimit(client: AsgiClient) -> None:
    for target in ("/frames.gif", "/tr:w-10/frames.gif", "/tr:f-gif/frames.gif"):
        began = time.perf_counter()
        response = client.get(target)
        assert response.status == 400, (target, response.ik_error)
        assert response.ik_error.startswith("ELIMIT - ") and "5000 frames" in response.ik_error
        assert time.perf_counter() - began < 1


def test_hostile_svg_is_served_sanitised(client: AsgiClient) -> None:
    for target in ("/hostile.svg", "/tr:w-10/hostile.svg", "/hostile.svg?tr=orig-true"):
        response = client.get(target)
        assert response.status == 200, (target, response.ik_error)
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["content-security-policy"] == DOCUMENT_CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        check_clean(response.body)
    assert client.get("/icon.svg").body.count(b"<rect") == 1


def test_rasterised_svgs_never_read_local_files(client: AsgiClient, media_library: Path,
                                                tmp_path: Path) -> None:
    colour = tmp_path / "colour.txt"
    colour.write_text("black")
    # If librsvg expanded the external entity, the rectangle would turn black.
    (media_library / "xxe.svg").write_text(
        f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY c SYSTEM "file://{colour}">]>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><style>.a {{ fill: &c; '
        '}}</style><rect class="a" width="20" height="10" fill="white"/></svg>')
    # ...or the image, if librsvg read a local file.
    (tmp_path / "black.png").write_bytes(make_image(20, 10, ".png", colour=(0, 0, 0)))
    (media_library / "local-image.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" '
        f'height="10" fill="white"/><image href="file://{tmp_path}/black.png" width="20" '
        'height="10"/></svg>')
    for target in ("/tr:f-png/xxe.svg", "/tr:f-png/local-image.svg", "/tr:f-png/hostile.svg",
                   "/tr:w-5,f-png/laughs.svg"):
        response = client.get(target)
        assert response.status in (200, 400), (target, response.ik_error)
        if response.status == 200 and "hostile" not in target and "laughs" not in target:
            assert decode(response.body).getpoint(5, 5)[:3] == [255.0, 255.0, 255.0], target


def check_clean(svg: bytes) -> None:
    lowered = svg.lower()
    for bad in (b"script", b"alert", b"javascript", b"evil.test", b"foreignobject", b"onload",
                b"onclick", b"iframe", b"root:", b"<!doctype", b"<!entity", b"xml-stylesheet",
                b"@import", b"xhtml"):
        assert bad not in lowered, bad
    root = ElementTree.fromstring(svg)  # well-formed, and still an SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


# --- the sanitiser, directly ------------------------------------------------------------------

def test_sanitiser_keeps_the_drawing() -> None:
    clean = sanitize_svg(HOSTILE_SVG)
    check_clean(clean)
    text = clean.decode()
    assert 'fill="url(#grad)"' in text and "rect &gt; circle { fill: url(#g) }" in text
    assert 'href="data:image/png;base64,iVBORw0KGgo="' in text
    assert "Example Co" in text  # a plain internal entity is expanded
    assert 'attributeName="opacity"' in text and "<linearGradient" in text
    assert "<use></use>" in text  # its href pointed outside
    assert sanitize_svg(clean) == clean  # idempotent


def test_sanitiser_refusals() -> None:
    for data in (b"", b"not xml", b"<svg><unclosed></svg>", b"<html/>", BILLION_LAUGHS,
                 b'<!DOCTYPE svg [<!ENTITY % p "x">]><svg/>',
                 b'<svg xmlns="http://www.w3.org/1999/xhtml"/>', b"<svg>&undefined;</svg>"):
        with pytest.raises(UnsupportedFormat):
            sanitize_svg(data)


def test_sanitiser_caps_expansion() -> None:
    value = "x" * 1000
    refs = "&e;" * 5000  # 15 KB of input expanding to 5 MB
    data = (f'<!DOCTYPE svg [<!ENTITY e "{value}">]><svg xmlns="http://www.w3.org/2000/svg">'
            f"<text>{refs}</text></svg>").encode()
    with pytest.raises(LimitExceeded):
        sanitize_svg(data)


def test_sanitiser_size_cap() -> None:
    with pytest.raises(LimitExceeded):
        sanitize_svg(b'<svg xmlns="http://www.w3.org/2000/svg">' + b" " * 5_000_000 + b"</svg>")


def test_sanitiser_handles_namespaces_and_encodings() -> None:
    prefixed = (b'<s:svg xmlns:s="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/'
                b'xlink" xmlns:i="http://www.inkscape.org/namespaces/inkscape"><i:x/><s:g '
                b'i:label="L" x:href="#a" x:title="t"><s:rect/></s:g></s:svg>')
    clean = sanitize_svg(prefixed).decode()
    assert "inkscape" not in clean and "<s:rect></s:rect>" in clean and 'x:href="#a"' in clean
    utf16 = '<svg xmlns="http://www.w3.org/2000/svg"><text>ünï</text></svg>'.encode("utf-16")
    assert "ünï" in sanitize_svg(utf16).decode("utf-8")
    newline = b'<svg xmlns="http://www.w3.org/2000/svg"><path d="M0&#10;0" title="a&quot;b"/></svg>'
    out = sanitize_svg(newline)
    assert b'd="M0&#10;0"' in out and b'title="a&quot;b"' in out


@pytest.mark.parametrize(("css", "safe"), [
    ("fill: red", True), ("fill: url(#a)", True), ("fill: url( '#a' )", True),
    ("background: url(data:image/png;base64,AA==)", True), ("fill: url(https://x)", False),
    ("fill: URL(//x)", False), ("@import 'x.css'", False), ("fill: \\75 rl(x)", False),
    ("x: expression(alert(1))", False), ("b: url(java\nscript:x)", False),
])
def test_css_check(css: str, safe: bool) -> None:
    assert safe_css(css) is safe


# --- lying and endless origins ----------------------------------------------------------------

class RawOrigin:
    """An origin that writes raw HTTP: wrong Content-Length, endless chunked bodies."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.sent: Counter[str] = Counter()
        origin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                stream = self.request.makefile("rb")
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    path = line.split(b" ")[1].decode()
                    while stream.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    try:
                        if not origin.answer(self.request, path):
                            return
                    except OSError:
                        return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def write(self, sock: socket.socket, path: str, data: bytes) -> None:
        sock.sendall(data)
        self.sent[path] += len(data)

    def answer(self, sock: socket.socket, path: str) -> bool:
        """Answer one request; False closes the connection."""
        image = self.image
        if path == "/declared-huge.jpg":
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n"
                       + image[:4096])
            time.sleep(2)
            return False
        if path == "/declared-huge-zeros.jpg":  # not an image at all: nothing to sniff
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
            for _ in range(2000):  # up to 128 MB, as long as the reader takes it
                self.write(sock, path, b"\0" * 65536)
            return False
        if path == "/chunked-zeros.jpg":
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while self.sent[path] < 50_000_000:
                self.write(sock, path, b"%x\r\n%s\r\n" % (65536, b"\0" * 65536))
            return False
        if path == "/silent.jpg":  # takes the request and never answers
            time.sleep(12)
            return False
        if path == "/trickle.jpg":  # 200 bytes a second, for ever
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                       % len(image))
            for at in range(0, len(image), 200):
                self.write(sock, path, image[at:at + 200])
                time.sleep(1)
            return False
        if path == "/chunked-endless.jpg":
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            filler = image + b"\0" * (65536 - len(image))
            while self.sent[path] < 50_000_000:
                self.write(sock, path, b"%x\r\n%s\r\n" % (len(filler), filler))
            return False
        if path == "/short-length.jpg":  # claims fewer bytes than it sends
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + image)
            return True
        if path == "/long-length.jpg":  # claims more bytes than it sends, then hangs up
            self.write(sock, path, b"HTTP/1.1 200 OK\r\nContent-Length: 500000\r\n\r\n"
                       + image[:1000])
            return False
        body = image if path == "/ok.jpg" else b"missing"
        status = b"200 OK" if path == "/ok.jpg" else b"404 Not Found"
        self.write(sock, path, b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s"
                   % (status, len(body), body))
        return True

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw_origin() -> Iterator[RawOrigin]:
    server = RawOrigin(make_image(300, 200, Q=95))
    yield server
    server.stop()


@pytest.mark.integration
def test_byte_cap_with_lying_and_chunked_origins(serve: Any, raw_origin: RawOrigin) -> None:
    pp = serve(config(None, [{"name": "raw", "type": "web_server",
                              "base_url": f"http://127.0.0.1:{raw_origin.port}",
                              "read_timeout": 5}],
                      limits={"max_input_bytes": "1MB"}))
    began = time.monotonic()
    response = pp.get("/tr:w-10/declared-huge.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    assert time.monotonic() - began < 1.5  # refused from the header, not after reading

    response = pp.get("/tr:w-10/chunked-endless.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    time.sleep(0.2)
    assert raw_origin.sent["/chunked-endless.jpg"] < 10_000_000  # stopped near the cap

    # Extra bytes after the declared length: aiohttp either stops at the length (a truncated
    # image) or refuses the garbage after it (an origin failure); both are clean.
    response = pp.get("/tr:w-10/short-length.jpg")
    assert response.ik_error.split(" ")[0] in ("EFORMAT", "UNIDENTIFIED"), response.ik_error
    assert response.status in (400, 404)
    response = pp.get("/tr:w-10/long-length.jpg")
    assert response.status == 404 and response.ik_error.startswith("UNIDENTIFIED - ")
    for _ in range(3):  # the pooled connections are still sound afterwards
        response = pp.get("/tr:w-10/ok.jpg")
        assert response.status == 200, response.ik_error
        assert decode(response.body).width == 10


@pytest.mark.integration
def test_a_transformation_never_streams_an_original_past_the_cap(serve: Any,
                                                               raw_origin: RawOrigin) -> None:
    pp = serve(config(None, [{"name": "raw", "type": "web_server",
                              "base_url": f"http://127.0.0.1:{raw_origin.port}",
                              "read_timeout": 5}],
                      limits={"max_input_bytes": "1MB"}))
    for target in ("/tr:w-100/declared-huge-zeros.jpg", "/declared-huge-zeros.jpg?tr=w-100",
                   "/tr:w-100,di-ok.jpg/declared-huge-zeros.jpg"):
        began = time.monotonic()
        response = pp.get(target)
        assert response.status == 400 and response.ik_error.startswith("ELIMIT - "), target
        assert "1000000 bytes" in response.ik_error
        assert time.monotonic() - began < 1.5  # refused from the declared length
    response = pp.get("/tr:w-100/chunked-zeros.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    time.sleep(0.2)
    assert raw_origin.sent["/chunked-zeros.jpg"] < 10_000_000  # the connection was closed

    # Without a transformation, a large file may go out as it is, streamed.
    conn = http.client.HTTPConnection("127.0.0.1", pp.port, timeout=10)
    try:
        conn.request("GET", "/declared-huge-zeros.jpg")
        answer = conn.getresponse()
        assert answer.status == 200 and answer.getheader("content-length") == "10000000000"
        assert answer.read(100_000) == b"\0" * 100_000
    finally:
        conn.close()


@pytest.mark.integration
def test_a_saved_original_past_the_cap_is_not_transformed(serve: Any, origin: Any,
                                                          tmp_path: Path) -> None:
    origin.files["/blob.jpg"] = b"\0" * 3_000_000  # no image: buffered (and saved) as it is
    cache = {"dir": str(tmp_path / "cache"), "save_originals": True}
    pp = serve(config(None, [web_origin("web", origin)], cache=cache,
                      limits={"max_input_bytes": "1MB"}))
    assert pp.get("/blob.jpg").status == 200
    response = pp.get("/tr:w-10/blob.jpg")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - ")
    assert origin.paths().count("/blob.jpg") == 1  # the saved copy was the one refused


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/silent.jpg", "/trickle.jpg"])
def test_the_whole_fetch_has_a_deadline(serve: Any, raw_origin: RawOrigin, path: str) -> None:
    pp = serve(config(None, [{"name": "raw", "type": "web_server",
                              "base_url": f"http://127.0.0.1:{raw_origin.port}",
                              "read_timeout": 3, "total_timeout": 5, "retries": 5}]))
    began = time.monotonic()
    response = pp.get(f"/tr:w-10{path}")
    elapsed = time.monotonic() - began
    assert response.status == 404, response.ik_error
    assert response.ik_error.startswith("UNIDENTIFIED - ") and "timed out" in response.ik_error
    assert elapsed < 8, elapsed
    if path == "/trickle.jpg":
        assert elapsed > 4.5  # the body kept coming: only the total deadline ends it


@pytest.mark.integration
def test_retries_do_not_multiply_the_deadline(serve: Any) -> None:
    closed = free_port()  # nothing listens: every attempt is refused, and retried
    pp = serve(config(None, [{"name": "down", "type": "web_server",
                              "base_url": f"http://127.0.0.1:{closed}", "retries": 10,
                              "retry_backoff": 1, "total_timeout": 1.5}]))
    began = time.monotonic()
    response = pp.get("/tr:w-10/a.jpg")
    assert response.status == 404 and response.ik_error.startswith("ECONNREFUSED - ")
    assert time.monotonic() - began < 2.5  # 1 + 2 + 4 + ... s of backoff, cut at 1.5 s


# --- the fuzzer -------------------------------------------------------------------------------

FILES = ["photo.jpg", "alpha.png", "sub/%C3%BC%20b.webp", "app.js", "icon.svg", "nothing.jpg",
         *sorted(quote(name) for name in corpus(b"x" * 400)),
         "../secret.txt", "%2e%2e/secret.txt", "sub/../../secret.txt", "%00", ""]
KEYS = ["w", "h", "c", "cm", "q", "f", "orig", "bg", "ar", "dpr", "fo", "r", "bl", "rt", "t",
        "e-grayscale", "e-sharpen", "n", "di", "x", "y", "xc", "yc", "z", "pr", "lo", "md", "b",
        "l-image", "i", "l-end", "lx", "ly", "e-contrast", "fl", "cp", "co", "zz"]
VALUES = st.one_of(
    st.integers(-10, 5000).map(str),
    st.sampled_from(["0.5", "1.5", "0", "auto", "force", "at_max", "at_max_enlarge", "pad_resize",
                     "extract", "pad_extract", "maintain_ratio", "png", "webp", "avif", "gif",
                     "jpg", "orig", "true", "false", "FF0000", "ff000080", "red", "4-3",
                     "bh_div_2", "iw_mul_0.5", "photo.jpg", "sub@@photo.jpg", "top_left", "99999",
                     "-1", "1e309", "nan", "", "1-2-3"]),
    st.text(alphabet="abcdefxyz0189._@%-~", max_size=8),
)
RANDOM_STEP = st.lists(st.tuples(st.sampled_from(KEYS), VALUES).map(
    lambda kv: f"{kv[0]}-{kv[1]}"), min_size=1, max_size=4).map(",".join)
VALID_STEP = st.sampled_from([
    "w-20", "h-10", "w-0.5", "w-30,h-30", "w-40,h-20,c-force", "w-50,h-50,c-at_max", "f-png",
    "f-webp", "f-auto", "q-30", "w-25,f-gif", "orig-true", "w-16,h-16,c-at_least", "f-jpg,q-90",
])
STEP = st.one_of(VALID_STEP, VALID_STEP, RANDOM_STEP)
TR = st.lists(STEP, min_size=1, max_size=3).map(":".join)
GOOD_FILES = ["photo.jpg", "alpha.png", "sub/%C3%BC%20b.webp", "icon.svg", "app.js"]
JUNK = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, dict[str, str], str]:
    prefix = draw(st.sampled_from(["", "", "", "/media", "/locked", "/v1.jpg"]))
    parts = [prefix]
    if draw(st.booleans()):
        parts.append("/tr:" + quote(draw(TR), safe=":,-._~@"))
    file = draw(st.one_of(st.sampled_from(GOOD_FILES), st.sampled_from(FILES),
                          JUNK.map(lambda t: quote(t, safe="/:@"))))
    parts.append("/" + file)
    query: list[str] = []
    if draw(st.booleans()):
        query.append("tr=" + quote(draw(TR), safe=":,-"))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        key = draw(st.sampled_from(["ik-s", "ik-t", "ik-attachment", "v", "tr", "ik%2Ds"]))
        query.append(f"{key}={quote(draw(JUNK), safe='')}")
    target = "".join(parts) + ("?" + "&".join(query) if query else "")
    headers = draw(st.fixed_dictionaries({}, optional={
        "accept": st.sampled_from(["image/avif,image/webp,*/*", "*/*", "image/webp;q=0", "x"]),
        "range": st.sampled_from(["bytes=0-5", "bytes=-3", "bytes=99999-", "bytes=5-1", "x"]),
        "if-none-match": st.sampled_from(['"abc"', "*", "W/\"x\""]),
        "host": st.sampled_from(["cdn.example.test", "CDN.example.test:443", "[::1]:80", "a"]),
        "sec-ch-dpr": st.sampled_from(["2", "0", "abc", "1e9"]),
        "sec-ch-width": st.sampled_from(["100", "-5", "99999999"]),
    }))
    method = draw(st.sampled_from(["GET"] * 6 + ["HEAD", "POST"]))
    return target, headers, method


@pytest.mark.property
def test_random_urls_never_get_a_5xx(client: AsgiClient) -> None:
    statuses: Counter[int] = Counter()

    @settings(max_examples=2500, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(targets())
    def one(case: tuple[str, dict[str, str], str]) -> None:
        target, headers, method = case
        response = client.get(target, headers, method)
        statuses[response.status] += 1
        assert response.status < 500, (target, headers, response.status, response.ik_error)
        assert b"top secret" not in response.body, target

    one()
    # The fuzzer reached real work, not only early refusals.
    assert statuses[200] > 100 and statuses[400] > 200 and statuses[401] > 20, statuses
