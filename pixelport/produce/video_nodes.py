"""Video results across nodes (`[cache.shared]`, with `[cluster]` the lease): what one node
made, the others read from the shared tier rather than running ffmpeg again.

A transcode's result (its body kept on disk) is read into a file of the job's own and from
there into the disk tier; a thumbnail is an entry like an image's; a stream's manifests are
copied when it is asked for, its parts (segments, playlists) one by one as players ask for
them (`part`). The maker writes a stream's parts to the bucket before its manifests: once a
manifest is there, so is everything it names.

With the cluster, a job is made under a lease (cluster/leases.py) held while the maker works
and writes its result to the bucket; the other nodes wait for the lease to end (asking Redis,
not the bucket, meanwhile), read the result, and take the job over if the holder died.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pixelport import metrics
from pixelport.cache.coalesce import Coalescer
from pixelport.cache.entry import Entry
from pixelport.cache.results import ResultCache, ResultWrite
from pixelport.produce.job import Job
from pixelport.video import ladder

if TYPE_CHECKING:
    from pixelport.cache.shared import SharedTier
    from pixelport.cluster.leases import Leases

# A waiting node asks Redis this often whether the maker still holds the lease: video jobs
# take seconds to minutes, so a quarter second late costs little (images poll every 50 ms).
POLL_SECONDS = 0.25
PART_WRITES = 4  # a stream's parts written to the bucket at once (each a segment, ~1-3 MB)


class VideoNodes:
    """The shared tier and the cluster's leases, as video jobs use them."""

    def __init__(self, shared: SharedTier, leases: Leases | None, results: ResultCache) -> None:
        self.shared = shared
        self.leases = leases
        self.results = results
        self.parts: Coalescer[Entry | None] = Coalescer()

    def fresh(self, found: Entry | None) -> Entry | None:
        """An entry read from the bucket, unless older than the result cache's TTL."""
        if found is None or time.time() - found.created > self.results.ttl:
            return None
        found.shared = True  # made by another node: neither fetched nor made here
        return found

    async def result(self, job: Job, folder: Path, write: ResultWrite) -> Entry | None:
        """A transcode's or thumbnail's result as another node made it, kept here too
        (`write`); a video's body read into `folder` on its way into the disk tier."""
        endpoint, path = job.source.identifier, job.path
        if job.derivative == "thumbnail":
            found = self.fresh(await self.shared.get_result(endpoint, path, job.key))
            if found is None:
                return None
            write.store(found)
        else:
            into = folder / "shared"
            streamed = self.fresh(await self.shared.get_result_streamed(endpoint, path,
                                                                        job.key, into))
            if streamed is None:
                return None
            found = await keep(write, streamed, into)
        metrics.video_job(kind_of(job), "shared")
        return found

    async def share(self, entry: Entry, key: str, began: float) -> bool:
        """Write a result made here to the bucket and wait for it (the nodes waiting on the
        lease read it there once it ends); whether it landed."""
        return await self.shared.store_result(entry, key, began)

    def share_later(self, entry: Entry, key: str, began: float) -> None:
        """Write a result made here to the bucket in the background (no lease: nobody
        waits for it)."""
        self.shared.put_result(entry, key, began)

    async def manifests(self, job: Job) -> Entry | None:
        """A stream's manifests, if another node made the stream: both kept here (its parts
        come one by one, `part`); the one `job` asks for."""
        assert job.ladder is not None
        endpoint, path = job.source.identifier, job.path
        found: dict[str, Entry] = {}
        for name in ladder.MANIFESTS.values():
            key = ladder.part_key(job.ladder, name)
            entry = self.fresh(await self.shared.get_result(endpoint, path, key))
            if entry is None:
                return None
            found[key] = entry
        for key, entry in found.items():
            self.results.begin(key).store(entry)
        metrics.video_job("stream", "shared")
        return found.get(job.key)

    def stream_writer(self, began: float) -> StreamWriter:
        """Writes a stream's parts to the bucket, then its manifests."""
        return StreamWriter(self.shared, began)

    async def part(self, endpoint: str, path: str, key: str) -> Entry | None:
        """A part of a stream another node made (its manifest came from the bucket), kept
        here too; one read for everyone who asks meanwhile."""
        async def read() -> Entry | None:
            found = self.fresh(await self.shared.get_result(endpoint, path, key))
            if found is not None:
                self.results.begin(key).store(found)
            return found

        found, _ = await self.parts.run(key, read)
        return found


class StreamWriter:
    """A stream's files on their way to the bucket: parts as they are made (PART_WRITES at
    once), then the manifests, only if every part landed (else no node would find a part a
    manifest names: it makes the stream itself)."""

    def __init__(self, shared: SharedTier, began: float) -> None:
        self.shared = shared
        self.began = began
        self.slots = asyncio.Semaphore(PART_WRITES)
        self.writes: list[asyncio.Task[bool]] = []

    async def part(self, entry: Entry, key: str) -> None:
        """Write a part in the background, once fewer than PART_WRITES are under way."""
        await self.slots.acquire()
        task = asyncio.ensure_future(self.shared.store_result(entry, key, self.began))
        task.add_done_callback(lambda _: self.slots.release())
        self.writes.append(task)

    async def manifests(self, entries: dict[str, Entry]) -> bool:
        """Once every part is written, the manifests (by key); whether all landed."""
        try:
            landed = all(await asyncio.gather(*self.writes))
        except BaseException:
            for task in self.writes:
                task.cancel()
            raise
        for key, entry in entries.items():
            landed = landed and await self.shared.store_result(entry, key, self.began)
        return landed


def kind_of(job: Job) -> str:
    """The metrics' kind of a video job: transcode, thumbnail or stream."""
    if job.ladder is not None:
        return "stream"
    return "thumbnail" if job.derivative == "thumbnail" else "transcode"


async def keep(write: ResultWrite, entry: Entry, made_at: Path) -> Entry:
    """Write an entry whose body is the file `made_at` (a job's, deleted with it) into the
    disk tier, its body from then on the cache file's; where it could not be cached (no
    disk tier, a failed write), the bytes themselves."""
    await asyncio.to_thread(write.write, entry)
    await write.finish(entry)
    if entry.body_file is not None and entry.body_file.path == made_at:
        body = entry.body_file
        data = await asyncio.to_thread(_read_range, made_at, body.offset, body.length)
        entry = replace(entry, body=data, body_file=None)
    return entry


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)
