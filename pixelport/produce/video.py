"""The video producer: transformed videos, thumbnails and GIFs made into MP4, as jobs.

A job (video/jobs.py: bounded, one per key across workers, detached from requests) fetches the
original to a file of its own under the byte cap, probes it (video/probe.py: EFORMAT, and the
duration and pixel caps, before any work), and then either runs ffmpeg on a plan
(video/plan.py) or decodes one frame (video/frames.py) for the image pipeline. A request waits
`[video] wait` seconds for its job; past that, `NotReady` says so (302 to the original for a
video, 202 for a thumbnail) and the job goes on. A video result is written to the disk cache
with its body left on disk, streamed with ranges from there; nothing is served from a job's
own files, which are deleted when it ends (and at start-up, those of a crashed process).
With `[cache.shared]` (and `[cluster]`), results go through the shared tier and one node makes
each (video_nodes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from pixelport import metrics, tracing
from pixelport.cache.entry import BodyFile, Entry, body_digest
from pixelport.cache.results import ResultCache, ResultWrite
from pixelport.config import Config
from pixelport.errors import LimitExceeded, UnsupportedFormat
from pixelport.http_fields import http_date
from pixelport.place import alive
from pixelport.produce import video_nodes
from pixelport.produce.job import Job, NotReady
from pixelport.produce.originals import Originals
from pixelport.produce.video_nodes import VideoNodes
from pixelport.transform import engine, overlay
from pixelport.transform.budget import Budget
from pixelport.transform.pool import WorkPool
from pixelport.transform.step import ChainItem, Step
from pixelport.video import ffmpeg, frames, ladder
from pixelport.video import plan as video_plan
from pixelport.video.claims import Claims
from pixelport.video.containers import HEAD_BYTES, demuxer_for
from pixelport.video.jobs import JobQueue
from pixelport.video.probe import VideoInfo, probe

# What a thumbnail takes (ImageKit: w, h, ar, c, cm, fo, b, bg, r), with so choosing the frame
# and the output format and quality, negotiated as for images.
THUMBNAIL_KEYS = frozenset({"w", "h", "ar", "c", "cm", "fo", "b", "bg", "r", "so", "f", "q",
                            "l"})
WRITE_BATCH = 1 << 20  # bytes of an original gathered before each write (in a thread)
DIGEST_CHUNK = 1 << 20


@dataclass
class Input:
    """An original fetched to a file of the job's own."""

    path: Path
    demuxer: str
    info: VideoInfo
    download_ms: float
    last_modified: str | None
    private: bool  # a private library file: its results need a signed URL too


