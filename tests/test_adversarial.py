"""The adversarial review's findings, each reproduced as it was found (SECURITY.md).

Numbers are the findings': 1 growth and render time, 2 private files, 3 served types, 4 ik-t,
5 result keys, 6 forwarded Host, 7 slow origins and render slots, 8 circuit breakers, 9 pages
and decoded size, 10 request heads, 11 purges and fetches in flight, 12 cacheable errors,
13 unhandled exceptions.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvips
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pixelport.app import App
from pixelport.config import from_dict
from pixelport.errors import PixelportError
from pixelport.security.headers import DOCUMENT_CSP
from pixelport.security.signing import sign_url
from pixelport.transform import engine
from tests.helpers import OriginServer, free_port, make_image
from tests.test_delivery import config, web_origin
from tests.test_malformed_media import AsgiClient


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adversarial")
    (root / "dot.png").write_bytes(make_image(1, 1, ".png"))
    (root / "photo.png").write_bytes(make_image(1200, 900, ".png"))
    return root


@pytest.fixture(scope="module")
def client(files: Path) -> Iterator[AsgiClient]:
    app = App(from_dict({
        "library": {"dir": str(files)}, "cache": {"dir": ""},
        "security": {"allow_private_networks": True},
        "origin": [{"name": "proxy", "type": "web_proxy", "allowed_hosts": ["*"]}],
        "endpoint": [{"identifier": "", "origins": ["proxy"]}],
    }))
    asgi = AsgiClient(app)
    yield asgi
    asgi.close()


# --- 1: growth is checked before any pixel work -----------------------------------------------

@pytest.mark.parametrize("target", [
    "/tr:b-1000000_FF0000:e-contrast/dot.png",
    "/tr:b-15000_FF0000:cm-pad_extract,w-10,h-10,bg-blurred/dot.png",
    "/tr:" + ":".join(["rt-45"] * 20) + ":e-contrast/photo.png",
])
def test_growth_past_the_output_limit_is_refused_before_the_work(client: AsgiClient,
                                                                 target: str) -> None:
    response = client.get(target)
    assert response.status == 400 and response.ik_error.startswith("ELIMIT - "), (
        response.status, response.ik_error)
    # Refused by the step that grows, not by the encoder after all the work.
    assert "would make the image" in response.ik_error


def test_growth_within_the_limit_still_renders(client: AsgiClient) -> None:
    response = client.get("/tr:w-100:rt-45:rt-45:b-10_red/photo.png")
    assert response.status == 200, response.ik_error
    image = pyvips.Image.new_from_buffer(response.body, "")
    assert image.width > 100 and image.height > 100


# --- 13: exceptions that were 500s ------------------------------------------------------------

@pytest.mark.parametrize(("target", "code"), [
    ("/http://%EF%BD%81.example.invalid%00x/x.png", "EINVALID"),
    ("/http://exa%20mple.com/x.png", "EINVALID"),
    ("/tr:b-100000000_FF0000/dot.png", "ELIMIT"),
    ("/tr:b-iw_pow_9_FF0000/photo.png", "ELIMIT"),
    ("/tr:b-iw_mul_1e300_mul_1e300_FF0000/photo.png", "EINVALID"),
])
def test_what_was_a_500_is_a_400(client: AsgiClient, target: str, code: str) -> None:
    response = client.get(target)
    assert response.status == 400 and response.ik_error.startswith(f"{code} - "), (
        response.status, response.ik_error)


def test_an_international_proxy_host_is_asked_in_its_ascii_form() -> None:
    from pixelport.origins.web_proxy import parse_target

    assert str(parse_target("http://\uff41.example.com/x.png")) == "http://a.example.com/x.png"
    assert str(parse_target("http://b\u00fccher.example/x")) == "http://xn--bcher-kva.example/x"


# --- 5: the result key describes what is rendered -----------------------------------------------

KEY_APP = App(from_dict({"library": {"dir": ""}, "cache": {"dir": ""}, "images": {"avif": True}}))
IMAGE = make_image(64, 48)
FRAGMENTS = ["e-grayscale", "e-contrast", "e-sharpen", "f-jpg", "f-png", "f-auto", "w-auto",
             "w-20", "dpr-auto,w-10", "bl-2", "if-iw_gt_10,w-auto,if-end",
             "if-iw_gt_10,f-auto,if-end", "if-iw_lt_10,f-webp,if-else,f-auto,if-end",
             "if-ar_gt_1,dpr-auto,w-8,if-end", "q-40"]
ACCEPTS = ["image/jpeg", "image/webp,*/*", "image/avif,image/webp,*/*"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    steps = draw(st.lists(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3),
                          min_size=1, max_size=2))
    chain = ":".join(",".join(step) for step in steps)
    headers = {"accept": draw(st.sampled_from(ACCEPTS))}
    for name, values in (("sec-ch-width", ["90", "400"]), ("sec-ch-dpr", ["1", "2"])):
        value = draw(st.sampled_from([None, *values]))
        if value is not None:
            headers[name] = value
    return chain, headers


def key_and_render(chain: str, headers: dict[str, str]) -> tuple[str | None, bytes]:
    delivery = KEY_APP.delivery
    try:
        plan = delivery.plan({"type": "http", "method": "GET", "path": f"/tr:{chain}/a.bin",
                              "raw_path": f"/tr:{chain}/a.bin".encode(), "query_string": b"",
                              "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
    except PixelportError:
        return None, b""
    job = delivery.job(plan, delivery.key(plan))
    config = KEY_APP.config
    options = engine.RenderOptions(job.accept, config.images, config.limits,
                                   client_width=job.client_width, client_dpr=job.client_dpr)
    try:
        return job.key, engine.render(IMAGE, job.steps, options).data
    except PixelportError as exc:
        return job.key, exc.header.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), requests(), st.booleans())
@example(("e-grayscale,e-contrast", {"accept": "image/jpeg"}),
         ("e-contrast", {"accept": "image/jpeg"}), False)
@example(("if-iw_gt_10,w-auto,if-end", {"accept": "image/jpeg", "sec-ch-width": "90"}),
         ("if-iw_gt_10,w-auto,if-end", {"accept": "image/jpeg", "sec-ch-width": "400"}), False)
@example(("f-jpg:if-iw_gt_10,f-auto,if-end", {"accept": "image/webp,*/*"}),
         ("f-jpg:if-iw_gt_10,f-auto,if-end", {"accept": "image/jpeg"}), False)
def test_two_requests_share_a_key_only_when_their_answers_are_equal(
        first: tuple[str, dict[str, str]], second: tuple[str, dict[str, str]],
        same_chain: bool) -> None:
    if same_chain:
        second = (first[0], second[1])
    key_one, made_one = key_and_render(*first)
    key_two, made_two = key_and_render(*second)
    if key_one is not None and key_one == key_two:
        assert made_one == made_two, (first, second)


def test_an_image_behind_another_extension_is_keyed_by_accept() -> None:
    # `.bin` says nothing of an image, but the bytes are one: the format is negotiated.
    assert key_and_render("w-10", {"accept": "image/webp,*/*"})[0] != key_and_render(
        "w-10", {"accept": "image/jpeg"})[0]


# --- 12: errors that depend on the client carry its Vary ----------------------------------------

def test_a_client_dependent_error_varies_as_the_answer_would(client: AsgiClient) -> None:
    refused = client.get("/tr:w-auto,ar-1-100/photo.png", {"sec-ch-width": "10000"})
    assert refused.status == 400 and refused.ik_error.startswith("ELIMIT - ")
    assert "Sec-CH-Width" in refused.headers.get("vary", ""), refused.headers
    served = client.get("/tr:w-auto,ar-1-100/photo.png")
    assert served.status == 200
    unvaried = client.get("/tr:w-10,bl-1000000/photo.png")  # the URL alone decides: no Vary
    assert unvaried.status == 400 and "sec-ch" not in unvaried.headers.get("vary", "").lower()


# --- 3: a served type is read as browsers read it -----------------------------------------------

class TypedOrigin:
    """Answers every path with an HTML payload under the raw Content-Type lines given."""

    def __init__(self, lines: dict[str, list[bytes]]) -> None:
        self.lines = lines
        origin = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = self.rfile.readline().split(b" ")
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                path = request[1].decode() if len(request) > 1 else "/"
                body = b"<html><script>alert(document.domain)</script></html>"
                head = b"".join(b"Content-Type: %s\r\n" % line
                                for line in origin.lines.get(path, []))
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s"
                                 b"Connection: close\r\n\r\n%s" % (len(body), head, body))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.integration
def test_a_type_list_is_served_as_the_browser_would_read_it_with_the_csp(serve: Any) -> None:
    origin = TypedOrigin({
        "/joined.txt": [b"text/plain, text/html"],
        "/twice.txt": [b"text/plain", b"text/html"],
        "/quoted.txt": [b'text/plain; x="a, text/html"'],
        "/unknown.txt": [b"application/x-something"],
        "/plain.txt": [b"text/plain"],
    })
    try:
        pp = serve(config(None, [{"name": "raw", "type": "web_server",
                                  "base_url": f"http://127.0.0.1:{origin.port}"}]))
        for path in ("/joined.txt", "/twice.txt"):
            response = pp.get(path)
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/html"), response.headers
            assert response.headers["content-security-policy"] == DOCUMENT_CSP
            assert response.headers["x-content-type-options"] == "nosniff"
        quoted = pp.get("/quoted.txt")  # the comma is inside a quoted parameter
        assert quoted.headers["content-type"].startswith("text/plain")
        assert pp.get("/unknown.txt").headers["content-security-policy"] == DOCUMENT_CSP
        plain = pp.get("/plain.txt")
        assert "content-security-policy" not in plain.headers  # inert: shown as text
    finally:
        origin.stop()


@pytest.mark.parametrize(("declared", "meant"), [
    ("text/plain, text/html", "text/html"), ("text/plain,", "text/plain"),
    ("image/png, */*", "image/png"), ('text/plain; a="x,text/html;b=c"', "text/plain"),
    ("bogus", None), ("TEXT/HTML ; charset=utf-8", "text/html"), ("", None),
])
def test_the_media_type_is_the_last_valid_one(declared: str, meant: str | None) -> None:
    from pixelport.produce.mime import essence

    assert essence(declared) == meant


# --- 2: private files need a signature, whatever path serves them -------------------------------

@pytest.mark.integration
def test_private_files_are_never_served_unsigned(serve: Any, origin: OriginServer) -> None:
    private = {"Is-Private-File": "true"}
    files = {"/secret.jpg": make_image(60, 40), "/secret.mp4": b"\0\0\0\x18ftypmp42" * 100,
             "/secret.pdf": b"%PDF-1.4 secret", "/secret.zip": b"PK\3\4secret",
             "/secret.txt": b"s" * (9 * 2**20)}  # past the buffer limit: streamed
    for path, data in files.items():
        origin.files[path] = data
        origin.extra_headers[path] = private
    key = "private-files-key"
    pp = serve(config(None, [web_origin("web", origin)], security={
        "allow_private_networks": True, "private_key": key},
        transformations={"thumb": "w-10"}))
    for path in files:
        refused = pp.get(path)
        assert refused.status == 401 and refused.ik_error.startswith("ESIGNATURE - "), path
        assert files[path][:100] not in refused.body
        signed = sign_url(f"{pp.url}{path}", f"{pp.url}/", key)
        served = pp.get(signed[len(pp.url):])
        assert served.status == 200, (path, served.ik_error)
    # A named transformation unlocks its own output only: the chain must be names alone.
    assert pp.get("/tr:n-thumb/secret.jpg").status == 200
    assert pp.get("/tr:n-thumb:n-thumb/secret.jpg").status == 200
    for chain in ("n-thumb:orig-true", "if-iw_lt_0,n-thumb,if-end", "n-thumb:w-600",
                  "w-600:n-thumb"):
        refused = pp.get(f"/tr:{chain}/secret.jpg")
        assert refused.status in (400, 401), (chain, refused.status)
        assert refused.status == 400 or refused.ik_error.startswith("ESIGNATURE - ")


# --- 6: a Host sent on to the origin is part of the keys -----------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("save_originals", [False, True])
def test_a_forwarded_host_cannot_poison_another_hosts_results(
        serve: Any, origin: OriginServer, tmp_path: Path, save_originals: bool) -> None:
    origin.files["/logo.jpg"] = make_image(80, 60)
    cache = {"dir": str(tmp_path / "cache"), "save_originals": save_originals}
    pp = serve(config(None, [web_origin("web", origin, forward_host_header=True)], cache=cache))
    assert pp.get("/tr:w-20/logo.jpg", {"Host": "attacker.invalid"}).status == 200
    victim = pp.get("/tr:w-20/logo.jpg", {"Host": "img.example.com"})
    assert victim.status == 200
    assert victim.headers["server-timing"].endswith("cache;desc=miss")
    assert [r.headers["host"] for r in origin.requests] == ["attacker.invalid",
                                                            "img.example.com"]
    again = pp.get("/tr:w-20/logo.jpg", {"Host": "img.example.com"})
    assert again.headers["server-timing"].endswith("cache;desc=hit")


# --- 8: nobody can open a web proxy's circuit for the others -------------------------------------

@pytest.mark.integration
def test_failing_hosts_a_requester_picks_do_not_close_the_proxy(serve: Any,
                                                                origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(40, 30)
    pp = serve(config(None, [{"name": "proxy", "type": "web_proxy", "allowed_hosts": ["*"],
                              "retries": 0, "circuit_threshold": 3}]))
    closed = free_port()
    for n in range(6):  # nothing listens there: refused, and counted for that upstream alone
        refused = pp.get(f"/tr:w-10/http://127.0.0.1:{closed}/x{n}.jpg")
        assert refused.status == 404 and refused.ik_error.startswith("ECONNREFUSED - ")
    assert "circuit open" in pp.get(f"/http://127.0.0.1:{closed}/y.jpg").ik_error
    served = pp.get(f"/tr:w-10/{origin.url}/a.jpg")
    assert served.status == 200, served.ik_error


# --- 9: the page asked for, and what a request decodes, are checked before decoding ------------

def _pages_tiff() -> bytes:
    """A TIFF whose first page is 1x1 and whose second is 2000x2000 (deflated: a few KB)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "TIFF", save_all=True, compression="tiff_deflate",
                                append_images=[Image.new("L", (2000, 2000))])
    return out.getvalue()


