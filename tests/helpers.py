"""Test helpers: generated images, a real origin HTTP server, pixelport on a real port."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyvips
import uvicorn

from pixelport.app import App
from pixelport.config import from_dict
from pixelport.server import uvicorn_config


def make_image(width: int, height: int, fmt: str = ".jpg", *, alpha: bool = False,
               colour: tuple[int, int, int] = (200, 60, 40), **save: Any) -> bytes:
    """A solid-colour image with a gradient stripe, encoded as `fmt`."""
    base = pyvips.Image.black(width, height).new_from_image(list(colour)).copy(
        interpretation="srgb")
    if alpha:
        base = base.bandjoin(128)
    return bytes(base.cast("uchar").write_to_buffer(fmt, **save))


def quadrants(size: int = 200, fmt: str = ".png") -> bytes:
    """A square in four colours: red top-left, green top-right, blue bottom-left, white
    bottom-right; for checking which region a crop kept."""
    half = size // 2
    red = pyvips.Image.black(half, half).new_from_image([255, 0, 0])
    green = pyvips.Image.black(half, half).new_from_image([0, 255, 0])
    blue = pyvips.Image.black(half, half).new_from_image([0, 0, 255])
    white = pyvips.Image.black(half, half).new_from_image([255, 255, 255])
    image = pyvips.Image.arrayjoin([red, green, blue, white], across=2)
    return bytes(image.cast("uchar").copy(interpretation="srgb").write_to_buffer(fmt))


def decode(data: bytes) -> Any:
    """Load an image from bytes."""
    return pyvips.Image.new_from_buffer(data, "")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Recorded:
    """One request an origin received."""

    path: str
    headers: dict[str, str]
    query: str = ""


@dataclass
class OriginServer:
    """A real HTTP server on 127.0.0.1 serving in-memory files, recording every request.

    `files` maps a decoded path ("/a b.jpg") to bytes; `statuses` maps a path to a status to
    answer instead; `delays` maps a path to seconds to wait before answering.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    ranges: bool = True  # answer single byte ranges (206/416), as nginx does
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    def start(self) -> OriginServer:
        """Serve in a background thread."""
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                raw_path, _, query = self.path.partition("?")
                path = unquote(raw_path)
                origin.requests.append(Recorded(path, {k.lower(): v for k, v in
                                                       self.headers.items()}, query))
                if path in origin.delays:
                    time.sleep(origin.delays[path])
                if path in origin.redirects:
                    self.send_response(302)
                    self.send_header("Location", origin.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = origin.statuses.get(path)
                body = origin.files.get(path)
                if status is None and body is None:
                    status = 404
                if status is not None:
                    payload = b"error"
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                assert body is not None
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                wanted = self.headers.get("Range", "")
                if origin.ranges and wanted.startswith("bytes=") and "," not in wanted:
                    first_text, _, last_text = wanted[6:].partition("-")
                    first = int(first_text or 0)
                    if first >= len(body):
                        payload = b"<html>416</html>"
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    last = min(int(last_text) if last_text else len(body) - 1, len(body) - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{len(body)}")
                    body = body[first:last + 1]
                else:
                    self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Last-Modified", "Tue, 01 Jan 2030 00:00:00 GMT")
                for name, value in origin.extra_headers.get(path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up early (timeout tests) are expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Shut down."""
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        """Paths requested so far."""
        return [r.path for r in self.requests]


class Pixelport:
    """pixelport served by uvicorn on a free port in a background thread."""

    def __init__(self, config: dict[str, Any], base: Path | None = None) -> None:
        config = dict(config)
        if "dir" not in config.get("cache", {}):
            # Never the repo's data/cache: a test run must not see another run's results.
            self.cache_dir = tempfile.mkdtemp(prefix="pixelport-cache-")
            config["cache"] = {**config.get("cache", {}), "dir": self.cache_dir}
        self.app = App(from_dict(config, base=base))
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn_config(
            self.app, "127.0.0.1", self.port, log_level="warning", loop="asyncio"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("pixelport did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def get(self, target: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> Response:
        """Send `target` exactly as written (no client-side normalisation)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_host=headers is not None and "Host" in headers,
                            skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.endheaders()
            raw = conn.getresponse()
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, raw.read())
        finally:
            conn.close()

    def stop(self) -> None:
        """Shut down and wait."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Response:
    """A response as received."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ik_error(self) -> str:
        """The ik-error header ('' when absent)."""
        return self.headers.get("ik-error", "")

    def image(self) -> Any:
        """The body as a pyvips image."""
        return decode(self.body)


def server_timing(header: str) -> dict[str, float | str]:
    """Parse Server-Timing into {name: dur or desc}."""
    result: dict[str, float | str] = {}
    for entry in header.split(","):
        name, *params = [p.strip() for p in entry.split(";")]
        for param in params:
            key, _, value = param.partition("=")
            result[name] = float(value) if key == "dur" else value
    return result


Factory = Callable[..., Pixelport]


def web_config(folder: Path, origin_url: str, key: str, server: str = "") -> Path:
    """folder/pixelport.toml: one web_server origin, the cache in folder/cache, no library,
    `key` as private key; `server`: lines of its [server] table."""
    path = folder / "pixelport.toml"
    path.write_text(f"""
[server]
{server}

[security]
private_key = "{key}"
allow_private_networks = true

[cache]
dir = "{folder / 'cache'}"

[library]
dir = ""

[[origin]]
name = "web"
type = "web_server"
base_url = "{origin_url}"

[[endpoint]]
identifier = ""
origins = ["web"]
""")
    return path


class Relay:
    """A TCP relay on 127.0.0.1 to another port, that can be cut (every connection closed,
    new ones refused) and restored: an engine going down and coming back, as its clients
    see it, without stopping the engine other tests share."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[Any] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones."""
        self.open = False
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def restore(self) -> None:
        """Relay new connections again."""
        self.open = True

    def close(self) -> None:
        """Cut, and stop listening: the port refuses connections from now on (again: a
        no-op)."""
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        self.listener.close()
