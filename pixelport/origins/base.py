"""The origin protocol: one small async class per storage type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from pixelport.errors import OriginFailed

if TYPE_CHECKING:
    from pixelport.config import Config
    from pixelport.origins.http import HttpClient


@dataclass(frozen=True)
class FetchOptions:
    """What the delivery layer asks of an origin besides the path."""

    host: str | None = None  # the client's Host, for origins that forward it
    byte_range: str | None = None  # a client Range header, passed only for untransformed files
    if_none_match: str | None = None
    if_modified_since: str | None = None
    query: str = ""  # the request's own query parameters, for web origins that forward them
    version: str | None = None  # `ik-obj-version`: a library file's version (others ignore it)

T = TypeVar("T")


async def _no_close() -> None:
    return None


@dataclass
class Original:
    """An original file as an origin answered it; the body is streamed and must be closed."""

    body: AsyncIterator[bytes]
    source: str  # the origin name, "library" for the media library
    content_type: str | None = None
    size: int | None = None  # bytes in this answer, when known
    last_modified: datetime | None = None
    etag: str | None = None
    status: int = 200  # 206 when the origin honoured a Range, 304 when not modified
    content_range: str | None = None
    private: bool = False
    custom_coordinates: str | None = None  # "x,y,w,h" stored with a library upload (fo-custom)
    canonical_url: str | None = None  # sent as Link: <...>; rel="canonical"
    close: Callable[[], Awaitable[None]] = field(default=_no_close)
    # When the whole fetch must be over (event-loop time; set by origins.resilience from the
    # origin's total_timeout): `peek` and `read_upto`, which buffer, stop there. A body sent on
    # as it arrives (`chunks`) goes at the client's pace and is bounded by read_timeout alone.
    deadline: float | None = None
    timeout: float = 0.0  # the total_timeout behind `deadline`, for the message

    _pushed: list[bytes] = field(default_factory=list, repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body from where reading stopped, pushed-back bytes first."""
        while self._pushed:
            yield self._pushed.pop(0)
        async for chunk in self.body:
            if chunk:
                yield chunk

    async def peek(self, count: int) -> bytes:
        """Up to `count` leading bytes, left in place for the next read."""
        return await self._in_time(self._peek(count))

    async def _peek(self, count: int) -> bytes:
        head = b"".join(self._pushed)
        if len(head) < count:
            async for chunk in self.body:
                head += chunk
                if len(head) >= count:
                    break
        self._pushed = [head] if head else []
        return head[:count]

    async def read_upto(self, limit: int) -> tuple[bytes, bool]:
        """Read at most `limit` bytes; the flag says whether that was the whole body.

        When it was not, the bytes read are pushed back so `chunks()` still yields everything.
        """
        if self.size is not None and self.size > limit:
            return b"", False
        return await self._in_time(self._read_upto(limit))

    async def _read_upto(self, limit: int) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                self._pushed = parts
                return b"", False
        return b"".join(parts), True


    async def _in_time(self, read: Coroutine[None, None, T]) -> T:
        """`read` within the whole-fetch deadline; past it, the origin has failed (404)."""
        timeout = asyncio.timeout_at(self.deadline)
        try:
            async with timeout:
                return await read
        except TimeoutError:
            if not timeout.expired():
                raise
            raise OriginFailed(f"origin {self.source!r} timed out: the fetch did not finish "
                               f"within {self.timeout:g} s (total_timeout)") from None


class Origin(Protocol):
    """A read-only source of originals."""

    name: str

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """Return the file at `path`; raise NotFound or another PixelportError."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...


@dataclass(frozen=True)
class Shared:
    """What origin builders may use: the whole config and the process-wide HTTP client."""

    config: Config
    http: HttpClient
