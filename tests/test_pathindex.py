"""Cache tiers keep their entries' keys by path (cache/pathindex.py): a purge of known paths
looks them up and removes exactly what a scan of every entry would."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pixelport.cache.disk import DiskTier
from pixelport.cache.entry import Entry
from pixelport.cache.memory import MemoryTier
from pixelport.cache.pathindex import PathIndex

PATHS = ["a.jpg", "b.jpg", "c/d.png", "c/e.png"]
KEYS = [f"{i:02x}" * 20 for i in range(12)]


def _entry(path: str, size: int, endpoint: str = "") -> Entry:
    return Entry(b"x" * size, {}, '"e"', endpoint, path)


def _by_path(entries: dict[str, str]) -> dict[str, set[str]]:
    """key -> path, turned around."""
    found: dict[str, set[str]] = {}
    for key, path in entries.items():
        found.setdefault(path, set()).add(key)
    return found


def _indexed(index: PathIndex) -> dict[str, set[str]]:
    return {path: set(index.keys_of([path])) for path in PATHS if index.keys_of([path])}


operations = st.lists(st.tuples(st.sampled_from(["put", "remove"]), st.sampled_from(KEYS),
                                st.sampled_from(PATHS), st.integers(1, 400)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(operations, st.sets(st.sampled_from(PATHS)))
def test_memory_tier_index_follows_puts_removals_and_evictions(
        steps: list[tuple[str, str, str, int]], purged: set[str]) -> None:
    tier = MemoryTier(1000)  # small: puts evict
    for action, key, path, size in steps:
        if action == "put":
            tier.put(key, _entry(path, size))
        else:
            tier.remove(key)
    assert _indexed(tier.paths) == _by_path({k: e.path for k, e in tier.entries.items()})
    assert len(tier.paths) == len(tier.entries)
    scanned = copy.deepcopy(tier)
    matches = lambda _endpoint, path: path in purged  # noqa: E731
    assert tier.purge(matches, purged) == scanned.purge(matches)
    assert set(tier.entries) == set(scanned.entries)
    assert _indexed(tier.paths) == _by_path({k: e.path for k, e in tier.entries.items()})


def test_memory_tier_purge_checks_the_endpoint_too() -> None:
    tier = MemoryTier(10**6)
    tier.put(KEYS[0], _entry("a.jpg", 10, "one"))
    tier.put(KEYS[1], _entry("a.jpg", 10, "two"))
    tier.put(KEYS[2], _entry("b.jpg", 10, "one"))
    assert tier.purge(lambda endpoint, path: endpoint == "one", {"a.jpg"}) == 1
    assert set(tier.entries) == {KEYS[1], KEYS[2]}


def test_disk_tier_index_follows_writes_evictions_purges_and_restarts(tmp_path: Path) -> None:
    async def scenario() -> None:
        disk = DiskTier(tmp_path / "d", 2500)  # five 500-byte entries fit
        for number, key in enumerate(KEYS):
            await disk.put(key, _entry(PATHS[number % len(PATHS)], 440))
        expected = _by_path({k: i.path for k, i in disk.index.items()})
        assert len(disk.index) < len(KEYS)  # some were evicted
        assert _indexed(disk.paths) == expected
        # A purge by paths takes exactly the matching entries, and their files.
        doomed = {k for k, i in disk.index.items() if i.path in {"a.jpg", "c/d.png"}}
        assert doomed
        removed = await disk.purge(lambda _e, path: path in {"a.jpg", "c/d.png"},
                                   {"a.jpg", "c/d.png"})
        assert removed == len(doomed)
        assert not doomed & set(disk.index)
        assert not any(disk.file(k).exists() for k in doomed)
        assert _indexed(disk.paths) == _by_path({k: i.path for k, i in disk.index.items()})
        disk.close()
        # A restart rebuilds the same index from the files.
        again = DiskTier(tmp_path / "d", 2500)
        await asyncio.to_thread(again.load_index)
        assert _indexed(again.paths) == _by_path({k: i.path for k, i in disk.index.items()})
        again.close()

    asyncio.run(scenario())
