"""Cache keys by the path they were cached under, so that purging known paths (a media
library change: every upload, overwrite, move or delete) finds its entries without a scan.

Scanning a 200,000-entry index with a predicate took 70 ms of the event loop per purge, in
every worker, for each tier; looking the paths up takes microseconds. Wildcard and URL purges
still scan (they match by prefix or by endpoint).
"""

from __future__ import annotations

from collections.abc import Iterable


class PathIndex:
    """path -> the keys of the entries cached for it."""

    def __init__(self) -> None:
        self._keys: dict[str, set[str]] = {}

    def add(self, path: str, key: str) -> None:
        """Record that `key` caches something of `path`."""
        self._keys.setdefault(path, set()).add(key)

    def discard(self, path: str, key: str) -> None:
        """Forget `key` under `path` (nothing when it is not there)."""
        keys = self._keys.get(path)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[path]

    def keys_of(self, paths: Iterable[str]) -> list[str]:
        """Every key recorded under any of `paths`."""
        return [key for path in paths for key in self._keys.get(path, ())]

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._keys.values())
