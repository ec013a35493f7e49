"""The result cache: memory in front of disk, with a time to live.

One way in: `begin(key)` announces a result before it is made (before its original is even
fetched), so that a purge made meanwhile wins: the result is then not kept (`DiskTier.finish`).
The `ResultWrite` it returns takes the entry once made, written by the thread that made it
(`write` then `finish`) or, for an entry made on the event loop, by the disk tier's own thread
(`store`); `abandon` when no entry comes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from pathlib import Path

from pixelport.cache.disk import DiskTier, Ticket
from pixelport.cache.entry import Entry
from pixelport.cache.memory import MemoryTier
from pixelport.cache.purgelog import PurgeLog
from pixelport.place import ALONE, Place


class ResultCache:
    """Two tiers; results go to disk, and to memory when asked again."""

    def __init__(self, memory_bytes: int, disk_dir: Path | None, disk_bytes: int,
                 ttl: float, place: Place = ALONE) -> None:
        self.memory = MemoryTier(memory_bytes)
        self.disk = DiskTier(disk_dir, disk_bytes, place) if disk_dir is not None else None
        self.ttl = ttl
        self.writes: set[asyncio.Future[None]] = set()
        self.log = PurgeLog()  # without a disk tier: purges made while results were made

    async def start(self) -> None:
        """Index the disk tier (in a thread)."""
        if self.disk is not None:
            await asyncio.to_thread(self.disk.load_index)

    def get_memory(self, key: str) -> Entry | None:
        """The memory tier alone: no I/O, no await (the hot path)."""
        entry = self.memory.get(key)
        if entry is not None and self._expired(entry):
            self.memory.remove(key)
            return None
        return entry

    async def get(self, key: str) -> Entry | None:
        """Memory, then disk."""
        entry = self.get_memory(key)
        if entry is not None or self.disk is None:
            return entry
        entry = await self.disk.get(key)
        if entry is None:
            return None
        if self._expired(entry):
            return None  # overwritten by the next write
        if entry.body_file is None:  # a body kept on disk is read from there each time
            self.memory.put(key, entry)
        return entry

    def begin(self, key: str) -> ResultWrite:
        """Announce the result for `key`; the write follows, or `abandon`."""
        return ResultWrite(self, key)

    async def close(self) -> None:
        """Finish the disk writes under way and stop the writer (at shutdown)."""
        while self.writes:
            await asyncio.gather(*self.writes, return_exceptions=True)
        if self.disk is not None:
            self.disk.close()

    async def purge(self, matches: Callable[[str, str], bool],
                    paths: Collection[str] | None = None) -> int:
        """Remove every entry of matching (endpoint, path) from both tiers (`paths`: every
        path `matches` can match, when known)."""
        count = self.memory.purge(matches, paths)
        self.log.record(matches)
        if self.disk is not None:
            count += await self.disk.purge(matches, paths)
        return count

    def _expired(self, entry: Entry) -> bool:
        return time.time() - entry.created > self.ttl


class ResultWrite:
    """One result on its way into the cache (`ResultCache.begin`).

    Fresh results go to disk only, and to memory when asked again (most are not, behind a
    CDN); without a disk tier, to memory at once. An older result of the key is dropped from
    memory, so it cannot shadow the new one.
    """

    def __init__(self, cache: ResultCache, key: str) -> None:
        self.cache = cache
        self.key = key
        self.ticket: Ticket | None = cache.disk.begin(key) if cache.disk is not None else None
        self.mark = cache.log.begin() if self.ticket is None else 0
        self.ended = False  # finished, stored or abandoned: whatever comes later is a no-op

    def write(self, entry: Entry) -> None:
        """Write the entry's file in the calling thread (blocking); `finish` follows.

        A render thread writes its own result: handing it to the writer thread cost two more
        thread wakeups and GIL hand-overs per request (`small` +10 %, docs/performance.md,
        tenth round).
        """
        if self.ticket is not None and self.cache.disk is not None:
            self.cache.disk.write_file(self.ticket, entry)

    async def finish(self, entry: Entry) -> None:
        """Account the entry `write` wrote (in memory without a disk tier)."""
        disk, ticket = self._disk_write(entry)
        if disk is not None and ticket is not None:
            await disk.finish(ticket, entry)

    def store(self, entry: Entry) -> None:
        """Write and account an entry made on the event loop, in the background: the answer
        need not wait, and a request right behind finds the entry already."""
        disk, ticket = self._disk_write(entry)
        if disk is None or ticket is None:
            return
        task = disk.write(ticket, entry)
        self.cache.writes.add(task)
        task.add_done_callback(self.cache.writes.discard)

    def abandon(self) -> None:
        """No entry comes (the fetch or the render failed)."""
        if self._end():
            return
        if self.ticket is not None and self.cache.disk is not None:
            self.cache.disk.abandon(self.ticket)
        else:
            self.cache.log.end(self.mark)

    def _disk_write(self, entry: Entry) -> tuple[DiskTier | None, Ticket | None]:
        """End the write; the disk tier and ticket to finish it with, or (None, None) when it
        had ended already or went to memory (no disk tier)."""
        if self._end():
            return None, None
        if self.ticket is None or self.cache.disk is None:
            self._to_memory(entry)
            return None, None
        self.cache.memory.remove(self.key)  # an older result must not shadow this one
        return self.cache.disk, self.ticket

    def _to_memory(self, entry: Entry) -> None:
        """Without a disk tier: into memory, unless a purge since `begin` covers it."""
        log = self.cache.log
        if entry.body_file is None and not log.purged(self.mark, entry.endpoint, entry.path):
            self.cache.memory.put(self.key, entry)
        log.end(self.mark)

    def _end(self) -> bool:
        """Mark the write ended; whether it had ended already."""
        ended, self.ended = self.ended, True
        return ended