def _animation(frames: int, side: int) -> bytes:
    each = [(pyvips.Image.black(side, side, bands=3) + 4 * n).cast("uchar") for n in range(frames)]
    strip = pyvips.Image.arrayjoin(each, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    return bytes(strip.gifsave_buffer())


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiClient]:
    root = tmp_path_factory.mktemp("limited")
    (root / "pages.tif").write_bytes(_pages_tiff())
    (root / "frames.gif").write_bytes(_animation(60, 100))
    deep = (pyvips.Image.black(400, 400, bands=4) + 1000).cast("ushort")
    (root / "deep.png").write_bytes(bytes(deep.copy(interpretation="rgb16").pngsave_buffer()))
    shallow = pyvips.Image.black(400, 400, bands=4).cast("uchar").copy(interpretation="srgb")
    (root / "shallow.png").write_bytes(bytes(shallow.pngsave_buffer()))
    app = App(from_dict({"library": {"dir": str(root)}, "cache": {"dir": ""},
                         "limits": {"max_input_pixels": 1_000_000,
                                    "max_decoded_bytes": "1MB"}}))
    asgi = AsgiClient(app)
    yield asgi
    asgi.close()


@pytest.mark.parametrize(("target", "status", "said"), [
    ("/tr:pg-2/pages.tif", 400, "Page 2 is 2000x2000"),
    ("/tr:pg-2,w-10/pages.tif", 400, "Page 2 is 2000x2000"),
    ("/tr:pg-1/pages.tif", 200, ""),
    ("/tr:w-50/frames.gif", 400, "max_decoded_bytes"),  # 60 frames kept: 1.8 MB
    ("/tr:pg-2,w-50/frames.gif", 200, ""),  # one frame
    ("/tr:w-50/deep.png", 400, "x 2 byte(s)"),  # 16-bit RGBA: 1.28 MB
    ("/tr:w-50/shallow.png", 200, ""),
])
def test_pages_and_decoded_sizes_are_checked_first(limited: AsgiClient, target: str,
                                                   status: int, said: str) -> None:
    response = limited.get(target)
    assert response.status == status, (target, response.ik_error)
    if status == 400:
        assert response.ik_error.startswith("ELIMIT - ") and said in response.ik_error


