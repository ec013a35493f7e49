"""The web origins' HTTP/1.1 client (`origins/http1.py`) against real sockets on 127.0.0.1,
and its response parsing under every way a response can be cut into reads."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from pixelport.errors import OriginUnreachable
from pixelport.origins import http1
from pixelport.origins.http import HttpClient

TIMEOUTS = http1.Timeouts(connect=2, read=2)
Script = Callable[[socket.socket, bytes], bool]  # answers one request; False: hang up


class RawServer:
    """A TCP server that answers each request with whatever its script writes."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError):
                    sock.close()
                    continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            buffer = b""
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    request, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.requests.append(request)
                    try:
                        if not self.script(sock, request):
                            return
                    except OSError:
                        return

    def url(self, path: str = "/f", scheme: str = "http") -> URL:
        """A URL on this server."""
        return URL(f"{scheme}://127.0.0.1:{self.port}{path}")

    def stop(self) -> None:
        """Stop accepting."""
        self.listener.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    made: list[RawServer] = []

    def make(script: Script, tls: ssl.SSLContext | None = None) -> RawServer:
        made.append(RawServer(script, tls))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    """An HTTP/1.1 response with a Content-Length."""
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def run(test: Callable[[http1.Client], Awaitable[Any]], loop: str = "asyncio",
        **client: Any) -> Any:
    """Run `test` with a fresh client, on asyncio's loop or on uvloop (the server's)."""
    async def go() -> Any:
        made = http1.Client(guard=False, **client)
        try:
            return await test(made)
        finally:
            made.close()

    return uvloop.run(go()) if loop == "uvloop" else asyncio.run(go())


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


# --- requests, keep-alive and the pool --------------------------------------------------------

@pytest.mark.integration
@LOOPS
def test_keep_alive_reuses_one_connection(raw: Callable[..., RawServer], loop: str) -> None:
    server = raw(lambda sock, request: sock.sendall(answer(b"hello")) or True)

    async def go(client: http1.Client) -> list[bytes]:
        bodies = []
        for _ in range(5):
            response = await client.get(server.url(), {"X-Origin": "pp"}, TIMEOUTS)
            assert response.status == 200 and response.headers.get("content-length") == "5"
            bodies.append(await response.read())
        return bodies

    assert run(go, loop) == [b"hello"] * 5
    assert server.connections == 1
    first = server.requests[0].decode().split("\r\n")
    assert first[0] == "GET /f HTTP/1.1"
    assert first[1:] == [f"Host: 127.0.0.1:{server.port}", "X-Origin: pp", "Accept: */*"]


@pytest.mark.integration
def test_a_pooled_connection_the_origin_closed_is_replaced(raw: Callable[..., RawServer]) -> None:
    # The origin answers once per connection and closes it without saying so (as servers do
    # after their keep-alive timeout): the next request finds the pooled connection dead.
    server = raw(lambda sock, request: sock.sendall(answer(b"once")) and False)

    async def go(client: http1.Client) -> list[bytes]:
        bodies = []
        for _ in range(3):
            response = await client.get(server.url(), {}, TIMEOUTS)
            bodies.append(await response.read())
            await asyncio.sleep(0.05)  # the close reaches the client while it is idle...
        return bodies

    assert run(go) == [b"once"] * 3
    assert server.connections == 3


@pytest.mark.integration
def test_a_pooled_connection_dead_on_arrival_is_retried_once(
        raw: Callable[..., RawServer]) -> None:
    # ...or only after the next request was written: the request is sent again, once, on a new
    # connection. A request the origin did answer part of is never repeated.
    state = {"n": 0}

    def script(sock: socket.socket, request: bytes) -> bool:
        state["n"] += 1
        if state["n"] == 2:
            return False  # the second request on the first connection: hang up, no answer
        sock.sendall(answer(b"ok"))
        return True

    server = raw(script)

    async def go(client: http1.Client) -> list[bytes]:
        return [await (await client.get(server.url(), {}, TIMEOUTS)).read() for _ in range(2)]

    assert run(go) == [b"ok", b"ok"]
    assert server.connections == 2 and len(server.requests) == 3


