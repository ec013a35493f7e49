"""The image producer: an original, transformed in the bounded pool, or served as it is.

Admission first (the pool's, 503 EBUSY when full); then the original (saved copy, or one fetch
shared by every variant of the file) in a download slot; then, the bytes in, a render slot and
a render on a worker thread, where the result's cache file is written too; or, for a file that is
no image to transform, the file as it is (an SVG sanitised). The result's cache write is
announced before the fetch, so a purge made at any moment after it wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pixelport import metrics, tracing
from pixelport.cache.entry import Entry, body_digest
from pixelport.cache.results import ResultCache, ResultWrite
from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import NotFound, UnsupportedFormat
from pixelport.http_fields import http_date
from pixelport.produce import mime
from pixelport.produce.job import Job
from pixelport.produce.mezzanine import Mezzanines, Pending, Sharing
from pixelport.produce.originals import Fetched, Originals
from pixelport.security.headers import is_svg, passthrough_headers
from pixelport.security.svg import sanitize_svg
from pixelport.transform import engine
from pixelport.transform.budget import ABANDONED, SHUTDOWN, Budget
from pixelport.transform.formats import CONTENT_TYPES
from pixelport.transform.pool import Stages, WorkPool
from pixelport.transform.step import ChainItem, Step

if TYPE_CHECKING:
    from pixelport.cache.shared import SharedTier
    from pixelport.cluster.leases import Leases

# A srcset page asks each width in two formats at once: a request back from waiting for the
# shared copy then often finds the other format's job making its resize. Each wait on the
# event loop leaves the worker thread to other jobs (srcset +5-10 % with 3 threads, ninth
# round); only after this many does a request wait on its thread.
DEFERRALS = 3

# Called in the render thread with the rendered result, its digest and the render's time.
Finish = Callable[[engine.Rendered, str, float], Entry]


class ImageProducer:
    """Images and files served as they are: every job that video does not take."""

    def __init__(self, pool: WorkPool, results: ResultCache, originals: Originals,
                 images: ImagesConfig, limits: LimitsConfig, decoded_memory: int,
                 shared_copies: Path | None = None) -> None:
        """`shared_copies`: the folder where worker processes share decoded copies."""
        self.pool = pool
        self.results = results
        self.originals = originals
        self.images = images
        self.limits = limits
        self.mezzanines = Mezzanines(decoded_memory, shared=shared_copies)
        self.budgets: set[Budget] = set()  # of the renders under way
        self.stopping = False
        self.cutoff: float | None = None  # shutting down: when every render must have ended
        self.shared: SharedTier | None = None  # `[cache.shared]`: the tier nodes share
        # `[cluster]` with `[cache.shared]`: identical work made by one node at a time.
        self.leases: Leases | None = None
        self.tracing: tracing.Tracing | None = None  # `[tracing]`: a span per render

    def takes(self, job: Job) -> bool:
        """Every job (the producer of last resort)."""
        return True

    async def make(self, job: Job) -> Entry | None:
        """Fetch and transform (or pass through) one result, and cache it."""
        write = self.results.begin(job.key)
        began = time.time()
        try:
            if self.shared is not None:
                found = await self._from_shared(job)
                metrics.looked_up_shared(found is not None)
                if found is not None:
                    write.store(found)  # kept here too: the next request is a local hit
                    return found
            if self.leases is None:
                entry = await self._make_here(job, write)
            else:  # one node makes it; the others wait for it in the shared tier
                made: list[bool] = []
                entry = await self.leases.run(
                    job.key, lambda: self._make_shared(job, write, began, made),
                    lambda: self._from_shared(job))
                if not made:
                    if entry is not None:
                        write.store(entry)
                    else:
                        write.abandon()
                    return entry
        except BaseException:
            write.abandon()
            raise
        if entry is not None and self.shared is not None and self.leases is None:
            self.shared.put_result(entry, job.key, began)  # in the background
        return entry

    async def _make_here(self, job: Job, write: ResultWrite) -> Entry | None:
        """Fetch and transform in this worker, in a pool slot when it is image work."""
        if job.transforming or job.maybe_image:
            async with self.pool.admit(), self.pool.stages() as stages:
                return await self._make(job, write, stages)
        return await self._make(job, write, None)

    async def _make_shared(self, job: Job, write: ResultWrite, began: float,
                           made: list[bool]) -> Entry | None:
        """Make it here under the cluster's lease, and have it in the shared tier before the
        lease ends (the nodes waiting read it there; the answer waits for that write, at
        most the tier's timeout)."""
        assert self.shared is not None
        made.append(True)
        entry = await self._make_here(job, write)
        if entry is not None:
            upload = self.shared.put_result(entry, job.key, began)
            if upload is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(upload), self.shared.timeout)
        return entry

    async def _from_shared(self, job: Job) -> Entry | None:
        """The result as another node made it (no fetch, no render), if the bucket has it
        and it is within the TTL."""
        assert self.shared is not None
        found = await self.shared.get_result(job.source.identifier, job.path, job.key)
        if found is None or time.time() - found.created > self.results.ttl:
            return None
        found.shared = True
        return found

    async def _make(self, job: Job, write: ResultWrite, stages: Stages | None) -> Entry | None:
        fetched = await self._fetch(job)
        if fetched.too_large:
            write.abandon()
            return None
        layer_files, private = await self.originals.layer_files(job.source, job.steps,
                                                                job.fetch)
        if private and not fetched.private:  # a private layer makes the result private
            fetched = replace(fetched, private=True)
        if stages is not None:
            await stages.render()  # the bytes are in: now, and only now, a render slot
        kind = fetched.kind
        if kind and not job.original_only and (kind != "svg" or job.rasterise):
            entry = await self._render(job, fetched, write, layer_files)
            await write.finish(entry)
            return entry
        if job.transforming and kind != "svg":
            raise UnsupportedFormat(f"The file {job.path!r} is not an image that can be "
                                    "transformed")
        body, headers = await self._as_is(fetched, job.path)
        # A large file's digest would hold up the event loop for milliseconds.
        digest = (body_digest(body) if len(body) < 65536
                  else await asyncio.to_thread(body_digest, body))
        entry = _entry(body, headers, digest, fetched, job, 0.0)
        write.store(entry)
        return entry

    async def _fetch(self, job: Job) -> Fetched:
        """The original; with di-<path>, the default image when the file is in no source."""
        try:
            return await self.originals.fetch(job.source, job.path, job.fetch, job.transforming)
        except NotFound:
            plain = [s for s in job.steps if isinstance(s, Step)]
            fallback = next((s.default_image for s in reversed(plain) if s.default_image), None)
            if fallback is None:
                raise
            # The default image is the library's current one, whatever version was asked.
            return await self.originals.fetch(job.source, fallback,
                                              replace(job.fetch, version=None), job.transforming)

    async def _render(self, job: Job, fetched: Fetched, write: ResultWrite,
                      layer_files: dict[str, bytes] | None = None) -> Entry:
        """Render on a worker thread, where the result's file is written too; stopped inside
        libvips past max_render_seconds, or once nobody waits for it (cancelled)."""
        sharing = Sharing(self.mezzanines, popular=fetched.demand > 1)
        allowance = Budget(self.limits.max_render_seconds)
        if self.stopping:
            allowance.stop(SHUTDOWN)
        if self.cutoff is not None:
            allowance.end_by(self.cutoff)
        self.budgets.add(allowance)
        options = engine.RenderOptions(job.accept, self.images, self.limits,
                                       client_width=job.client_width,
                                       client_dpr=job.client_dpr,
                                       sharing=replace(sharing, defer=True), budget=allowance,
                                       custom_coordinates=fetched.custom_coordinates,
                                       layer_files=layer_files)

        def finish(rendered: engine.Rendered, digest: str, transform_ms: float) -> Entry:
            headers = {"content-type": rendered.content_type}
            if rendered.vary:
                headers["vary"] = ", ".join(rendered.vary)
            if rendered.dpr is not None:
                headers["content-dpr"] = f"{rendered.dpr:g}"
            entry = _entry(rendered.data, headers, digest, fetched, job, transform_ms)
            write.write(entry)
            return entry

        try:
            with tracing.span(self.tracing, "transformation",
                              {"pixelport.path": job.path}) as span:
                entry = await render_deferring(self.pool, fetched.data, job.steps, options,
                                               sharing, finish)
                if span is not None:  # the render's own time, without waiting for a thread
                    span.set_attribute("pixelport.render_ms", entry.transform_ms)
                return entry
        except asyncio.CancelledError:
            allowance.stop(ABANDONED)  # a queued render is dropped, a running one killed
            raise
        finally:
            self.budgets.discard(allowance)

    def drain(self, seconds: float) -> None:
        """Every render under way, and any started from now, ends within `seconds`."""
        self.cutoff = time.monotonic() + seconds
        for allowance in list(self.budgets):
            allowance.end_by(self.cutoff)

    def stop(self) -> None:
        """Stop every render under way, and those to come (at shutdown)."""
        self.stopping = True
        for allowance in list(self.budgets):
            allowance.stop(SHUTDOWN)

    async def _as_is(self, fetched: Fetched, path: str) -> tuple[bytes, dict[str, str]]:
        """A file served unchanged: SVG sanitised, locked-down headers, ranges allowed."""
        content_type = mime.content_type(path, fetched.content_type,
                                         CONTENT_TYPES.get(fetched.kind or ""))
        body = fetched.data
        if fetched.kind == "svg" or is_svg(content_type):
            # Parsing a large SVG takes long enough that it must not run on the event loop.
            body = await self.pool.run(sanitize_svg, body)
        headers = {"content-type": content_type, "accept-ranges": "bytes",
                   **passthrough_headers(content_type)}
        return body, headers


