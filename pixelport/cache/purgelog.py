"""Purges made while writes are open: a write begun before a purge that matches it is not kept.

A write is begun before its result is made (before the original is even fetched), so a purge
can arrive at any moment before the result is stored; the file has changed, and what the write
holds is the old one. The log keeps each purge as long as a write begun before it is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Matches = Callable[[str, str], bool]  # (endpoint, path) -> whether a purge covers it


class PurgeLog:
    """Open writes, counted by the purge count they began at, and the purges they must see."""

    def __init__(self) -> None:
        self.count = 0  # purges logged so far
        self.open: dict[int, int] = {}  # purge count at begin -> writes open since then
        self.purges: list[tuple[int, Matches]] = []

    @property
    def writing(self) -> int:
        """Writes open."""
        return sum(self.open.values())

    def begin(self) -> int:
        """Open a write; the returned mark goes to `purged` and `end`."""
        self.open[self.count] = self.open.get(self.count, 0) + 1
        return self.count

    def end(self, mark: int) -> None:
        """Close a write; purges no open write began before are dropped."""
        left = self.open[mark] - 1
        if left:
            self.open[mark] = left
            return
        del self.open[mark]
        oldest = min(self.open, default=self.count)
        if self.purges and self.purges[0][0] < oldest:
            self.purges = [(seq, matches) for seq, matches in self.purges if seq >= oldest]

    def record(self, matches: Matches) -> None:
        """Log a purge (only while writes are open: otherwise no write can miss it)."""
        if self.open:
            self.purges.append((self.count, matches))
            self.count += 1

    def purged(self, mark: int, endpoint: str, path: str) -> bool:
        """Whether a purge logged since `mark` covers (endpoint, path)."""
        return any(seq >= mark and matches(endpoint, path) for seq, matches in self.purges)


@dataclass(frozen=True)
class PurgeScope:
    """A purge's test of (endpoint, path) that also says where its entries are: these
    endpoints' `paths` (or, with `prefix`, every path starting with one of them). A store keyed
    by endpoint and path (the shared tier's bucket) then lists those keys alone rather than
    scanning everything."""

    endpoints: frozenset[str]
    paths: frozenset[str]
    prefix: bool = False

    def __call__(self, endpoint: str, path: str) -> bool:
        """Whether the purge covers (endpoint, path)."""
        if endpoint not in self.endpoints:
            return False
        return path.startswith(tuple(self.paths)) if self.prefix else path in self.paths