@pytest.mark.integration
def test_a_request_partly_answered_is_not_sent_again(raw: Callable[..., RawServer]) -> None:
    state = {"n": 0}

    def script(sock: socket.socket, request: bytes) -> bool:
        state["n"] += 1
        if state["n"] == 2:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")  # then hang up mid-header
            return False
        sock.sendall(answer(b"ok"))
        return True

    server = raw(script)

    async def go(client: http1.Client) -> None:
        assert await (await client.get(server.url(), {}, TIMEOUTS)).read() == b"ok"
        with pytest.raises(http1.ConnectionBroken):
            await client.get(server.url(), {}, TIMEOUTS)

    run(go)
    assert len(server.requests) == 2 and server.connections == 1


@pytest.mark.integration
def test_an_unread_body_closes_its_connection(raw: Callable[..., RawServer]) -> None:
    size = 8 * http1.HIGH  # more than is read ahead of its reader
    server = raw(lambda sock, request: sock.sendall(answer(b"x" * size)) or True)

    async def go(client: http1.Client) -> bytes:
        (await client.get(server.url(), {}, TIMEOUTS)).release()  # body left unread
        return await (await client.get(server.url(), {}, TIMEOUTS)).read()

    assert run(go) == b"x" * size
    assert server.connections == 2


@pytest.mark.integration
def test_connections_per_origin_are_bounded(raw: Callable[..., RawServer],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "PER_HOST", 2)
    server = raw(lambda sock, request: sock.sendall(answer(b"ok")) or True)

    async def go(client: http1.Client) -> None:
        held = [await client.get(server.url(), {}, TIMEOUTS) for _ in range(2)]
        with pytest.raises(TimeoutError):  # a third waits for a place, within `connect`
            await client.get(server.url(), {}, http1.Timeouts(connect=0.3, read=2))
        held[0].release()
        assert await (await client.get(server.url(), {}, TIMEOUTS)).read() == b"ok"

    run(go)
    assert server.connections == 2


def test_header_injection_is_refused() -> None:
    async def go(client: http1.Client) -> None:
        with pytest.raises(ValueError, match="line break"):
            await client.get(URL("http://127.0.0.1:9/"), {"Range": "bytes=0-1\r\nX: y"},
                             TIMEOUTS)

    run(go)


@pytest.mark.integration
def test_url_credentials_become_basic_auth(raw: Callable[..., RawServer]) -> None:
    server = raw(lambda sock, request: sock.sendall(answer(b"ok")) or True)
    url = URL(f"http://user:p%C3%A4ss@127.0.0.1:{server.port}/a%20b?x=1")

    async def go(client: http1.Client) -> bytes:
        return await (await client.get(url, {}, TIMEOUTS)).read()

    assert run(go) == b"ok"
    lines = server.requests[0].decode().split("\r\n")
    assert lines[0] == "GET /a%20b?x=1 HTTP/1.1"
    assert "Authorization: Basic dXNlcjpww6Rzcw==" in lines  # user:päss in UTF-8
    assert f"Host: 127.0.0.1:{server.port}" in lines


# --- bodies -------------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize(("wire", "body", "reused"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     b"abcde", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", b"", True),
    (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + answer(b"real"), b"real", True),
    # Extra bytes after the declared length: the declared part, on a connection not reused.
    (answer(b"12345")[:-5] + b"1234567890", b"12345", False),
])
def test_bodies(raw: Callable[..., RawServer], wire: bytes, body: bytes, reused: bool) -> None:
    server = raw(lambda sock, request: sock.sendall(wire) or True)

    async def go(client: http1.Client) -> list[bytes]:
        return [await (await client.get(server.url(), {}, TIMEOUTS)).read() for _ in range(2)]

    assert run(go) == [body, body]
    assert server.connections == (1 if reused else 2)


