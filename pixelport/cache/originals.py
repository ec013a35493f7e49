"""Saved copies of originals (`[cache] save_originals`): transform without the origin.

A copy younger than the TTL is used as it is; an older one is revalidated with a conditional
request, and a 304 keeps it. When the origin fails, a stale copy still serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Collection
from pathlib import Path

from pixelport.cache.disk import DiskTier
from pixelport.cache.entry import Entry
from pixelport.place import ALONE, Place


class OriginalStore:
    """Originals on disk, keyed by endpoint and file path."""

    def __init__(self, root: Path, capacity: int, ttl: float,
                 place: Place = ALONE) -> None:
        self.disk = DiskTier(root, capacity, place)
        self.ttl = ttl

    async def start(self) -> None:
        """Index what is on disk."""
        await asyncio.to_thread(self.disk.load_index)

    @staticmethod
    def key(endpoint: str, path: str, query: str = "", host: str | None = None) -> str:
        """The storage key of a file (asked with `query`, and `host` where the Host is sent
        on, as the origin was asked)."""
        text = f"{endpoint}\0{path}" + (f"\0{query}" if query else "")
        if host is not None:
            text += f"\0host\0{host.lower()}"
        return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()

    async def get(self, endpoint: str, path: str, query: str = "",
                  host: str | None = None) -> Entry | None:
        """The saved copy, fresh or not."""
        return await self.disk.get(self.key(endpoint, path, query, host))

    def fresh(self, entry: Entry) -> bool:
        """Whether the copy may be used without asking the origin."""
        return time.time() - entry.created < self.ttl

    async def put(self, entry: Entry, query: str = "", host: str | None = None) -> None:
        """Save (or re-save with a new timestamp after a 304); a purge of its path covers it
        whatever the query and Host."""
        await self.disk.put(self.key(entry.endpoint, entry.path, query, host), entry)

    def close(self) -> None:
        """Stop the writer thread."""
        self.disk.close()

    async def purge(self, matches: Callable[[str, str], bool],
                    paths: Collection[str] | None = None) -> int:
        """Forget matching files (`paths`: every path `matches` can match, when known)."""
        return await self.disk.purge(matches, paths)
