"""A small HTTP/1.1 client for the GETs of web origins: pooled keep-alive connections, bodies
streamed with back-pressure, the address guard on every connection.

Why not aiohttp here: an origin fetch is one GET, and aiohttp's general machinery (request and
response objects, multidicts, timers, stream readers) made fetching a 200 KB original cost the
event loop about 260 µs, where it takes about 190 through this, 80 of them the bare exchange
(docs/performance.md, tenth round). The event loop is what one process shares among all its
requests, so that time is throughput on small images. Responses are parsed by httptools
(llhttp, uvicorn's parser); a body with a declared length is taken straight from the socket's
reads, without a copy. Cloud origins keep aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

from pixelport.lru import LRU
from pixelport.security import network

# A response's header block past this is refused: no origin needs it, and it is memory a
# hostile server could otherwise make us hold.
MAX_HEADER_BYTES = 64 * 1024
# Reading pauses when this much body is waiting for its reader (a slow client of a streamed
# video), and resumes below LOW.
HIGH = 1024 * 1024
LOW = 256 * 1024
PER_HOST = 64  # connections to one origin at once
TOTAL = 256
IDLE_SECONDS = 15.0  # a pooled connection unused this long is closed rather than reused
DNS_TTL = 60.0
ATTEMPT_MINIMUM = 0.25  # seconds each address of several is given to connect, at least

Resolver = Callable[[str, int], Awaitable[list[tuple[int, tuple[object, ...]]]]]


class ProtocolError(Exception):
    """The origin's answer is not valid HTTP/1.1."""


class ConnectionBroken(ConnectionError):
    """The connection closed before the answer was complete."""


@dataclass(frozen=True)
class Timeouts:
    """`connect`: name lookup, a free place in the pool and the connection, in all;
    `read`: the longest wait for the next bytes of an answer."""

    connect: float
    read: float