async def render_deferring(pool: WorkPool, data: bytes, steps: list[ChainItem],
                           options: engine.RenderOptions, sharing: Sharing,
                           finish: Finish) -> Entry:
    """Render on a worker thread and `finish` there; while another job makes the shared copy or
    the resize this request needs, wait on the event loop, not on the thread."""
    for _ in range(DEFERRALS):
        try:
            return await pool.run(_render, data, steps, options, finish)
        except Pending as pending:
            await pending.finished()
    # Past that, wait on the thread if need be: a request cannot be put off forever.
    return await pool.run(_render, data, steps, replace(options, sharing=sharing), finish)


def _render(data: bytes, steps: list[ChainItem], options: engine.RenderOptions,
            finish: Finish) -> Entry:
    """Render, digest the result and hand both to `finish`, all on the worker thread."""
    began = time.perf_counter()
    rendered = engine.render(data, steps, options)
    transform_ms = (time.perf_counter() - began) * 1000
    return finish(rendered, body_digest(rendered.data), transform_ms)


def _entry(body: bytes, headers: dict[str, str], digest: str, fetched: Fetched, job: Job,
           transform_ms: float) -> Entry:
    """The cache entry of an answer: the origin's validators and a strong ETag of the bytes."""
    if fetched.last_modified is not None:
        headers["last-modified"] = http_date(fetched.last_modified)
    if fetched.canonical_url:
        headers["link"] = f'<{fetched.canonical_url}>; rel="canonical"'
    if fetched.private:
        headers["x-private"] = "1"
    return Entry(body, headers, f'"{digest}"', job.source.identifier, job.path,
                 download_ms=fetched.download_ms, transform_ms=transform_ms)