@pytest.mark.integration
def test_a_body_ended_by_the_connection(raw: Callable[..., RawServer]) -> None:
    server = raw(lambda sock, request: sock.sendall(b"HTTP/1.0 200 OK\r\n\r\nto the end") and False)

    async def go(client: http1.Client) -> bytes:
        return await (await client.get(server.url(), {}, TIMEOUTS)).read()

    assert run(go) == b"to the end"


@pytest.mark.integration
@pytest.mark.parametrize(("wire", "error"), [
    (answer(b"x" * 10)[:-5], http1.ConnectionBroken),  # shorter than declared, then closed
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", http1.ConnectionBroken),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http1.ProtocolError),
])
def test_broken_bodies_raise(raw: Callable[..., RawServer], wire: bytes,
                             error: type[Exception]) -> None:
    server = raw(lambda sock, request: sock.sendall(wire) and False)

    async def go(client: http1.Client) -> None:
        response = await client.get(server.url(), {}, TIMEOUTS)
        with pytest.raises(error):
            await response.read()

    run(go)


@pytest.mark.integration
@pytest.mark.parametrize("wire", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (http1.MAX_HEADER_BYTES + 10) + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
])
def test_invalid_answers_raise(raw: Callable[..., RawServer], wire: bytes) -> None:
    server = raw(lambda sock, request: sock.sendall(wire) and False)

    async def go(client: http1.Client) -> None:
        with pytest.raises(http1.ProtocolError):
            await client.get(server.url(), {}, TIMEOUTS)

    run(go)


@pytest.mark.integration
def test_silence_times_out(raw: Callable[..., RawServer]) -> None:
    def script(sock: socket.socket, request: bytes) -> bool:
        if b"/half" in request:
            sock.sendall(answer(b"x" * 100)[:-50])
        time.sleep(2)
        return False

    server = raw(script)
    quick = http1.Timeouts(connect=2, read=0.3)

    async def go(client: http1.Client) -> None:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.get(server.url("/nothing"), {}, quick)
        response = await client.get(server.url("/half"), {}, quick)
        with pytest.raises(TimeoutError):
            await response.read()
        response.release()
        assert time.monotonic() - began < 1.5

    run(go)


@pytest.mark.integration
@LOOPS
def test_a_slow_reader_pauses_the_socket(raw: Callable[..., RawServer], loop: str) -> None:
    """Back-pressure: a body is not read from the socket faster than its reader takes it."""
    size = 16 * http1.HIGH
    server = raw(lambda sock, request: sock.sendall(answer(b"v" * size)) or True)

    async def go(client: http1.Client) -> tuple[int, int]:
        response = await client.get(server.url(), {}, TIMEOUTS)
        most, total = 0, 0
        async for chunk in response.chunks():
            total += len(chunk)
            most = max(most, response.connection.buffered)
            await asyncio.sleep(0.002)
        return most, total

    most, total = run(go, loop)
    assert total == size
    assert most < http1.HIGH + 1024 * 1024  # paused past HIGH (one read may overshoot)