class Headers:
    """Response headers, looked up case-insensitively; a repeated field's values are joined."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.size = 0

    def add(self, name: str, value: str) -> None:
        """Add one field as received."""
        key = name.lower()
        old = self.fields.get(key)
        self.fields[key] = value if old is None else f"{old}, {value}"

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field's value, or `default`."""
        return self.fields.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self.fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.fields


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; answers one request at a time."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.headers = Headers()
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.error: BaseException | None = None
        self.head_received = 0  # bytes received before the headers were complete (any: >0)
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.parsed_body = 0  # body bytes the parser has handed over
        self.raw_left = -1  # body bytes still expected, read past the parser; -1: parser's
        self.reusable = True
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            self.reusable = False  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        if self.raw_left >= 0:
            self._raw(data)
            return
        if not self.headers_done:
            self.head_received += len(data)
        try:
            self.parser.feed_data(data)
            if not self.headers_done and self.head_received > MAX_HEADER_BYTES:
                # httptools gathers a header line until it ends: one that never does must
                # not grow without bound.
                raise ProtocolError("the answer's headers are too large")
        except (httptools.HttpParserError, ProtocolError) as exc:
            if not self.complete:
                self.error = (exc if isinstance(exc, ProtocolError) else ProtocolError(
                    str(exc.__context__ or exc) or type(exc).__name__))
            self.reusable = False
            self.close()
        else:
            if self.headers_done and not self.complete and self.raw_left < 0:
                length = self.headers.get("content-length")
                if (length is not None and length.isdigit()
                        and "transfer-encoding" not in self.headers):
                    # The parser has handed over the body bytes of this read; the rest of the
                    # declared length is taken from the socket as it is (no parser copy).
                    self.raw_left = int(length) - self.parsed_body
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete:
            if self.headers_done and self._ends_at_close() and self.error is None:
                self.complete = True  # the body's end is the connection's end
            elif self.error is None:
                self.error = ConnectionBroken("the connection closed before the answer ended")
        self._wake()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.size += len(name) + len(value)
        if self.headers.size > MAX_HEADER_BYTES:
            raise ProtocolError("the answer's headers are too large")
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.headers = Headers()
            return
        self.status = status
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.parsed_body += len(body)
        self._push(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self.reusable = self.reusable and self.parser.should_keep_alive()

    # -- reading ---------------------------------------------------------------------------------

    def _raw(self, data: bytes) -> None:
        if len(data) > self.raw_left:  # more than declared: keep the declared part
            data = data[:self.raw_left]
            self.reusable = False
        self.raw_left -= len(data)
        if data:
            self._push(data)
        if self.raw_left == 0:
            self.complete = True
            self.reusable = self.reusable and self.parser.should_keep_alive()
        self._wake()

    def _push(self, chunk: bytes) -> None:
        self.body.append(chunk)
        self.buffered += len(chunk)
        if self.buffered > HIGH and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def take(self) -> bytes | None:
        """The next body chunk received, if any."""
        if not self.body:
            return None
        chunk = self.body.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < LOW and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    async def wait(self, timeout: float) -> None:
        """Until something arrives (or the connection ends); TimeoutError past `timeout`."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _ends_at_close(self) -> bool:
        """Whether the answer's body is delimited by the end of the connection."""
        return ("content-length" not in self.headers
                and "chunked" not in (self.headers.get("transfer-encoding") or "").lower()
                and self.status not in (204, 304))

    # -- life cycle ------------------------------------------------------------------------------

    def send(self, request: bytes) -> None:
        """Start one request on this (idle) connection."""
        self._reset()
        self.busy = True
        assert self.transport is not None
        self.transport.write(request)

    def close(self) -> None:
        """Close the connection (a pooled one is dropped when next found)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def fit_for_reuse(self) -> bool:
        """Whether the last answer ended cleanly on a connection that stays open."""
        return self.complete and self.reusable and not self.closed and self.error is None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An answer whose headers have arrived; the body is read with `chunks()`."""

    def __init__(self, client: Client, connection: _Connection, read_timeout: float) -> None:
        self.client = client
        self.connection = connection
        self.status = connection.status
        self.headers = connection.headers
        self.read_timeout = read_timeout
        self.released = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; TimeoutError or ConnectionBroken when it stops short."""
        connection = self.connection
        while not self.released:
            chunk = connection.take()
            if chunk is not None:
                yield chunk
            elif connection.complete:
                self.release()
            elif connection.error is not None:
                raise connection.error
            else:
                await connection.wait(self.read_timeout)

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.chunks()])

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool, or is closed when the
        body was not read to its end."""
        if self.released:
            return
        self.released = True
        self.client.give_back(self.connection)


class Client:
    """Connections per (scheme, host, port), reused while the origin keeps them open."""

    def __init__(self, guard: bool, resolver: Resolver | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """`guard`: refuse forbidden addresses (`security.network`); `resolver` replaces the
        system's name lookup and `tls` the system's certificate checks (tests use both)."""
        self.guard = guard
        self.resolver = resolver
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.places: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self.total = asyncio.Semaphore(TOTAL)
        self.names: LRU[tuple[str, int], tuple[float, list[tuple[int, tuple[object, ...]]]]] = (
            LRU(1024))
        self.tls = tls

    async def get(self, url: URL, headers: dict[str, str], timeouts: Timeouts) -> Response:
        """Send a GET and wait for the answer's headers."""
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, host, port)
        request = _request(url, headers)
        for attempt in range(2):
            connection, reused = await self._acquire(key, timeouts.connect)
            try:
                connection.send(request)
                while not connection.headers_done:
                    if connection.error is not None:
                        raise connection.error
                    await connection.wait(timeouts.read)
            except ConnectionBroken:
                self._discard(connection)
                # A pooled connection the origin closed while it was idle (the others likely
                # too, after a restart): once more, on a new connection.
                if reused and not connection.head_received and attempt == 0:
                    for stale in self.idle.pop(key, []):
                        stale.close()
                    continue
                raise
            except BaseException:
                self._discard(connection)
                raise
            return Response(self, connection, timeouts.read)
        raise AssertionError("unreachable")

    async def _acquire(self, key: tuple[str, str, int],
                       timeout: float) -> tuple[_Connection, bool]:
        async with asyncio.timeout(timeout):
            place = self.places.get(key)
            if place is None:
                place = self.places[key] = asyncio.Semaphore(PER_HOST)
            await place.acquire()
            try:
                await self.total.acquire()
            except BaseException:
                place.release()
                raise
            try:
                idle = self.idle.get(key)
                now = time.monotonic()
                while idle:
                    connection = idle.pop()
                    if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                        return connection, True
                    connection.close()
                return await self._connect(key, timeout), False
            except BaseException:
                self.total.release()
                place.release()
                raise

    def give_back(self, connection: _Connection) -> None:
        """A finished answer's connection: pooled again, or closed."""
        if connection.fit_for_reuse():
            connection.busy = False
            connection.idle_since = time.monotonic()
            self.idle.setdefault(connection.key, []).append(connection)
        else:
            connection.close()
        self._free(connection.key)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._free(connection.key)

    def _free(self, key: tuple[str, str, int]) -> None:
        self.total.release()
        self.places[key].release()

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self.tls is None:
                self.tls = ssl.create_default_context()
            tls = self.tls
        failure: OSError | None = None
        addresses = await self._addresses(host, port)
        # With several addresses (IPv6 and IPv4, say), one that does not answer must not use
        # up the whole connect timeout: each gets a share of it, at least a quarter second.
        share = max(ATTEMPT_MINIMUM, timeout / len(addresses)) if len(addresses) > 1 else None
        for family, address in addresses:
            if self.guard:
                reason = network.blocked_reason(str(address[0]))
                if reason:  # never connected to, whatever a resolver said before
                    raise network.BlockedAddressError(
                        f"connecting to a forbidden address: {reason}")
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                async with asyncio.timeout(share):
                    await loop.sock_connect(sock, address)
                    _, connection = await loop.create_connection(
                        lambda: _Connection(key), sock=sock, ssl=tls,
                        server_hostname=host if tls is not None else None)
            except OSError as exc:  # TimeoutError too: this address's share is used up
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            return connection
        raise failure or OSError(f"no address for {host}")

    async def _addresses(self, host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
        """The addresses to try, those the guard forbids left out (an error when none is left)."""
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            address: tuple[object, ...] = (host, port, 0, 0) if literal.version == 6 else (
                host, port)
            return [(family, address)]
        cached = self.names.get((host, port))
        if cached is not None and time.monotonic() - cached[0] < DNS_TTL:
            return cached[1]
        answers = await (self.resolver or _system_resolver)(host, port)
        allowed = answers
        if self.guard:
            allowed = [a for a in answers if network.blocked_reason(str(a[1][0])) is None]
            if not allowed:
                reason = (network.blocked_reason(str(answers[0][1][0])) if answers
                          else "no address")
                raise network.BlockedAddressError(
                    f"{host} resolves to a forbidden address: {reason}")
        self.names.put((host, port), (time.monotonic(), allowed))
        return allowed

    def close(self) -> None:
        """Close every pooled connection."""
        for idle in self.idle.values():
            for connection in idle:
                connection.close()
        self.idle.clear()


async def _system_resolver(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _, _, _, address in infos]


def _request(url: URL, headers: dict[str, str]) -> bytes:
    """The request's bytes; a field with a line break in it is refused (header injection).

    The fields are what aiohttp sent before (Host, the caller's, Accept), and the URL's user
    and password become Basic credentials as they did there."""
    lines = [f"GET {url.raw_path_qs or '/'} HTTP/1.1"]
    names = {name.lower() for name in headers}
    if "host" not in names:
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        lines.append(f"Host: {host}" if url.is_default_port() else f"Host: {host}:{url.port}")
    if url.raw_user is not None and "authorization" not in names:  # https://user:pass@host
        token = base64.b64encode(f"{url.user}:{url.password or ''}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0"):
            raise ValueError(f"a line break in the {name} header")
        lines.append(f"{name}: {value}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
