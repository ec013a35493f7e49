"""Turning a cached or fresh entry into a response: validators, 304, ranges, timing."""

from __future__ import annotations

import asyncio
import os
from typing import BinaryIO
from urllib.parse import quote

from pixelport.asgi import Send, encode_headers, send_bytes
from pixelport.cache.entry import Entry
from pixelport.delivery.http import not_modified
from pixelport.http_fields import parse_range
from pixelport.origins.http import parse_http_date
from pixelport.produce.compress import compressible, with_vary

CHUNK = 256 * 1024  # bytes read (in a thread) and sent at a time from a body on disk


class Timing:
    """Server-Timing entries: durations in milliseconds, or a description."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def add(self, name: str, ms: float) -> None:
        """A duration."""
        self.entries.append(f"{name};dur={ms:.1f}")

    def describe(self, name: str, text: str) -> None:
        """A description (cache;desc=hit)."""
        self.entries.append(f"{name};desc={text}")

    def header(self) -> str:
        """The header value."""
        return ", ".join(self.entries)


async def send_entry(send: Send, entry: Entry, request_headers: dict[str, str],
                     timing: Timing, request_id: str, max_age: int, attachment_name: str | None,
                     head: bool, opened: BinaryIO | None = None,
                     encodable: bool = False) -> tuple[int, dict[str, str]]:
    """Answer with `entry`: 200, 304 or 206/416; returns the status and headers sent.
    `opened`: the body's file (`open_body`), for an entry whose body stays on disk;
    `encodable`: other requests for it may be answered with an encoded form of it."""
    headers = dict(entry.headers)
    headers.pop("x-private", None)  # internal marker, not for clients
    headers["etag"] = entry.etag
    headers["cache-control"] = f"public, max-age={max_age}"
    headers["server-timing"] = timing.header()
    headers["x-request-id"] = request_id
    if attachment_name is not None:
        headers["content-disposition"] = attachment(attachment_name)
    if encodable and compressible(entry):
        # Sent as it is (no coding accepted, or a Range), but others get it encoded.
        with_vary(headers, "Accept-Encoding")
    conditional = "if-none-match" in request_headers or "if-modified-since" in request_headers
    if conditional and not_modified(request_headers, entry.etag,
                                    parse_http_date(headers.get("last-modified"))):
        await send_bytes(send, 304, headers, b"", head=True)
        return 304, headers
    length = entry.length
    status, first, last = 200, 0, length - 1
    if ("accept-ranges" in headers and "range" in request_headers
            and _range_applies(request_headers.get("if-range"), entry.etag,
                               headers.get("last-modified"))):
        wanted = parse_range(request_headers["range"], length)
        if wanted is False:
            headers["content-range"] = f"bytes */{length}"
            await send_bytes(send, 416, headers, b"", head)
            return 416, headers
        if isinstance(wanted, tuple):
            first, last = wanted
            status = 206
            headers["content-range"] = f"bytes {first}-{last}/{length}"
    if entry.body_file is not None:
        assert opened is not None, "open_body first"
        await send_file(send, status, headers, opened, entry.body_file.offset + first,
                        last - first + 1, head)
    else:
        body = entry.body if status == 200 else entry.body[first:last + 1]
        await send_bytes(send, status, headers, body, head)
    return status, headers


def _range_applies(if_range: str | None, etag: str, last_modified: str | None) -> bool:
    """Whether a Range is honoured: without If-Range, or when it names this representation
    (its strong ETag or its exact Last-Modified; RFC 9110 §13.1.5). Otherwise the whole
    body is sent: the client's partial copy is of other bytes (an encoded form, say)."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(("\"", "W/")):
        return if_range == etag
    return last_modified is not None and if_range == last_modified


async def open_body(entry: Entry) -> BinaryIO | None:
    """The open file of an entry whose body stays on disk (None: the file is gone, evicted
    or purged since the entry was read: a miss). Open, it reads whole whatever happens."""
    if entry.body_file is None:
        return None
    try:
        return await asyncio.to_thread(entry.body_file.path.open, "rb")
    except FileNotFoundError:
        return None


async def send_file(send: Send, status: int, headers: dict[str, str], handle: BinaryIO,
                    start: int, count: int, head: bool) -> None:
    """Send `count` bytes of an entry's open body file from `start`, a chunk at a time, read
    in a thread: a video is never held whole in memory."""
    headers["content-length"] = str(count)
    await send({"type": "http.response.start", "status": status,
                "headers": encode_headers(headers)})
    if not head:
        position = start
        while count > 0:
            chunk = await asyncio.to_thread(os.pread, handle.fileno(), min(count, CHUNK),
                                            position)
            if not chunk:
                raise OSError("the cached body ended early")
            position += len(chunk)
            count -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": count > 0})
            if count <= 0:
                return
    await send({"type": "http.response.body", "body": b""})


def attachment(path: str) -> str:
    """Content-Disposition for ik-attachment=true, with an RFC 6266 UTF-8 file name."""
    name = path.rsplit("/", 1)[-1]
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