@pytest.mark.integration
def test_a_header_line_that_never_ends_is_cut_off(raw: Callable[..., RawServer]) -> None:
    sent = [0]

    def script(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while sent[0] < 50_000_000:
            sock.sendall(b"a" * 65536)
            sent[0] += 65536
        return False

    server = raw(script)

    async def go(client: http1.Client) -> None:
        with pytest.raises(http1.ProtocolError, match="too large"):
            await client.get(server.url(), {}, TIMEOUTS)

    run(go)
    time.sleep(0.2)
    assert sent[0] < 10_000_000  # refused near the limit, not after the whole line


@pytest.mark.integration
def test_an_address_that_does_not_answer_gets_only_its_share(
        raw: Callable[..., RawServer]) -> None:
    server = raw(lambda sock, request: sock.sendall(answer(b"ok")) or True)
    # A listener that never accepts, its queue full: further connections are never answered.
    silent = socket.create_server(("127.0.0.1", 0), backlog=0)
    waiting: list[socket.socket] = []
    try:
        for _ in range(8):  # fill the queue (its length depends on the kernel)
            waiting.append(socket.create_connection(silent.getsockname(), timeout=0.2))
    except TimeoutError:
        pass
    else:  # pragma: no cover
        pytest.skip("this kernel answers connections past a full queue")
    try:

        async def resolver(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
            return [(socket.AF_INET, silent.getsockname()),
                    (socket.AF_INET, ("127.0.0.1", server.port))]

        async def go(client: http1.Client) -> tuple[bytes, float]:
            began = time.monotonic()
            response = await client.get(URL("http://two.test/f"), {},
                                        http1.Timeouts(connect=3, read=2))
            return await response.read(), time.monotonic() - began

        body, took = run(go, resolver=resolver)
        assert body == b"ok"
        assert 1.0 < took < 2.5  # the silent address had half of the 3 s, then the next one
    finally:
        for sock in waiting:
            sock.close()
        silent.close()


# --- TLS and the guard ----------------------------------------------------------------------------

def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.integration
@LOOPS
def test_https(raw: Callable[..., RawServer], tmp_path: Path, loop: str) -> None:
    cert, key = _certificate(tmp_path)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    server = raw(lambda sock, request: sock.sendall(answer(b"secret")) or True, tls=served)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def go(client: http1.Client) -> list[bytes]:
        url = server.url(scheme="https")
        return [await (await client.get(url, {}, TIMEOUTS)).read() for _ in range(2)]

    assert run(go, loop, tls=trusting) == [b"secret", b"secret"]
    assert server.connections == 1

    # With the system's trust store the self-signed certificate is refused.
    async def untrusted() -> None:
        client = HttpClient(allow_private_networks=True)
        try:
            await client.get(str(server.url(scheme="https")), {}, TIMEOUTS, "web origin")
        finally:
            await client.aclose()

    with pytest.raises(OriginUnreachable, match=r"TLS with 127\.0\.0\.1 failed"):
        asyncio.run(untrusted())


def test_names_are_looked_up_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
        asked.append(host)
        return [(socket.AF_INET, ("93.184.216.34", port))]

    async def go(client: http1.Client) -> None:
        for _ in range(3):
            await client._addresses("example.test", 80)
        await client._addresses("127.0.0.1", 80)  # a literal is never looked up
        client.names.put(("example.test", 80), (time.monotonic() - http1.DNS_TTL - 1,
                                                [(socket.AF_INET, ("93.184.216.34", 80))]))
        await client._addresses("example.test", 80)

    run(go, resolver=resolver)
    assert asked == ["example.test", "example.test"]


# --- parsing, cut anywhere ------------------------------------------------------------------------

class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _wire(body: bytes, framing: str) -> bytes:
    if framing == "length":
        return answer(body, "Content-Type: image/jpeg")
    if framing == "chunked":
        pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=3000), framing=st.sampled_from(["length", "chunked", "close"]),
       cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_any_cut_of_an_answer_reads_the_same(body: bytes, framing: str, cuts: list[int]) -> None:
    wire = _wire(body, framing)
    connection = http1._Connection(("http", "x", 80))
    transport = _Transport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.send(b"GET / HTTP/1.1\r\n\r\n")
    edges = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    for start, end in itertools.pairwise(edges):
        connection.data_received(wire[start:end])
    if framing == "close":
        connection.connection_lost(None)
    received = b"".join(iter(connection.take, None))
    assert connection.complete and connection.error is None
    assert connection.status == 200 and received == body
    assert connection.fit_for_reuse() == (framing != "close")
    if framing == "length":
        assert connection.headers.get("CONTENT-TYPE") == "image/jpeg"