class VideoProducer:
    """Makes the results of video jobs (`Job.video`)."""

    def __init__(self, config: Config, pool: WorkPool, results: ResultCache,
                 folder: Path, originals: Originals) -> None:
        """`folder`: where jobs work and claim (shared by the worker processes);
        `originals`: where layers' files come from, as for images."""
        self.config = config
        self.originals = originals
        self.pool = pool
        self.results = results
        self.work = folder / "work"
        video = config.video
        self.jobs: JobQueue[Entry | None] = JobQueue(
            Claims(folder / "claims"), video.concurrent_jobs, video.queue_length,
            video.job_timeout)
        self.names = itertools.count()
        self.tracing: tracing.Tracing | None = None  # `[tracing]`: a span per job
        # `[cache.shared]` (with `[cluster]`, its lease): results other nodes made.
        self.nodes: VideoNodes | None = None

    def takes(self, job: Job) -> bool:
        """Video jobs: a transformed video, a thumbnail, a GIF as MP4."""
        return job.video

    async def start(self) -> None:
        """Delete the work folders of processes that are gone (a crash mid-job)."""
        await asyncio.to_thread(self._sweep)

    def _sweep(self) -> None:
        if not self.work.is_dir():
            return
        for folder in self.work.iterdir():
            pid = folder.name.split("-", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid() or not alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    async def make(self, job: Job) -> Entry:
        """The result, made by the job for its key (joined if under way); NotReady when it is
        not made within `[video] wait` seconds (a stream's manifest: at once, as on
        ImageKit, whose first request for a stream answers 202)."""
        if job.ladder is not None:
            if self.nodes is not None and job.ladder not in self.jobs.running:
                found = await self.nodes.manifests(job)  # made by another node
                if found is not None:
                    return found
            stream = self.jobs.submit(job.ladder, lambda waited: self._ladder(job, waited))
            if stream.done() and not stream.cancelled():
                error = stream.exception()
                if error is not None:
                    raise error
                entry = await self.results.get(job.key)
                if entry is not None:
                    return entry
            raise NotReady(redirect=False)
        task = self.jobs.submit(job.key, lambda waited: self._make(job, waited))
        # Within the request's own deadline, or a slow video would answer 504, not 302.
        wait = min(self.config.video.wait, self.config.server.request_timeout * 0.9)
        try:
            async with asyncio.timeout(wait):
                entry = await asyncio.shield(task)
                assert entry is not None
                return entry
        except TimeoutError:
            if task.done():
                raise
            raise NotReady(redirect=job.derivative in (None, "gif-video")) from None

    async def stop(self) -> None:
        """Stop every job (at shutdown)."""
        await self.jobs.stop()

    async def _make(self, job: Job, waited: bool) -> Entry:
        if waited:  # another worker held the key: its result is likely in the cache now
            entry = await self.results.get(job.key)
            if entry is not None:
                return entry
        write = self.results.begin(job.key)
        began = time.time()  # a purge from now on keeps the result out of the bucket
        try:
            async with self._folder() as folder:
                nodes = self.nodes
                if nodes is None:
                    return await self._make_here(job, folder, write)
                if nodes.leases is None:
                    found = await nodes.result(job, folder, write)  # made by another node
                    if found is not None:
                        return found
                    entry = await self._make_here(job, folder, write)
                    nodes.share_later(entry, job.key, began)
                    return entry

                async def make() -> Entry:
                    # Looked for under the lease: a maker that let go just before it was
                    # taken here had written its result already.
                    assert nodes is not None
                    found = await nodes.result(job, folder, write)
                    if found is not None:
                        return found
                    entry = await self._make_here(job, folder, write)
                    await nodes.share(entry, job.key, began)  # before the lease ends
                    return entry

                # One node makes it; the others wait for the lease to end and read it.
                return await nodes.leases.run(job.key, make,
                                              lambda: nodes.result(job, folder, write),
                                              poll=video_nodes.POLL_SECONDS,
                                              look_while_held=False)
        finally:
            write.abandon()  # a no-op once the entry is written

    async def _make_here(self, job: Job, folder: Path, write: ResultWrite) -> Entry:
        """Fetch the original and make the result in this worker."""
        kind = "thumbnail" if job.derivative == "thumbnail" else "transcode"
        with tracing.span(self.tracing, "video", {"pixelport.path": job.path,
                                                  "pixelport.video.job": kind}):
            source = await self._fetch(job, folder)
            files, private = await self.originals.layer_files(job.source, job.steps,
                                                              job.fetch)
            if private:  # a private layer makes the result private
                source = replace(source, private=True)
            metrics.video_job(video_nodes.kind_of(job), "ran")
            if job.derivative == "thumbnail":
                return await self._thumbnail(job, source, write, files)
            return await self._transcode(job, source, folder, write, files)

    async def _ladder(self, job: Job, waited: bool) -> Entry | None:
        """A stream's ladder, encoded here unless another node has made it (`make` looked
        in the bucket before this job began; with the cluster, one node encodes it under
        the lease while the others wait to read its manifests)."""
        assert job.ladder is not None
        if waited and await self.results.get(job.key) is not None:
            return None  # another worker made it
        nodes = self.nodes
        began = time.time()
        if nodes is None or nodes.leases is None:
            return await self._encode_ladder(job, began)

        async def encode() -> Entry:
            assert nodes is not None  # looked for again under the lease, as in `_make`
            return await nodes.manifests(job) or await self._encode_ladder(job, began)

        return await nodes.leases.run(f"abs:{job.ladder}", encode, lambda: nodes.manifests(job),
                                      poll=video_nodes.POLL_SECONDS, look_while_held=False)

    async def _encode_ladder(self, job: Job, began: float) -> Entry:
        """Encode a stream's ladder and cache every file of it, its manifests last: once a
        manifest is there, so is everything it names (in the bucket too, where its parts
        are written first); the manifest `job` asks for."""
        assert job.ladder is not None
        stream = job.ladder
        # Announced now, so a purge during the encode wins (the manifests are then not kept,
        # and the next request makes the stream again).
        writes = {name: self.results.begin(ladder.part_key(stream, name))
                  for name in ladder.MANIFESTS.values()}
        sharing = self.nodes.stream_writer(began) if self.nodes is not None else None
        try:
            async with self._folder() as folder, self._traced_ladder(job):
                source = await self._fetch(job, folder)
                cut = video_plan.trim([s for s in job.steps if isinstance(s, Step)],
                                      source.info.duration)
                rungs = ladder.ladder(source.info, ladder.resolutions(job.steps))
                out = folder / "out"
                await asyncio.to_thread(out.mkdir)
                metrics.video_job("stream", "ran")
                started = time.perf_counter()
                with tracing.span(self.tracing, "transformation", {"pixelport.path": job.path}):
                    await ffmpeg.run(ladder.args(source.path, source.demuxer, rungs,
                                                 source.info.has_audio, out, cut.start,
                                                 cut.end),
                                     self.config.video.job_timeout)
                took = (time.perf_counter() - started) * 1000
                names = await asyncio.to_thread(lambda: sorted(p.name for p in out.iterdir()))
                for name in names:
                    if name not in writes and ladder.PART_NAME.match(name):
                        data = await asyncio.to_thread((out / name).read_bytes)
                        key = ladder.part_key(stream, name)
                        part = self._part(job, source, name, data, took)
                        await self._store(self.results.begin(key), part)
                        if sharing is not None:
                            await sharing.part(part, key)
                base = f"ik-abs/{stream}/"
                manifests: dict[str, Entry] = {}
                for name, rewrite in ((ladder.MANIFESTS["hls"], ladder.rewrite_hls),
                                      (ladder.MANIFESTS["dash"], ladder.rewrite_dash)):
                    text = await asyncio.to_thread((out / name).read_text)
                    data = rewrite(text, base).encode()
                    manifest = self._part(job, source, name, data, took)
                    await self._store(writes[name], manifest)
                    manifests[ladder.part_key(stream, name)] = manifest
            if sharing is not None:
                await sharing.manifests(manifests)
        finally:
            for write in writes.values():
                write.abandon()  # a no-op for those written
        return manifests[job.key]

    def _part(self, job: Job, source: Input, name: str, data: bytes,
              transform_ms: float) -> Entry:
        """The cache entry of one file of a stream."""
        # Players load streams from scripts on other sites (hls.js, dash.js): CORS, as
        # ImageKit answers.
        headers = {"content-type": ladder.content_type(name),
                   "access-control-allow-origin": "*"}
        return self._entry(job, source, headers, f'"{body_digest(data)}"', transform_ms,
                           body=data)

    async def _store(self, write: ResultWrite, entry: Entry) -> None:
        """Write an entry into the cache and wait until it is there."""
        await asyncio.to_thread(write.write, entry)
        await write.finish(entry)

    @contextlib.asynccontextmanager
    async def _traced_ladder(self, job: Job) -> AsyncIterator[None]:
        """A stream's job as a `video` span (the manifests' request has answered 202)."""
        with tracing.span(self.tracing, "video", {"pixelport.path": job.path,
                                                  "pixelport.video.job": "ladder"}):
            yield

    @contextlib.asynccontextmanager
    async def _folder(self) -> AsyncIterator[Path]:
        folder = self.work / f"{os.getpid()}-{next(self.names)}"
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        try:
            yield folder
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _fetch(self, job: Job, folder: Path) -> Input:
        """The original into `folder` under max_video_bytes; sniffed and probed."""
        with tracing.span(self.tracing, "download", {"pixelport.path": job.path}):
            return await self._download(job, folder)

    async def _download(self, job: Job, folder: Path) -> Input:
        """`_fetch`'s work: the original's bytes into `folder`, then probed."""
        limits = self.config.limits
        started = time.perf_counter()
        original = await job.source.chain.fetch(job.path, job.fetch)
        path = folder / "input"
        try:
            if original.size is not None and original.size > limits.max_video_bytes:
                raise _too_large(limits.max_video_bytes)
            demuxer = demuxer_for(await original.peek(HEAD_BYTES), job.path)
            if job.derivative == "gif-video" and demuxer != "gif":
                raise UnsupportedFormat(f"The file {job.path!r} is not an animated GIF")
            if demuxer == "gif" and job.derivative not in ("gif-video", "thumbnail"):
                # A GIF is an image: transformed as one, or made a video (ik-gif-video.mp4).
                raise UnsupportedFormat(f"The file {job.path!r} is not a video that can be "
                                        "transformed")
            with path.open("wb") as handle:
                size, batch = 0, bytearray()
                async for chunk in original.chunks():
                    size += len(chunk)
                    if size > limits.max_video_bytes:
                        raise _too_large(limits.max_video_bytes)
                    batch += chunk
                    if len(batch) >= WRITE_BATCH:
                        await asyncio.to_thread(handle.write, bytes(batch))
                        batch.clear()
                await asyncio.to_thread(handle.write, bytes(batch))
            last_modified = (http_date(original.last_modified)
                             if original.last_modified is not None else None)
            private = original.private
        finally:
            await original.close()
        download_ms = (time.perf_counter() - started) * 1000
        info = await asyncio.to_thread(probe, path, demuxer)
        if info.duration > limits.max_video_seconds:
            raise LimitExceeded(f"The video lasts {info.duration:.0f} s, longer than the limit "
                                f"of {limits.max_video_seconds:g} s (max_video_seconds)")
        if info.width * info.height > limits.max_input_pixels:
            raise LimitExceeded(f"The video's frames ({info.width}x{info.height}) are larger "
                                f"than {limits.max_input_pixels} pixels (max_input_pixels)")
        return Input(path, demuxer, info, download_ms, last_modified, private)

    async def _transcode(self, job: Job, source: Input, folder: Path,
                         write: ResultWrite, files: dict[str, bytes]) -> Entry:
        """ffmpeg on the plan; the result into the cache, its body left on disk."""
        steps = job.steps
        if job.derivative == "gif-video":
            steps = [*steps, _step_of(f="mp4", ac="none")]
        # On a thread: layers are made by libvips while planning.
        planned = await asyncio.to_thread(
            video_plan.plan, steps, source.info, job.accept, self.config.images.best_format,
            self.config.limits.max_output_pixels, overlay.Inputs(files, self.config.limits))
        started = time.perf_counter()
        with tracing.span(self.tracing, "transformation", {"pixelport.path": job.path}):
            masks = await asyncio.to_thread(video_plan.write_masks, planned.graph.masks,
                                            folder)
            target = folder / f"output.{planned.output.container}"
            await ffmpeg.run(planned.args(source.path, source.demuxer, target, masks),
                             self.config.video.job_timeout)
        transform_ms = (time.perf_counter() - started) * 1000
        size, digest = await asyncio.to_thread(_digest_file, target)
        headers = {"content-type": planned.output.content_type, "accept-ranges": "bytes"}
        if planned.output.negotiated:
            headers["vary"] = "Accept"
        entry = self._entry(job, source, headers, f'"{digest}"', transform_ms,
                            body_file=BodyFile(target, 0, size))
        # Not cached (no disk tier, or the write failed): the job's file goes with the job,
        # so the answer carries the bytes.
        return await video_nodes.keep(write, entry, target)

    async def _thumbnail(self, job: Job, source: Input, write: ResultWrite,
                         files: dict[str, bytes]) -> Entry:
        """The frame at `so` (else the first), through the image pipeline."""
        plain = video_plan.check_keys(job.steps, THUMBNAIL_KEYS, "thumbnails")
        at = 0.0
        offset = next((s.start_offset for s in reversed(plain) if s.start_offset), None)
        if offset is not None:
            at = min(offset.evaluate({"idu": source.info.duration}), source.info.duration)
        steps: list[ChainItem] = [
            replace(s, start_offset=None, params=[p for p in s.params if p.key != "so"])
            for s in plain]
        started = time.perf_counter()
        with tracing.span(self.tracing, "transformation", {"pixelport.path": job.path}):
            async with self.pool.admit():
                image = await self.pool.run(frames.frame_at, source.path, source.demuxer, at)
                options = engine.RenderOptions(
                    job.accept, self.config.images, self.config.limits,
                    budget=Budget(self.config.limits.max_render_seconds), layer_files=files)
                rendered = await self.pool.run(engine.render, image, steps, options)
        transform_ms = (time.perf_counter() - started) * 1000
        headers = {"content-type": rendered.content_type}
        if rendered.vary:
            headers["vary"] = ", ".join(rendered.vary)
        entry = self._entry(job, source, headers, f'"{body_digest(rendered.data)}"',
                            transform_ms, body=rendered.data)
        write.store(entry)
        return entry

    def _entry(self, job: Job, source: Input, headers: dict[str, str], etag: str,
               transform_ms: float, body: bytes = b"",
               body_file: BodyFile | None = None) -> Entry:
        if source.last_modified is not None:
            headers["last-modified"] = source.last_modified
        if source.private:
            headers["x-private"] = "1"
        return Entry(body, headers, etag, job.source.identifier, job.path,
                     download_ms=source.download_ms, transform_ms=transform_ms,
                     body_file=body_file)


def _step_of(**values: str) -> Step:
    """A step setting output parameters, as if written in the URL."""
    from pixelport.transform.grammar import Param
    from pixelport.transform.registry import build_step

    return build_step(tuple(Param(k, v) for k, v in values.items()))


def _too_large(limit: int) -> LimitExceeded:
    return LimitExceeded(f"The video is larger than the limit of {limit} bytes "
                         "(max_video_bytes)")


def _digest_file(path: Path) -> tuple[int, str]:
    """A file's size and BLAKE2b digest (the result's ETag)."""
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()

