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

        return Original(
            body=_read_chunks(handle),
            source=self.name,
            content_type=mimetypes.guess_type(target.name)[0],
            size=info.st_size,
            last_modified=datetime.fromtimestamp(int(info.st_mtime), tz=UTC),
            close=close,
        )

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


async def _read_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(handle.read, CHUNK)
        if not chunk:
            return
        yield chunk
