"""Where the library keeps file bytes: a small interface, and a local folder behind it (a
bucket in bucket.py).

Keys are paths relative to the storage root. Bytes uploaded through the API go to new,
never-reused keys under `.pixelport/blobs/` (one per version), written to a temporary file
first and renamed into place complete (after fsync): a key that exists always holds a whole
file, and nothing is ever written over. Files already in the folder keep their own path as key
(`pixelport library scan`). A blob whose database row never committed (a crash between the
two) is an orphan; `sweep` deletes those older than an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from pixelport.origins.base import Origin
from pixelport.origins.library import LibraryOrigin
from pixelport.security.paths import resolve_under

INTERNAL = ".pixelport"  # never served by path, never indexed
BLOBS = f"{INTERNAL}/blobs"
TEMPORARY = f"{INTERNAL}/partial"  # uploads being received
CHUNK = 1024 * 1024


class Storage(Protocol):
    """File bytes by key: a local folder (`[library] dir`) or a bucket (bucket.py)."""

    def temporary(self) -> Path:
        """A new local temporary file's path, for an upload being received."""

    def new_key(self, name: str) -> str:
        """A key never used before, ending with (a safe form of) `name`."""

    async def put(self, source: Path | bytes, key: str) -> None:
        """Store bytes, or a local file's, under a new key, durably (a file of `temporary()`
        is consumed)."""

    def readable(self, key: str) -> contextlib.AbstractAsyncContextManager[Path | None]:
        """The key's bytes as a local file for the time of the block (None: missing)."""

    def keys(self) -> AsyncIterator[tuple[str, int]]:
        """Every stored file's key and size, internals excluded (`library scan`)."""

    async def delete(self, key: str) -> None:
        """Remove `key`'s bytes (nothing when already gone)."""

    async def sweep(self, referenced: Iterable[str], older_than: float) -> int:
        """Delete stored blobs not in `referenced` and older than `older_than` seconds."""

    def origin(self) -> Origin:
        """What serves the stored keys by path (the library origin's reader)."""

    async def check(self) -> None:
        """`/readyz`: raise when the storage does not answer."""

    async def aclose(self) -> None:
        """Release connections."""


class FolderStorage:
    """The library's bytes in a local folder (`[library] dir`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / TEMPORARY
        self.folders: set[Path] = set()  # blob folders known to exist

    def temporary(self) -> Path:
        """A new temporary file's path on the storage's file system (renames stay atomic)."""
        if not self.tmp.is_dir():  # a stat, not a failing mkdir, for every upload
            self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{secrets.token_hex(16)}.part"

    def new_key(self, name: str) -> str:
        """A new blob key: one of 256 folders, 24 random hex digits, the name's tail."""
        return f"{BLOBS}/{secrets.token_hex(1)}/{secrets.token_hex(12)}-{_safe_tail(name)}"

    def write(self, source: Path | bytes, key: str) -> None:
        """Write bytes, or copy a file (move one of `temporary()`'s), to `key`: complete and
        fsynced before the rename that makes the key exist (blocking)."""
        self._put(source, self.root / key)

    def _put(self, source: Path | bytes, target: Path) -> None:
        if isinstance(source, Path) and source.parent == self.tmp:
            _fsync_file(source)
            self._into_place(source, target)
        else:
            partial = self.temporary()
            try:
                with partial.open("wb") as writer:
                    if isinstance(source, bytes):
                        writer.write(source)
                    else:
                        with source.open("rb") as reader:
                            shutil.copyfileobj(reader, writer, CHUNK)
                    writer.flush()
                    os.fsync(writer.fileno())
                self._into_place(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        _fsync_dir(target.parent)

    def _into_place(self, complete: Path, target: Path) -> None:
        """Rename a complete file to its key, making the key's folder the first time."""
        if target.parent not in self.folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.folders.add(target.parent)
        try:
            os.replace(complete, target)
        except FileNotFoundError:  # the folder was removed behind our back
            if not complete.exists():
                raise
            self.folders.discard(target.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(complete, target)

    async def put(self, source: Path | bytes, key: str) -> None:
        """`write` in a thread."""
        await asyncio.to_thread(self.write, source, key)

    def local_path(self, key: str) -> Path | None:
        """The key's file, when it lies inside the root."""
        return resolve_under(self.root, key)

    @contextlib.asynccontextmanager
    async def readable(self, key: str) -> AsyncIterator[Path | None]:
        """The key's own file (None when it is not a file inside the root)."""
        path = self.local_path(key)
        yield path if path is not None and await asyncio.to_thread(path.is_file) else None

    async def keys(self) -> AsyncIterator[tuple[str, int]]:
        """The regular files under the root, internals excluded, sorted by folder."""
        found = await asyncio.to_thread(lambda: list(library_files(self.root)))
        for key, size in found:
            yield key, size

    async def delete(self, key: str) -> None:
        """Remove a key's file."""
        path = resolve_under(self.root, key)
        if path is not None:
            await asyncio.to_thread(path.unlink, True)

    async def sweep(self, referenced: Iterable[str], older_than: float) -> int:
        """Delete orphaned blobs and abandoned temporary files."""
        keep = set(referenced)
        return await asyncio.to_thread(self._sweep, keep, time.time() - older_than)

    def _sweep(self, keep: set[str], before: float) -> int:
        removed = 0
        for path in [*self.walk(self.root / BLOBS), *self.walk(self.tmp)]:
            key = path.relative_to(self.root).as_posix()
            try:
                if key not in keep and path.stat().st_mtime < before:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    @staticmethod
    def walk(folder: Path) -> Iterator[Path]:
        """The files under `folder`, at any depth."""
        if folder.is_dir():
            yield from (path for path in folder.rglob("*") if path.is_file())

    def origin(self) -> Origin:
        """The folder read as the library origin."""
        return LibraryOrigin(self.root)

    async def check(self) -> None:
        """`/readyz`: the folder is there."""
        if not await asyncio.to_thread(self.root.is_dir):
            raise RuntimeError(f"the library folder {self.root} is missing")

    async def aclose(self) -> None:
        """Nothing to release."""


def library_files(root: Path) -> Iterator[tuple[str, int]]:
    """Keys (relative paths) and sizes of the regular files under `root`, internals
    excluded."""
    for folder, subfolders, files in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        if relative == ".":
            subfolders[:] = [s for s in subfolders if s != INTERNAL]
            relative = ""
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            with contextlib.suppress(FileNotFoundError):
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    yield (f"{relative}/{name}" if relative else name), info.st_size


async def read_chunks(handle: BinaryIO, remaining: int) -> AsyncIterator[bytes]:
    """A file's bytes in chunks, read in a thread."""
    while remaining > 0:
        chunk = await asyncio.to_thread(handle.read, min(256 * 1024, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _safe_tail(name: str) -> str:
    tail = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-80:]
    return tail or "file"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the folder's entry is; a crash before leaves no key.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
