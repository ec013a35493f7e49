"""Small HTTP pieces for the delivery path: conditional requests, ranges, ASGI sending."""

from __future__ import annotations

import email.utils
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@functools.lru_cache(maxsize=4096)
def http_date(moment: datetime) -> str:
    """An IMF-fixdate (memoised: an original's date is formatted for each of its variants)."""
    return email.utils.format_datetime(moment, usegmt=True)


def not_modified(headers: dict[str, str], etag: str | None, last_modified: datetime | None) -> bool:
    """Whether If-None-Match / If-Modified-Since let us answer 304 (RFC 9110 §13.2.2)."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if etag is None:
            return False
        wanted = _opaque(etag)
        return any(tag.strip() == "*" or _opaque(tag) == wanted for tag in inm.split(","))
    ims = headers.get("if-modified-since")
    if ims and last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return last_modified.replace(microsecond=0) <= since
    return False


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag  # weak comparison for If-None-Match


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as (first, last) inclusive; None: ignore; False: unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, sep, last_text = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first_text == "":
            length = int(last_text)
            if length <= 0:
                return False
            return max(0, size - length), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        return False
    if first < 0 or first > last:
        return None
    return first, min(last, size - 1)


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header list; values are latin-1 by HTTP's rules."""
    return [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


async def send_bytes(send: Send, status: int, headers: dict[str, str], body: bytes,
                     head: bool = False) -> None:
    """Send a complete response."""
    if status != 304:
        headers.setdefault("content-length", str(len(body)))
    await send({"type": "http.response.start", "status": status,
                "headers": encode_headers(headers)})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_stream(send: Send, status: int, headers: dict[str, str],
                      chunks: AsyncIterator[bytes], head: bool = False) -> None:
    """Send a streamed response."""
    await send({"type": "http.response.start", "status": status,
                "headers": encode_headers(headers)})
    if not head:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
