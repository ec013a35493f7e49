"""The memory tier: an LRU of entries bounded in bytes. Event-loop only, no locking."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection

from pixelport.cache.entry import Entry
from pixelport.cache.pathindex import PathIndex


class MemoryTier:
    """Least recently used entries are evicted past `capacity` bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.paths = PathIndex()

    def get(self, key: str) -> Entry | None:
        """The entry, marked as recently used."""
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        """Store, evicting the least recently used entries to fit."""
        if entry.size > self.capacity:
            return
        self.remove(key)
        self.entries[key] = entry
        self.paths.add(entry.path, key)
        self.used += entry.size
        while self.used > self.capacity:
            evicted_key, evicted = self.entries.popitem(last=False)
            self.paths.discard(evicted.path, evicted_key)
            self.used -= evicted.size

    def remove(self, key: str) -> None:
        """Forget one entry."""
        old = self.entries.pop(key, None)
        if old is not None:
            self.paths.discard(old.path, key)
            self.used -= old.size

    def purge(self, matches: Callable[[str, str], bool],
              paths: Collection[str] | None = None) -> int:
        """Remove every entry whose (endpoint, path) matches; returns how many. `paths`, when
        given, holds every path `matches` can match (looked up, not scanned for)."""
        candidates = list(self.entries) if paths is None else self.paths.keys_of(paths)
        doomed = [k for k in candidates
                  if (e := self.entries.get(k)) is not None and matches(e.endpoint, e.path)]
        for key in doomed:
            self.remove(key)
        return len(doomed)
