"""Turning a cached or fresh entry into a response: validators, 304, ranges, timing."""

from __future__ import annotations

from urllib.parse import quote

from pixelport.asgi import Send, send_bytes
from pixelport.cache.entry import Entry
from pixelport.delivery.http import not_modified
from pixelport.http_fields import parse_range
from pixelport.origins.http import parse_http_date


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
                     head: bool) -> tuple[int, dict[str, str]]:
    """Answer with `entry`: 200, 304 or 206/416; returns the status and headers sent."""
    headers = dict(entry.headers)
    headers.pop("x-private", None)  # internal marker, not for clients
    headers["etag"] = entry.etag
    headers["cache-control"] = f"public, max-age={max_age}"
    headers["server-timing"] = timing.header()
    headers["x-request-id"] = request_id
    if attachment_name is not None:
        headers["content-disposition"] = attachment(attachment_name)
    conditional = "if-none-match" in request_headers or "if-modified-since" in request_headers
    if conditional and not_modified(request_headers, entry.etag,
                                    parse_http_date(headers.get("last-modified"))):
        await send_bytes(send, 304, headers, b"", head=True)
        return 304, headers
    body = entry.body
    status = 200
    if "accept-ranges" in headers and "range" in request_headers:
        wanted = parse_range(request_headers["range"], len(body))
        if wanted is False:
            headers["content-range"] = f"bytes */{len(body)}"
            await send_bytes(send, 416, headers, b"", head)
            return 416, headers
        if isinstance(wanted, tuple):
            first, last = wanted
            status = 206
            headers["content-range"] = f"bytes {first}-{last}/{len(body)}"
            body = body[first:last + 1]
    await send_bytes(send, status, headers, body, head)
    return status, headers


def attachment(path: str) -> str:
    """Content-Disposition for ik-attachment=true, with an RFC 6266 UTF-8 file name."""
    name = path.rsplit("/", 1)[-1]
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
