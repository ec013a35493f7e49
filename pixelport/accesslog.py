"""Structured logs: every log line as one JSON object (`[server] log_format = "json"`), and one
access line per request (`--access-log` or `[server] access_log = true`, with JSON).

An access line carries the request's `x-request-id` (the one its answer has; one is added to
answers that have none, the API's and the dashboard's), its endpoint (method, host, target,
route class), status, duration, the Server-Timing `download` and `transformation` times and
cache result, and the ik-error code of an error. Hot answers (`delivery/hot.py`) stay on:
the HTTP protocol writes their line itself (`AccessLog.hot`), with cache "hot" and no
duration (they take microseconds). Access lines are written whatever `--log-level` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from pixelport.asgi import Message, Scope

FLUSH_SECONDS = 0.2  # access lines are written this long after their request at most
FLUSH_LINES = 256  # or once this many are waiting
WORKER: int | None = None  # this worker's number, when there are several (`setup`)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        worker = getattr(record, "worker", None)
        if worker is not None:
            line["worker"] = worker
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)


class AccessLog:
    """Writes the access lines: JSON objects shaped as the formatter's (logger
    `pixelport.access`), buffered and written together at most FLUSH_SECONDS later.

    Not through `logging`: a record, the handler's lock and a write per line cost a hot answer
    (about 15 µs of CPU) twice over again; gathered, the lines cost a `json.dumps` each.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: sys.stderr at each write (where the log handler writes)
        self.pending: list[str] = []
        self.timer: asyncio.TimerHandle | None = None
        self.second = 0
        self.stamp_text = ""

    def stamp(self, message: Message) -> list[tuple[bytes, bytes]]:
        """An answer's headers, given an x-request-id when it has none (in `message` too)."""
        return stamp(message)

    def line(self, scope: Scope, route: str, status: int, seconds: float,
             headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The line of a request answered through ASGI."""
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        path = target.decode("latin-1")
        fields: dict[str, Any] = {
            "request_id": None, "method": scope["method"],
            "host": _host(scope["headers"]), "target": path,
            "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)}
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        for name, value in headers:
            name = name.lower()
            if name == b"x-request-id":
                fields["request_id"] = value.decode("latin-1")
            elif name == b"server-timing":
                fields.update(_timings(value.decode("latin-1")))
            elif name == b"ik-error":
                fields["ik_error"] = value.decode("latin-1").split(" ", 1)[0]
            elif name == b"content-length":
                fields["bytes"] = int(value)
        self.write(f"{scope['method']} {path} {status}", fields)

    def hot(self, target: bytes, request_id: bytes, headers: Iterable[tuple[bytes, bytes]],
            client: tuple[str, int] | None, size: int) -> None:
        """The line of a hot answer (written by the HTTP protocol)."""
        path = target.decode("latin-1")
        fields: dict[str, Any] = {
            "request_id": request_id.decode("ascii"), "method": "GET",
            "host": _host(headers), "target": path, "route": "delivery", "status": 200,
            "cache": "hot", "bytes": size}
        if client:
            fields["client"] = client[0]
        self.write(f"GET {path} 200", fields)

    def write(self, message: str, fields: dict[str, Any]) -> None:
        """Queue one access line."""
        now = time.time()
        second = int(now)
        if second != self.second:  # strftime once a second, not once a line
            self.second = second
            self.stamp_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line: dict[str, Any] = {
            "ts": f"{self.stamp_text}.{int((now - second) * 1000):03d}Z", "level": "info",
            "logger": "pixelport.access", "message": message}
        if WORKER is not None:
            line["worker"] = WORKER
        line.update(fields)
        self.pending.append(json.dumps(line, separators=(",", ":")))
        if len(self.pending) >= FLUSH_LINES:
            self.flush()
        elif self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (a script): at once
                self.flush()

    def flush(self) -> None:
        """Write the lines queued."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.pending:
            return
        text = "\n".join(self.pending) + "\n"
        self.pending.clear()
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stream loses the lines
            stream.write(text)
            stream.flush()


def stamp(message: Message) -> list[tuple[bytes, bytes]]:
    """An answer's headers, given an x-request-id when it has none (in `message` too): the
    handle of a request in access lines and traces."""
    headers = list(message.get("headers", []))
    if not any(name.lower() == b"x-request-id" for name, _ in headers):
        headers.append((b"x-request-id", secrets.token_hex(8).encode()))
        message["headers"] = headers
    return headers


def _host(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"host":
            return value.decode("latin-1")
    return ""


def _timings(header: str) -> dict[str, Any]:
    """Server-Timing's cache result and durations, as access line fields."""
    found: dict[str, Any] = {}
    for entry in header.split(","):
        name, _, param = entry.strip().partition(";")
        key, _, value = param.partition("=")
        if key == "desc" and name == "cache":
            found["cache"] = value
        elif key == "dur":
            try:
                found[f"{name}_ms"] = float(value)
            except ValueError:
                continue
    return found


def setup(level: str, worker: int | None) -> None:
    """Every log line of this process as JSON (`worker`: this worker's number, if several)."""
    global WORKER
    WORKER = worker
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    if worker is not None:
        def add_worker(record: logging.LogRecord) -> bool:
            record.worker = worker
            return True
        handler.addFilter(add_worker)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
