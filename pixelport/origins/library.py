"""The media library: a local folder, always tried before an endpoint's origins."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pixelport.errors import NotFound
from pixelport.http_fields import parse_range
from pixelport.origins.base import FetchOptions, Original
from pixelport.security.paths import resolve_under

CHUNK = 256 * 1024


class LibraryOrigin:
    """Serves files from a folder; never reads outside it."""

    name = "library"

    def __init__(self, root: Path) -> None:
        self.root = root

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """Open the file if it lies inside the library root."""
        target = resolve_under(self.root, path)
        if target is None:
            raise NotFound(f"No file was found in the media library at {path!r}")
        try:
            handle, info = await asyncio.to_thread(_open_regular, target)
        except OSError:
            raise NotFound(f"No file was found in the media library at {path!r}") from None

        async def close() -> None:
            await asyncio.to_thread(handle.close)

        original = Original(
            body=_read_chunks(handle, info.st_size),
            source=self.name,
            content_type=mimetypes.guess_type(target.name)[0],
            size=info.st_size,
            last_modified=datetime.fromtimestamp(int(info.st_mtime), tz=UTC),
            close=close,
        )
        wanted = parse_range(options.byte_range, info.st_size)
        if isinstance(wanted, tuple):
            first, last = wanted
            await asyncio.to_thread(handle.seek, first)
            original.body = _read_chunks(handle, last - first + 1)
            original.status, original.size = 206, last - first + 1
            original.content_range = f"bytes {first}-{last}/{info.st_size}"
        return original

    async def aclose(self) -> None:
        """Nothing pooled."""


def _open_regular(target: Path) -> tuple[BinaryIO, os.stat_result]:
    # O_NOFOLLOW on the last component closes the gap between resolve and open.
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    handle = os.fdopen(fd, "rb")
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise IsADirectoryError(str(target))
    return handle, info


async def _read_chunks(handle: BinaryIO, remaining: int) -> AsyncIterator[bytes]:
    while remaining > 0:
        chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk
