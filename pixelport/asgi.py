"""ASGI's types and the send helpers of every layer that answers HTTP (delivery, API, deadline).

The one low-level module for them, as Starlette's `types.py`: lower layers (security's API gate
and request deadline) answer requests too, and must not import the delivery package to do so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Delivered:
    """A delivery answer collected in-process (`App.deliver`); body None when too large."""

    status: int
    headers: dict[str, str]
    body: bytes | None


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
