"""The HTTP server: uvicorn's httptools protocol, guarded, with hot answers written in place.

Guards (`GuardedProtocol`): a request line and headers over 64 KiB are answered 431 and the
connection closed (httptools would buffer them without bound); a head still incomplete
`request_head_timeout` seconds after the connection opened or the request began is answered
408 and closed; connections past `max_connections` are closed at once. Each keeps half-sent
requests from holding the process's memory and file descriptors.

For a request the delivery path has already answered plainly from memory
(`delivery/hot.py`), the protocol writes the stored response as soon as the headers are
parsed: no ASGI task, scope or awaits. Everything else (a body, pipelining behind a request
still running, HTTP/1.0, a paused transport) takes uvicorn's ordinary path; with uvicorn's
text access log, every request does (JSON access lines keep hot answers: pixelport.accesslog).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pixelport.accesslog import AccessLog
from pixelport.app import App
from pixelport.delivery.hot import HotAnswers
from pixelport.tracing import Tracing

# Told of each hot answer: (target, request id, headers, client, body size).
Observer = Callable[[bytes, bytes, Any, tuple[str, int] | None, int], None]


class _Answered:
    """Stands in for uvicorn's request cycle once a hot answer has been written."""

    response_complete = True
    keep_alive = True
    message_event = asyncio.Event()


_ANSWERED = _Answered()


MAX_HEAD = 64 * 1024  # bytes of request line and headers
LINGER = 1.0  # seconds a refused connection's further bytes are read and dropped
FD_RESERVE = 256  # descriptors kept for origin connections, cache files, the run folder


def connection_budget() -> int:
    """How many client connections this process can hold: its descriptor limit (raised to
    the hard limit, 65536 at most, where it is lower) less a reserve for everything else."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    except (ValueError, OSError):
        return 1 << 20
    return max(16, (65536 if soft == resource.RLIM_INFINITY else soft) - FD_RESERVE)


def _refusal(status: bytes, message: bytes) -> bytes:
    return (b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, len(message), message))


TOO_LARGE = _refusal(b"431 Request Header Fields Too Large",
                     b"The request line and headers exceed 64 KiB")
TOO_SLOW = _refusal(b"408 Request Timeout", b"The request head did not arrive in time")
TOO_MANY = _refusal(b"503 Service Unavailable", b"Too many connections")


def guarded_protocol(head_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the guards of this module's docstring."""

    class GuardedProtocol(HttpToolsProtocol):
        head_done = False  # the current request's head has been parsed
        head_bytes = 0  # bytes received since the current head began
        head_timer: asyncio.TimerHandle | None = None
        refused = False
        heads = 0  # request heads parsed on this connection

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._refuse(TOO_MANY)
                return
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return  # read and dropped until the connection closes (see _refuse)
            if self.head_done:
                super().data_received(data)
                return
            self.head_bytes += len(data)
            heads = self.heads
            super().data_received(data)
            if (self.head_done or self.heads != heads or self.parser is None
                    or self.refused):
                return  # a head completed in this read (its message may be complete too)
            if self.head_bytes > MAX_HEAD:
                self._refuse(TOO_LARGE)
            elif self.head_timer is None:
                # A keep-alive connection's next head arrived in part: from now it has
                # request_head_timeout. A whole head in one read (nearly every request) needs
                # no timer at all, which keeps a call_later and a cancel off the hot path.
                self._start_head_timer()

        def on_headers_complete(self) -> None:
            self.head_done = True
            self.heads += 1
            self._stop_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.head_done, self.head_bytes = False, 0  # what follows is the next head

        def _start_head_timer(self) -> None:
            self.head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_timed_out(self) -> None:
            self.head_timer = None
            if self.head_done or self.transport.is_closing():
                return
            # Idle between requests: uvicorn's keep-alive timeout governs (close quietly).
            self._refuse(TOO_SLOW if self.head_bytes else b"")

        def _refuse(self, answer: bytes) -> None:
            """Answer and close. Closing a socket with unread bytes in it resets the
            connection, and the client may then lose the answer: send it, end our side, and
            drop what still arrives for a moment before closing."""
            self._stop_head_timer()
            transport = self.transport
            if self.refused or transport.is_closing():
                return
            self.refused = True
            if not answer:
                transport.close()
                return
            transport.write(answer)
            if transport.can_write_eof():
                transport.write_eof()
            self.loop.call_later(LINGER, transport.close)

    return GuardedProtocol


