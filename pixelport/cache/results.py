"""The result cache: memory in front of disk, with a time to live."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from pixelport.cache.disk import DiskTier, Ticket
from pixelport.cache.entry import Entry
from pixelport.cache.memory import MemoryTier
from pixelport.workers import ALONE, Place


class ResultCache:
    """Two tiers; results go to disk, and to memory when asked again."""

    def __init__(self, memory_bytes: int, disk_dir: Path | None, disk_bytes: int,
                 ttl: float, place: Place = ALONE) -> None:
        self.memory = MemoryTier(memory_bytes)
        self.disk = DiskTier(disk_dir, disk_bytes, place) if disk_dir is not None else None
        self.ttl = ttl
        self.writes: set[asyncio.Future[None]] = set()

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
            return None  # overwritten by the next put
        self.memory.put(key, entry)
        return entry

    async def put(self, key: str, entry: Entry) -> None:
        """Store on disk in the background (the answer need not wait); in memory only when
        there is no disk tier.

        Most fresh results are never asked again (behind a CDN, nearly all): memory is kept
        for those that are. A second request finds the entry on disk, or still on its way
        there (`DiskTier.pending`), and that hit promotes it to memory.
        """
        if self.disk is None:
            self.memory.put(key, entry)
            return
        self.memory.remove(key)  # an older result must not shadow this one
        task = self.disk.write(key, entry)
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)

    def begin(self, key: str) -> Ticket | None:
        """Ready the write of a result that a render thread makes (`write_file`), so a purge
        meanwhile is not undone; None without a disk tier. `finish` or `abandon` follows."""
        return self.disk.begin(key) if self.disk is not None else None

    def write_file(self, ticket: Ticket | None, entry: Entry) -> None:
        """Write a result's file in the calling thread (blocking).

        A render thread writes its own result: handing it to the writer thread cost two more
        thread wakeups and GIL hand-overs per request (`small` +10 %, docs/performance.md,
        tenth round).
        """
        if ticket is not None and self.disk is not None:
            self.disk.write_file(ticket, entry)

    def abandon(self, ticket: Ticket | None) -> None:
        """The render failed: no write comes."""
        if ticket is not None and self.disk is not None:
            self.disk.abandon(ticket)

    async def finish(self, key: str, ticket: Ticket | None, entry: Entry) -> None:
        """Account a result `write_file` wrote, as `put` does (in memory without a disk tier)."""
        if ticket is None or self.disk is None:
            self.memory.put(key, entry)
            return
        self.memory.remove(key)  # an older result must not shadow this one
        await self.disk.finish(ticket, entry)

    async def close(self) -> None:
        """Finish the disk writes under way and stop the writer (at shutdown)."""
        while self.writes:
            await asyncio.gather(*self.writes, return_exceptions=True)
        if self.disk is not None:
            self.disk.close()

    async def purge(self, matches: Callable[[str, str], bool]) -> int:
        """Remove every entry of matching (endpoint, path) from both tiers."""
        count = self.memory.purge(matches)
        if self.disk is not None:
            count += await self.disk.purge(matches)
        return count

    def _expired(self, entry: Entry) -> bool:
        return time.time() - entry.created > self.ttl
