"""The HTTP server: uvicorn's httptools protocol, with hot answers written in place.

For a request the delivery path has already answered plainly from memory
(`delivery/hot.py`), the protocol writes the stored response as soon as the headers are
parsed: no ASGI task, scope or awaits. Everything else (a body, pipelining behind a request
still running, HTTP/1.0, a paused transport) takes uvicorn's ordinary path; with an access
log, uvicorn's own protocol serves every request.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pixelport.app import App
from pixelport.delivery.hot import HotAnswers


class _Answered:
    """Stands in for uvicorn's request cycle once a hot answer has been written."""

    response_complete = True
    keep_alive = True
    message_event = asyncio.Event()


_ANSWERED = _Answered()


def hot_protocol(hot: HotAnswers) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, answering from `hot` where it can."""
    prefix = os.urandom(4).hex().encode()
    counter = itertools.count()
    status_200 = STATUS_LINE[200]

    class HotProtocol(HttpToolsProtocol):
        # uvicorn's default headers (a new list every second, for Date), and their bytes.
        default_headers: list[tuple[bytes, bytes]] | None = None
        default_lines = b""

        def on_headers_complete(self) -> None:
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
            self.cycle = _ANSWERED  # type: ignore[assignment]
            self.server_state.total_requests += 1
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

    return HotProtocol


def uvicorn_config(app: App, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for pixelport (tests use the same)."""
    options.setdefault("loop", "uvloop")
    options.setdefault("access_log", False)
    protocol: type[HttpToolsProtocol] = HttpToolsProtocol
    # With an access log every request must take ASGI to be logged: uvicorn's own protocol
    # (and the App is made without hot answers, which nothing would read).
    if app.hot is not None and not options["access_log"]:
        protocol = hot_protocol(app.hot)
    return uvicorn.Config(app, host=host, port=port, http=protocol, lifespan="on",
                          server_header=False, **options)


# Python's default is 5 ms. A render thread returning from libvips or the JPEG decoder
# waits for the event loop to give the GIL back, up to that long; at 0.5 ms one process kept
# 2-7 % more of the cores busy on `small`, in 13 of 13 interleaved pairs (docs/performance.md,
# eighth round).
GIL_SWITCH_INTERVAL = 0.0005


def run(app: App, host: str, port: int, log_level: str, access_log: bool,
        sock: socket.socket | None = None) -> None:
    """Serve until SIGINT/SIGTERM, on `sock` if given (a worker's), else on host:port."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    config = uvicorn_config(app, host, port, log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=15)
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)
