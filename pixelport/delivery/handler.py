"""The delivery handler: parse, answer from the result cache, else produce once and answer.

Hit path: parse → key → memory tier → send; no image work, no origin contact, no disk I/O
when the memory tier has it. Miss: one shared task per key fetches the original (itself
shared per file, or from the saved copy) and transforms it in the bounded pool.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pixelport.cache.coalesce import Coalescer
from pixelport.cache.entry import Entry, body_digest
from pixelport.cache.results import ResultCache
from pixelport.config import Config
from pixelport.delivery import keys, mime
from pixelport.delivery.endpoints import EndpointTable
from pixelport.delivery.hot import HotAnswers
from pixelport.delivery.hot import request_key as hot_key
from pixelport.delivery.http import (
    Receive,
    Scope,
    Send,
    http_date,
    send_bytes,
    send_stream,
)
from pixelport.delivery.request import DeliveryRequest, parse_target
from pixelport.delivery.respond import Timing, attachment, send_entry
from pixelport.delivery.sources import Fetched, Sources
from pixelport.errors import (
    BadSignature,
    Busy,
    NotFound,
    PixelportError,
    Unexpected,
    UnsupportedFormat,
)
from pixelport.origins.base import FetchOptions
from pixelport.security import signing
from pixelport.security.headers import is_svg, passthrough_headers
from pixelport.security.svg import sanitize_svg
from pixelport.transform import engine, registry
from pixelport.transform.formats import CONTENT_TYPES
from pixelport.transform.grammar import Param, split_chain
from pixelport.transform.mezzanine import Mezzanines, Pending, Sharing
from pixelport.transform.pool import WorkPool
from pixelport.transform.step import ChainItem, Step

log = logging.getLogger("pixelport.delivery")

# A srcset page asks each width in two formats at once: a request back from waiting for the
# shared copy then often finds the other format's job making its resize. Each wait on the
# event loop leaves the worker thread to other jobs (srcset +5-10 % with 3 threads, ninth
# round); only after this many does a request wait on its thread.
DEFERRALS = 3
RASTER = ("jpg", "png", "webp", "avif", "gif")  # an explicit f- of these rasterises SVG
# Types streamed straight from the origin (Range forwarded), never buffered or cached.
STREAMED = ("video/", "audio/", "application/zip", "application/gzip", "application/x-tar",
            "application/octet-stream", "application/pdf")


@dataclass
class Plan:
    """What a parsed request asks for."""

    request: DeliveryRequest
    steps: list[ChainItem]
    canonical: str  # the chain's stable spelling, for the cache key
    by_extension: str  # the content type the file name implies, "" when it implies none
    headers: dict[str, str]
    transforming: bool
    original_only: bool
    rasterise: bool
    client_width: int | None
    client_dpr: float | None

    @property
    def maybe_image(self) -> bool:
        """Whether the file may be an image (its name says so, or says nothing)."""
        return not self.by_extension or self.by_extension.startswith("image/")

    @property
    def plain(self) -> list[Step]:
        """The unconditional steps."""
        return [s for s in self.steps if isinstance(s, Step)]


class Delivery:
    """Answers every request that is not an admin or API route."""

    def __init__(self, config: Config, table: EndpointTable, pool: WorkPool,
                 results: ResultCache, sources: Sources, hot: HotAnswers | None = None,
                 shared_copies: Path | None = None) -> None:
        """`shared_copies`: the folder where worker processes share decoded copies."""
        self.config = config
        self.table = table
        self.pool = pool
        self.results = results
        self.sources = sources
        self.hot = hot
        self.work: Coalescer[Entry | None] = Coalescer()
        self.parsed: dict[str, tuple[list[ChainItem], str]] = {}
        self.mezzanines = Mezzanines(config.cache.decoded_memory, shared=shared_copies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for one delivery request."""
        request_id = secrets.token_hex(8)
        timing = Timing()
        head = scope["method"] == "HEAD"
        try:
            if scope["method"] not in ("GET", "HEAD"):
                await send_bytes(send, 405, {"allow": "GET, HEAD",
                                             "content-type": "text/plain"}, b"Method Not Allowed")
                return
            await self.deliver(scope, send, request_id, timing, head)
        except PixelportError as exc:
            await self.send_error(send, exc, request_id, timing, head)
        except Exception:
            log.exception("request %s failed unexpectedly", request_id)
            error = Unexpected(f"Internal error; request id {request_id}")
            await self.send_error(send, error, request_id, timing, head)

    def plan(self, scope: Scope) -> Plan:
        """Parse and check the request (signature included)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")
        request = parse_target(self.table, headers.get("host"), raw_path.split("?", 1)[0],
                               scope.get("query_string", b"").decode("latin-1"))
        signing.check_request(request, self.config.security)
        steps, canonical = self.parse_chain(request.transformation)
        plain = [s for s in steps if isinstance(s, Step)]
        original_only = any(step.original for step in plain)
        return Plan(
            request=request, steps=steps, canonical=canonical,
            by_extension=mime.guess(request.file_path) or "", headers=headers,
            transforming=bool(steps) and not original_only, original_only=original_only,
            rasterise=any(step.format in RASTER for step in plain),
            client_width=_hint(headers, "sec-ch-width", "width", integer=True),
            client_dpr=_hint(headers, "sec-ch-dpr", "dpr", integer=False),
        )

    def parse_chain(self, text: str) -> tuple[list[ChainItem], str]:
        """Parse a transformation string and spell it canonically, memoised.

        A hot URL's string repeats every request, and steps are never changed after parsing,
        so one parsed chain (and its cache-key spelling) serves every request.
        """
        found = self.parsed.get(text)
        if found is None:
            steps = registry.parse(text, self.config.transformations)
            found = (steps, registry.canonical(steps))
            if len(self.parsed) >= 4096:
                self.parsed.clear()
            self.parsed[text] = found
        return found

    async def deliver(self, scope: Scope, send: Send, request_id: str, timing: Timing,
                      head: bool) -> None:
        """Answer from the cache, or produce (once for all identical requests) and answer."""
        plan = self.plan(scope)
        request = plan.request
        if not plan.transforming and plan.by_extension.startswith(STREAMED):
            await self.stream(plan, send, request_id, timing, head)
            return
        variant = keys.variant(plan.steps, plan.headers, self.config.images, plan.maybe_image,
                               plan.client_width, plan.client_dpr)
        attach = request.flag("ik-attachment") == "true"
        key = keys.result_key(request.endpoint.identifier, request.file_path, plan.canonical,
                              variant, attach)
        entry = self.results.get_memory(key) or await self.results.get(key)
        if entry is not None:
            timing.describe("cache", "hit")
        else:
            entry, _ = await self.work.run(key, lambda: self.produce(plan, key))
            if entry is None:  # too large to buffer: stream it instead
                await self.stream(plan, send, request_id, timing, head)
                return
            timing.add("download", entry.download_ms)
            if entry.transform_ms:
                timing.add("transformation", entry.transform_ms)
            timing.describe("cache", "miss")
        self.check_private(entry, plan)
        status, sent = await send_entry(send, entry, plan.headers, timing, request_id,
                                        self.config.server.cache_max_age,
                                        request.file_path if attach else None, head)
        if status == 200 and not head and self.hot is not None:
            self.remember_hot(scope, sent, entry, key, request.expiry)

    def remember_hot(self, scope: Scope, sent: dict[str, str], entry: Entry, key: str,
                     expiry: str | None) -> None:
        """File this plain answer so the protocol can repeat it without ASGI (`hot.py`)."""
        assert self.hot is not None
        target = scope.get("raw_path") or b""
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request_key = hot_key(target, scope["headers"])
        if request_key is None:
            return
        headers = {k: v for k, v in sent.items() if k != "x-request-id"}
        headers["server-timing"] = "cache;desc=hit"
        self.hot.remember(request_key, headers, entry, key,
                          int(expiry) if expiry is not None else None)

    def check_private(self, entry: Entry, plan: Plan) -> None:
        """A private file needs a signed URL or a named transformation (as on ImageKit)."""
        if entry.headers.get("x-private") != "1":
            return
        named = any(p.key == "n" for p in _raw_params(plan.request.transformation))
        if plan.request.signature is None and not named:
            raise BadSignature("This file is private: a signed URL is required")

    async def produce(self, plan: Plan, key: str) -> Entry | None:
        """Fetch and transform (or pass through) one result, and cache it.

        Image work is admitted by the pool first (503 EBUSY when it is full), and waits there
        before downloading, so originals are held only by jobs about to run.
        """
        if plan.transforming or plan.maybe_image:
            async with self.pool.admit():
                return await self.make(plan, key)
        return await self.make(plan, key)

    async def make(self, plan: Plan, key: str) -> Entry | None:
        """The body of `produce`."""
        request = plan.request
        fetched = await self.fetch(plan)
        if fetched.too_large:
            return None
        kind = fetched.kind
        if kind and not plan.original_only and (kind != "svg" or plan.rasterise):
            sharing = Sharing(self.mezzanines, popular=fetched.demand > 1)
            options = engine.RenderOptions(
                plan.headers.get("accept", ""), self.config.images, self.config.limits,
                client_width=plan.client_width, client_dpr=plan.client_dpr,
                sharing=replace(sharing, defer=True))
            ticket = self.results.begin(key)

            def finish(rendered: engine.Rendered, digest: str, transform_ms: float) -> Entry:
                # In the render thread: the result's file is written there too.
                headers = {"content-type": rendered.content_type}
                if rendered.vary:
                    headers["vary"] = ", ".join(rendered.vary)
                if rendered.dpr is not None:
                    headers["content-dpr"] = f"{rendered.dpr:g}"
                entry = _entry(rendered.data, headers, digest, fetched, request, transform_ms)
                self.results.write_file(ticket, entry)
                return entry

            try:
                entry = await render_deferring(self.pool, fetched.data, plan.steps, options,
                                               sharing, finish)
            except BaseException:
                self.results.abandon(ticket)
                raise
            await self.results.finish(key, ticket, entry)
            return entry
        if plan.transforming and kind != "svg":
            raise UnsupportedFormat(f"The file {request.file_path!r} is not an image that can "
                                    "be transformed")
        body, headers = await self.as_is(fetched, request.file_path)
        # A large file's digest would hold up the event loop for milliseconds.
        digest = (body_digest(body) if len(body) < 65536
                  else await asyncio.to_thread(body_digest, body))
        entry = _entry(body, headers, digest, fetched, request, 0.0)
        await self.results.put(key, entry)
        return entry

    async def fetch(self, plan: Plan) -> Fetched:
        """The original; with di-<path>, the default image when the file is in no source."""
        request = plan.request
        options = FetchOptions(host=plan.headers.get("host"))
        try:
            return await self.sources.fetch(request.endpoint, request.file_path, options)
        except NotFound:
            fallback = next((s.default_image for s in reversed(plan.plain) if s.default_image),
                            None)
            if fallback is None:
                raise
            return await self.sources.fetch(request.endpoint, fallback, options)

    async def as_is(self, fetched: Fetched, path: str) -> tuple[bytes, dict[str, str]]:
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

    async def stream(self, plan: Plan, send: Send, request_id: str, timing: Timing,
                     head: bool) -> None:
        """A large file straight from the origin, Range forwarded; never buffered or cached."""
        request = plan.request
        options = FetchOptions(host=plan.headers.get("host"), byte_range=plan.headers.get("range"))
        started = time.perf_counter()
        original = await request.endpoint.chain.fetch(request.file_path, options)
        try:
            timing.add("download", (time.perf_counter() - started) * 1000)
            if original.status == 416:  # the range lies past the end: say so, without a body
                refused = {"accept-ranges": "bytes", "cache-control": "no-store",
                           "server-timing": timing.header(), "x-request-id": request_id}
                if original.content_range:
                    refused["content-range"] = original.content_range
                await send_bytes(send, 416, refused, b"", head)
                return
            content_type = mime.content_type(request.file_path, original.content_type, None)
            if is_svg(content_type):
                raise UnsupportedFormat("SVG files this large are not served")
            headers = {"content-type": content_type, "accept-ranges": "bytes",
                       "cache-control": f"public, max-age={self.config.server.cache_max_age}",
                       "server-timing": timing.header(), "x-request-id": request_id,
                       **passthrough_headers(content_type)}
            if original.size is not None:
                headers["content-length"] = str(original.size)
            if original.content_range:
                headers["content-range"] = original.content_range
            if original.etag:
                headers["etag"] = original.etag
            if original.last_modified is not None:
                headers["last-modified"] = http_date(original.last_modified)
            if request.flag("ik-attachment") == "true":
                headers["content-disposition"] = attachment(request.file_path)
            await send_stream(send, original.status, headers, original.chunks(), head)
        finally:
            await original.close()

    async def send_error(self, send: Send, error: PixelportError, request_id: str,
                         timing: Timing, head: bool) -> None:
        """The error contract: status, ik-error header, short body."""
        headers = {"content-type": "text/plain; charset=utf-8", "ik-error": error.header,
                   "x-request-id": request_id}
        if error.code in ("ENOENT", "EINVALID", "ELIMIT", "EFORMAT"):
            headers["cache-control"] = f"public, max-age={self.config.server.error_max_age}"
        else:
            headers["cache-control"] = "no-store"
        if isinstance(error, Busy):
            headers["retry-after"] = str(error.retry_after)
        if timing.entries:
            headers["server-timing"] = timing.header()
        log.info("request %s: %d %s", request_id, error.status, error.header)
        await send_bytes(send, error.status, headers, error.body.encode(), head)


# Called in the render thread with the rendered result, its digest and the render's time.
Finish = Callable[[engine.Rendered, str, float], Entry]


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


def _entry(body: bytes, headers: dict[str, str], digest: str, fetched: Fetched,
           request: DeliveryRequest, transform_ms: float) -> Entry:
    """The cache entry of an answer: the origin's validators and a strong ETag of the bytes."""
    if fetched.last_modified is not None:
        headers["last-modified"] = http_date(fetched.last_modified)
    if fetched.canonical_url:
        headers["link"] = f'<{fetched.canonical_url}>; rel="canonical"'
    if fetched.private:
        headers["x-private"] = "1"
    return Entry(body, headers, f'"{digest}"', request.endpoint.identifier, request.file_path,
                 download_ms=fetched.download_ms, transform_ms=transform_ms)


def _raw_params(transformation: str) -> list[Param]:
    return [p for step in split_chain(transformation) for p in step]


def _hint(headers: dict[str, str], name: str, legacy: str, integer: bool) -> Any:
    """A client hint (Sec-CH-Width, Sec-CH-DPR or the older Width/DPR) within sane bounds."""
    text = headers.get(name) or headers.get(legacy)
    if not text:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if integer:
        return int(value) if 1 <= value <= 10_000 else None
    return value if 0.1 <= value <= 5 else None