def hot_protocol(hot: HotAnswers, base: type[HttpToolsProtocol],
                 access: AccessLog | None = None,
                 tracing: Tracing | None = None) -> type[HttpToolsProtocol]:
    """`base` (a guarded protocol), answering from `hot` where it can (`access`: writing
    each hot answer's JSON access line; `tracing`: its span)."""
    # Who is told of each hot answer, decided once: with neither, the answer does no more.
    told: list[Observer] = [tell for tell in (access.hot if access is not None else None,
                                              tracing.hot if tracing is not None else None)
                            if tell is not None]

    def both(*answer: Any) -> None:
        for tell in told:
            tell(*answer)

    observe: Observer | None = (None if not told else told[0] if len(told) == 1 else both)
    prefix = os.urandom(4).hex().encode()
    counter = itertools.count()
    status_200 = STATUS_LINE[200]

    class HotProtocol(base):  # type: ignore[valid-type,misc]
        # uvicorn's default headers (a new list every second, for Date), and their bytes.
        default_headers: list[tuple[bytes, bytes]] | None = None
        default_lines = b""

        def on_headers_complete(self) -> None:
            self.head_done = True
            self.heads += 1
            self._stop_head_timer()
            cycle = self.cycle
            if ((cycle is None or cycle.response_complete) and not self.pipeline
                    and not self.flow.write_paused
                    and self.parser.get_http_version() == "1.1"
                    and self.parser.should_keep_alive()):
                answer = hot.lookup(self.parser.get_method(), self.url, self.headers)
                if answer is not None:
                    self._write_hot(*answer)
                    return
            super().on_headers_complete()

        def _write_hot(self, head: bytes, body: bytes) -> None:
            current = self.server_state.default_headers
            if HotProtocol.default_headers is not current:
                HotProtocol.default_headers = current
                HotProtocol.default_lines = b"".join(b"%s: %s\r\n" % pair for pair in current)
            request_id = b"%s%08x" % (prefix, next(counter) & 0xFFFFFFFF)
            lines = (status_200, HotProtocol.default_lines, head, b"x-request-id: ", request_id,
                     b"\r\n\r\n")
            if len(body) <= 65536:  # one write; past that, copying costs more than a write
                self.transport.write(b"".join((*lines, body)))
            else:
                self.transport.write(b"".join(lines))
                self.transport.write(body)
            if observe is not None:
                observe(self.url, request_id, self.headers, self.client, len(body))
            self.cycle = _ANSWERED
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

    return HotProtocol


def uvicorn_config(app: App, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for pixelport (tests use the same)."""
    options.setdefault("loop", "uvloop")
    options.setdefault("access_log", False)
    server = app.config.server
    protocol = guarded_protocol(server.request_head_timeout,
                                min(server.max_connections, connection_budget()))
    # With uvicorn's access log every request must take ASGI to be logged (and the App is
    # made without hot answers, which nothing would read); JSON access lines keep them.
    if app.hot is not None and not options["access_log"]:
        protocol = hot_protocol(app.hot, protocol, app.access, app.tracing)
    if app.config.server.log_format == "json":
        options.setdefault("log_config", None)  # uvicorn's lines go to the JSON handler too
    return uvicorn.Config(app, host=host, port=port, http=protocol, lifespan="on",
                          server_header=False, **options)


# Python's default is 5 ms. A render thread returning from libvips or the JPEG decoder
# waits for the event loop to give the GIL back, up to that long; at 0.5 ms one process kept
# 2-7 % more of the cores busy on `small`, in 13 of 13 interleaved pairs (docs/performance.md,
# eighth round).
GIL_SWITCH_INTERVAL = 0.0005


GRACE = 15.0  # seconds requests in flight have after SIGTERM (README, "Shutdown")
DRAIN = GRACE - 5.0  # renders must end by then, so their requests are answered within GRACE
# (what libvips cannot interrupt, the tile under way, has the rest)


class Server(uvicorn.Server):
    """uvicorn's server, telling the app when shutting down begins."""

    def __init__(self, config: uvicorn.Config, app: App) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Give renders under way DRAIN seconds, then wait for requests as uvicorn does."""
        self.app.drain(DRAIN)
        await super().shutdown(sockets)


def run(app: App, host: str, port: int, log_level: str, access_log: bool,
        sock: socket.socket | None = None) -> None:
    """Serve until SIGINT/SIGTERM, on `sock` if given (a worker's), else on host:port."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    config = uvicorn_config(app, host, port, log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=GRACE)
    Server(config, app).run(sockets=[sock] if sock is not None else None)
