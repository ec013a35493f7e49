"""The disk tier: one file per entry, written atomically, LRU-evicted under a byte budget.

Writes go to a temporary file in the same folder and are renamed into place, so a crash
never leaves a half entry under a real name; leftovers are deleted at start-up. Every read
verifies the entry's checksum; a corrupt file is deleted and reads as a miss. The index (key →
size, endpoint, path) lives in memory and is rebuilt from the files at start-up, oldest
access first. All file work runs in threads, never on the event loop, with as few system
calls as it takes (each one hands the GIL back and forth). A write is announced (`begin`),
made (`write_file` in the calling thread, as a render thread does, or `write` in a thread of the
tier's own) and accounted (`finish`), or called off (`abandon`); the index is kept on the event
loop.

Several worker processes (`[server] workers`) share one folder: each indexes, evicts and
purges the entries it wrote (at start-up, its part of the keys) within its share of the
budget, and reads any entry, its own or another's. A worker restarted after a crash indexes
every entry, as it cannot tell which of them its previous run wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pixelport.cache.entry import BodyFile, CorruptEntry, Entry, read_header
from pixelport.cache.pathindex import PathIndex
from pixelport.cache.purgelog import PurgeLog
from pixelport.place import ALONE, Place, alive
from pixelport.threadnames import namer

log = logging.getLogger("pixelport.cache")
SUFFIX = ".entry"
HEAD_BYTES = 64 * 1024


@dataclass
class Ticket:
    """One write under way (`DiskTier.begin`)."""

    key: str
    started: int  # the purge count when it began
    size: int | None = None  # the file's, once written


@dataclass
class Indexed:
    """What the index knows of a file."""

    size: int
    endpoint: str
    path: str


class DiskTier:
    """Entries under `root`, at most `capacity` bytes."""

    def __init__(self, root: Path, capacity: int, place: Place = ALONE) -> None:
        """`place`: this worker among those sharing `root`."""
        self.root = root
        self.capacity = capacity
        self.place = place
        self.used = 0
        self.index: OrderedDict[str, Indexed] = OrderedDict()
        self.paths = PathIndex()  # the index's keys by path
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="pixelport-cache",
                                         initializer=namer("pp-cache"))
        self.folders: set[Path] = set()  # fan-out folders known to exist
        self.names = itertools.count()
        self.pending: dict[str, Entry] = {}  # being written: readable already
        self.log = PurgeLog()  # purges a write begun before them must not undo

    def file(self, key: str) -> Path:
        """Where an entry lives: in one of 256 folders.

        Filesystems index large folders (10 GB of 20 KB results is 2,000 files a folder);
        two levels (65,536 folders) made most writes to a new cache create a folder as well,
        which tripled the cost of a write on ext4.
        """
        return self.root / key[:2] / (key + SUFFIX)

    def load_index(self) -> None:
        """Rebuild the index from the files (blocking: run in a thread at start-up)."""
        self.root.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, Indexed]] = []
        emptied: set[Path] = set()
        for path in list(self.root.rglob("*")):
            if not path.is_file():
                continue
            if path.parent.parent != self.root:
                emptied.add(path.parent)  # a folder of an earlier version's layout
            if path.name.startswith(".tmp-"):
                if _abandoned(path.name):
                    path.unlink(missing_ok=True)  # a write interrupted by a crash
                continue
            if not path.name.endswith(SUFFIX) or not self._mine(path.name):
                continue
            try:
                info = path.stat()
                with path.open("rb") as handle:
                    endpoint, file_path, _ = read_header(handle.read(HEAD_BYTES))
            except (OSError, CorruptEntry):
                path.unlink(missing_ok=True)
                continue
            key = path.name.removesuffix(SUFFIX)
            target = self.file(key)
            # Written in an earlier version's folder layout: moved, unless the same entry
            # was written again since (then that copy counts, once).
            if path != target and (target.exists() or not self._move(path, target)):
                path.unlink(missing_ok=True)
                continue
            found.append((info.st_atime, key, Indexed(info.st_size, endpoint, file_path)))
        for _, key, indexed in sorted(found):
            self._forget(key)
            self._add(key, indexed)
        self._unlink_all(self._evict())
        for folder in emptied:  # empty now, unless something else is in it
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _mine(self, name: str) -> bool:
        """Whether this worker indexes the entry at start-up."""
        place = self.place
        if place.alone or place.restarted:
            return True
        try:
            return int(name[:8], 16) % place.count == place.index
        except ValueError:
            return place.index == 0

    @staticmethod
    def _move(path: Path, target: Path) -> bool:
        """Move a file to `target`; False if it cannot be."""
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError:
            return False
        return True

    async def get(self, key: str) -> Entry | None:
        """Read and verify an entry; a corrupt one is deleted."""
        pending = self.pending.get(key)
        if pending is not None:
            return pending
        if key in self.index:
            self.index.move_to_end(key)
        elif self.place.alone:
            return None
        try:
            return await asyncio.to_thread(self._read, key)
        except FileNotFoundError:
            self._forget(key)  # or another worker's entry, or none
            return None
        except (OSError, CorruptEntry) as exc:
            log.warning("cache entry %s unreadable (%s): dropped", key, exc)
            self._forget(key)
            await asyncio.to_thread(self.file(key).unlink, True)
            return None

    def _read(self, key: str) -> Entry:
        path = self.file(key)
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
            streamed = Entry.decode_streamed(head, path, os.fstat(handle.fileno()).st_size)
            entry = streamed or Entry.decode(head + handle.read())
        with contextlib.suppress(OSError):
            os.utime(path)  # recency survives a restart
        return entry

    async def put(self, key: str, entry: Entry) -> None:
        """Write atomically, then account and evict."""
        await self.write(self.begin(key), entry)

    def write(self, ticket: Ticket, entry: Entry) -> asyncio.Future[None]:
        """The write `ticket` announced, as a task in the writer thread, the entry readable
        (`get`) from this call on rather than from the task's first step: a request right
        behind finds it."""
        self.pending[ticket.key] = entry
        return asyncio.ensure_future(self._written(ticket, entry))

    async def _written(self, ticket: Ticket, entry: Entry) -> None:
        try:
            # Encoding checksums the body: in the thread too, off the event loop.
            await asyncio.get_running_loop().run_in_executor(
                self.writer, self.write_file, ticket, entry)
        finally:
            if self.pending.get(ticket.key) is entry:
                del self.pending[ticket.key]
        await self.finish(ticket, entry)

    def begin(self, key: str) -> Ticket:
        """Announce a write of `key` (made by `write_file`, in any thread); every `begin` is
        followed by `finish` or `abandon`.

        Purges made from now until `finish` are remembered: a file written after a purge that
        matches it must not stay.
        """
        return Ticket(key, self.log.begin())

    def write_file(self, ticket: Ticket, entry: Entry) -> None:
        """Write the entry's file atomically (blocking; any thread). A failure is logged and
        leaves no file: the entry is still served, only not cached."""
        if entry.length > self.capacity:
            return
        try:
            ticket.size = self._write(ticket.key, entry)
        except OSError as exc:
            log.warning("cache write for %s failed: %s", ticket.key, exc)

    def abandon(self, ticket: Ticket) -> None:
        """A write announced by `begin` that will not be made."""
        self.log.end(ticket.started)

    async def finish(self, ticket: Ticket, entry: Entry) -> None:
        """Account a file `write_file` wrote: indexed and the budget kept, or deleted again
        when a purge since `begin` matched it."""
        purged = self._purged(ticket, entry)
        self.abandon(ticket)
        key, size = ticket.key, ticket.size
        if size is None:
            return
        if purged:
            await asyncio.to_thread(self.file(key).unlink, True)
            return
        self._forget(key)
        self._add(key, Indexed(size, entry.endpoint, entry.path))
        doomed = self._evict()
        if doomed:
            await asyncio.to_thread(self._unlink_all, doomed)

    def _purged(self, ticket: Ticket, entry: Entry) -> bool:
        """Whether a purge made since `begin` matches the entry."""
        return self.log.purged(ticket.started, entry.endpoint, entry.path)

    def _write(self, key: str, entry: Entry) -> int:
        head = entry.head()
        target = self.file(key)
        folder = target.parent
        temporary = folder / f".tmp-{os.getpid()}-{next(self.names)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        if folder not in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
            self.folders.add(folder)
        try:
            fd = os.open(temporary, flags, 0o644)
        except FileNotFoundError:  # the folder was removed behind our back
            self.folders.discard(folder)
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, flags, 0o644)
        try:
            try:
                if entry.body_file is not None:
                    _write_all(fd, [memoryview(head)])
                    _copy_body(entry.body_file, fd)
                else:
                    _write_all(fd, [memoryview(head), memoryview(entry.body)])
            finally:
                os.close(fd)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        if entry.body_file is not None:  # from now on the body is the cache file's
            entry.body_file = BodyFile(target, len(head), entry.body_file.length)
        return len(head) + entry.length

    def close(self) -> None:
        """Stop the writer thread once its writes are done."""
        self.writer.shutdown(wait=True)

    def _evict(self) -> list[str]:
        doomed: list[str] = []
        while self.used > self.capacity and self.index:
            key, indexed = self.index.popitem(last=False)
            self.paths.discard(indexed.path, key)
            self.used -= indexed.size
            doomed.append(key)
        return doomed

    def _unlink_all(self, keys: list[str]) -> None:
        for key in keys:
            self.file(key).unlink(missing_ok=True)

    def _add(self, key: str, indexed: Indexed) -> None:
        self.index[key] = indexed
        self.paths.add(indexed.path, key)
        self.used += indexed.size

    def _forget(self, key: str) -> None:
        old = self.index.pop(key, None)
        if old is not None:
            self.paths.discard(old.path, key)
            self.used -= old.size

    async def purge(self, matches: Callable[[str, str], bool],
                    paths: Collection[str] | None = None) -> int:
        """Delete every entry whose (endpoint, path) matches; returns how many. `paths`, when
        given, holds every path `matches` can match (looked up, not scanned for)."""
        if self.log.open:
            self.log.record(matches)
            for key in [k for k, e in self.pending.items() if matches(e.endpoint, e.path)]:
                del self.pending[key]
        candidates = list(self.index) if paths is None else self.paths.keys_of(paths)
        doomed = [k for k in candidates
                  if (i := self.index.get(k)) is not None and matches(i.endpoint, i.path)]
        for key in doomed:
            self._forget(key)
        if doomed:  # a library upload purges its new path: mostly nothing is cached
            await asyncio.to_thread(self._unlink_all, doomed)
        return len(doomed)


def _write_all(fd: int, parts: list[memoryview]) -> None:
    """Write every byte of `parts` (writev may write fewer)."""
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts[0])
            parts.pop(0)
        if parts:
            parts[0] = parts[0][written:]


def _copy_body(body: BodyFile, fd: int) -> None:
    """Append a body kept in a file to `fd`, in the kernel where it can."""
    with body.path.open("rb") as source:
        offset, left = body.offset, body.length
        while left > 0:
            copied = os.sendfile(fd, source.fileno(), offset, min(left, 1 << 30))
            if copied == 0:
                raise OSError(f"{body.path} is shorter than its entry says")
            offset += copied
            left -= copied


def _abandoned(name: str) -> bool:
    """Whether a temporary file's writer (`.tmp-<pid>-<n>`) is gone: a crash left it."""
    try:
        pid = int(name.split("-")[1])
    except (IndexError, ValueError):
        return True
    return pid == os.getpid() or not alive(pid)  # mine: from an earlier run with this pid