# --- 10: request heads are bounded in size and time, connections in number ----------------------

def _exchange(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.integration
def test_request_heads_are_capped_and_timed(serve: Any, library: Path) -> None:
    pp = serve(config(library, server={"request_head_timeout": 0.5, "max_connections": 4}))
    huge = b"GET /photo.jpg HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n"
    assert _exchange(pp.port, huge).startswith(b"HTTP/1.1 431 ")
    long_line = b"GET /" + b"a" * 70_000
    assert _exchange(pp.port, long_line).startswith(b"HTTP/1.1 431 ")
    began = time.monotonic()
    half = _exchange(pp.port, b"GET /photo.jpg HTTP/1.1\r\nHost: a\r\n")
    assert half.startswith(b"HTTP/1.1 408 ") and time.monotonic() - began < 5
    assert _exchange(pp.port, b"") == b""  # said nothing: closed quietly
    # A head that arrives in time, and a keep-alive connection's later requests, are served.
    # (http.client reads each answer whole: a head and body may come in separate reads.)
    connection = http.client.HTTPConnection("127.0.0.1", pp.port, timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", "/app.js", headers={"Host": "a"})
            answer = connection.getresponse()
            assert answer.status == 200 and answer.read() == b"console.log('hello');\n"
            time.sleep(0.8)  # idle longer than the head timeout between requests
    finally:
        connection.close()


@pytest.mark.integration
def test_connections_past_the_cap_are_refused(serve: Any, library: Path) -> None:
    pp = serve(config(library, server={"max_connections": 3, "request_head_timeout": 10}))
    held = [socket.create_connection(("127.0.0.1", pp.port), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.2)
        assert _exchange(pp.port, b"GET /app.js HTTP/1.1\r\nHost: a\r\n\r\n").startswith(
            b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert pp.get("/app.js").status == 200  # room again


# --- 1: every render has a time budget, a render nobody waits for stops, SIGTERM is prompt -----

TURBULENCE = (b'<svg xmlns="http://www.w3.org/2000/svg" width="2500" height="2500"><filter id="f">'
              b'<feTurbulence baseFrequency="0.01" numOctaves="10"/></filter><rect width="2500" '
              b'height="2500" filter="url(#f)"/></svg>')


def _big_png() -> bytes:
    return bytes(pyvips.Image.black(6000, 6000, bands=3).cast("uchar").pngsave_buffer(
        compression=1))


@pytest.fixture(scope="module")
def slow_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slow")
    (root / "big.png").write_bytes(_big_png())
    (root / "turbulence.svg").write_bytes(TURBULENCE)
    (root / "small.png").write_bytes(make_image(40, 30, ".png"))
    return root


@pytest.mark.parametrize("target", ["/tr:bl-100/big.png", "/tr:rt-45:e-contrast:bl-60/big.png",
                                    "/tr:f-png/turbulence.svg"])
def test_a_render_past_its_time_budget_is_stopped(slow_files: Path, target: str) -> None:
    app = App(from_dict({"library": {"dir": str(slow_files)}, "cache": {"dir": ""},
                         "limits": {"max_render_seconds": 0.5}}))
    asgi = AsgiClient(app)
    try:
        response = asgi.get(target)
        assert response.status == 400, response.ik_error
        assert "max_render_seconds" in response.ik_error
        assert asgi.get("/tr:w-10/small.png").status == 200  # the thread is free again
    finally:
        asgi.close()


@pytest.mark.integration
def test_a_render_whose_client_left_is_stopped(serve: Any, slow_files: Path) -> None:
    pp = serve(config(slow_files, server={"processing_threads": 1}))
    with socket.create_connection(("127.0.0.1", pp.port), timeout=10) as sock:
        sock.sendall(b"GET /tr:bl-100/big.png HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(1.0)  # the render is under way on the only thread
    # The client has gone: its render is stopped, and the thread serves the next request
    # (the blur alone would hold it for minutes).
    began = time.monotonic()
    assert pp.get("/tr:w-10/small.png").status == 200
    assert time.monotonic() - began < 10
    assert not pp.app.images.budgets


@pytest.mark.integration
def test_sigterm_ends_the_server_while_a_render_runs(tmp_path: Path, slow_files: Path) -> None:
    conf = tmp_path / "pixelport.toml"
    conf.write_text(f'[library]\ndir = "{slow_files}"\n[cache]\ndir = "{tmp_path / "cache"}"\n'
                    '[limits]\nmax_render_seconds = 600\n')
    port = free_port()
    command = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "pixelport")
    process = subprocess.Popen([command, "serve", "--config", str(conf), "--listen",
                                f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        chain = ":".join(["bl-100"] * 20)  # 40 s and more of one render, killable by tile
        sock.sendall(f"GET /tr:{chain}/big.png HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        time.sleep(3)  # rendering
        began = time.monotonic()
        process.terminate()
        process.wait(timeout=60)
        assert time.monotonic() - began < 16  # the documented 15 s
        assert sock.recv(4096).startswith(b"HTTP/1.1 503 ")  # answered: shutting down
        sock.close()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- 7: slow downloads do not hold the render slots -----------------------------------------------

class DrippingOrigin:
    """Answers every path with a large declared body, one byte every second."""

    def __init__(self) -> None:
        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                with contextlib.suppress(OSError):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n\xff")
                    for _ in range(30):
                        time.sleep(1)
                        self.wfile.write(b"\xd8")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.integration
def test_dripping_downloads_leave_the_workers_to_everyone_else(serve: Any,
                                                               library: Path) -> None:
    drip = DrippingOrigin()
    try:
        pp = serve(config(library, [{"name": "drip", "type": "web_server",
                                     "base_url": f"http://127.0.0.1:{drip.port}",
                                     "total_timeout": 6}],
                          server={"processing_threads": 1}))
        answers: list[int] = []
        drips = [threading.Thread(target=lambda n=n: answers.append(
            pp.get(f"/tr:w-10/drip-{n}.jpg").status)) for n in range(4)]
        for thread in drips:
            thread.start()
        time.sleep(1)  # four downloads under way, a byte a second
        began = time.monotonic()
        for width in (10, 20, 30):  # library images: their bytes are in at once
            assert pp.get(f"/tr:w-{width}/photo.jpg").status == 200
        assert time.monotonic() - began < 4  # not behind the drips (6 s each)
        for thread in drips:
            thread.join()
        assert answers == [404] * 4  # the drips end at their whole-fetch deadline
    finally:
        drip.stop()
