"""The delivery handler: parse, fetch from the origin chain, transform or pass through, answer."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pixelport.config import Config
from pixelport.delivery import mime
from pixelport.delivery.endpoints import EndpointTable
from pixelport.delivery.http import (
    Receive,
    Scope,
    Send,
    http_date,
    not_modified,
    parse_range,
    send_bytes,
    send_stream,
    strong_etag,
)
from pixelport.delivery.request import DeliveryRequest, parse_target
from pixelport.errors import (
    Busy,
    LimitExceeded,
    NotFound,
    PixelportError,
    Unexpected,
    UnsupportedFormat,
)
from pixelport.origins.base import FetchOptions, Original
from pixelport.security import signing, svg
from pixelport.security.headers import is_svg, passthrough_headers
from pixelport.transform import engine, registry
from pixelport.transform.formats import CONTENT_TYPES, sniff
from pixelport.transform.pool import WorkPool
from pixelport.transform.step import ChainItem, Step

log = logging.getLogger("pixelport.delivery")

RASTER = ("jpg", "png", "webp", "avif", "gif")  # an explicit f- of these rasterises SVG
BUFFER_LIMIT = 8 * 1024 * 1024  # passthrough files up to this size get an ETag and local Range


@dataclass
class Timing:
    """Server-Timing entries in milliseconds."""

    entries: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, since: float) -> None:
        """Record the time from `since` (a perf_counter value) until now."""
        self.entries[name] = (time.perf_counter() - since) * 1000

    def header(self) -> str:
        """The Server-Timing header value."""
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in self.entries.items())


@dataclass
class Answer:
    """A response being assembled."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


class Delivery:
    """Answers every request that is not an admin route."""

    def __init__(self, config: Config, table: EndpointTable, pool: WorkPool) -> None:
        self.config = config
        self.table = table
        self.pool = pool

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
            error.status = 500
            await self.send_error(send, error, request_id, timing, head)

    async def deliver(self, scope: Scope, send: Send, request_id: str, timing: Timing,
                      head: bool) -> None:
        """Find the original, then transform it or pass it through."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")
        raw_path = raw_path.split("?", 1)[0]
        request = parse_target(self.table, headers.get("host"), raw_path,
                               scope.get("query_string", b"").decode("latin-1"))
        signing.check_request(request, self.config.security)
        steps = registry.parse(request.transformation, self.config.transformations)
        plain = [item for item in steps if isinstance(item, Step)]
        original_only = any(step.original for step in plain)
        transforming = bool(steps) and not original_only
        rasterise = any(step.format in RASTER for step in plain)
        by_extension = mime.guess(request.file_path) or ""
        forward_range = not transforming and not by_extension.startswith("image/")
        options = FetchOptions(host=headers.get("host"),
                               byte_range=headers.get("range") if forward_range else None)
        started = time.perf_counter()
        original = await self.fetch(request, plain, options)
        try:
            kind = sniff(await original.peek(1024)) if original.status == 200 else None
            # Images are always optimised; SVG stays SVG unless a raster f- is asked for.
            if kind and not original_only and (kind != "svg" or rasterise):
                answer = await self.transform(original, steps, headers, timing, started)
            elif transforming and kind != "svg":
                raise UnsupportedFormat(f"The file {request.file_path!r} is not an image that "
                                        "can be transformed")
            else:
                passed = await self.passthrough(original, request, headers, timing, started,
                                                kind, send, head, request_id)
                if passed is None:
                    return  # already streamed
                answer = passed
            self.finish(answer, original, request, headers, request_id, timing)
            if answer.status == 304:
                answer.body = b""
            await send_bytes(send, answer.status, answer.headers, answer.body, head)
        finally:
            await original.close()

    async def fetch(self, request: DeliveryRequest, steps: list[Step],
                    options: FetchOptions) -> Original:
        """The original; with di-<path>, the default image when the file is in no source."""
        chain = request.endpoint.chain
        try:
            return await chain.fetch(request.file_path, options)
        except NotFound:
            fallback = next((s.default_image for s in reversed(steps) if s.default_image), None)
            if fallback is None:
                raise
            return await chain.fetch(fallback, options)

    async def transform(self, original: Original, steps: list[ChainItem],
                        headers: dict[str, str], timing: Timing, started: float) -> Answer:
        """Read the whole original (bounded) and render it in the pool."""
        limit = self.config.limits.max_input_bytes
        data, complete = await original.read_upto(limit)
        if not complete:
            raise LimitExceeded(f"The original is larger than the limit of {limit} bytes")
        timing.measure("download", started)
        options = engine.RenderOptions(
            headers.get("accept", ""), self.config.images, self.config.limits,
            client_width=_hint(headers, "sec-ch-width", "width", integer=True),
            client_dpr=_hint(headers, "sec-ch-dpr", "dpr", integer=False),
        )
        began = time.perf_counter()
        rendered = await self.pool.run(engine.render, data, steps, options)
        timing.measure("transformation", began)
        answer = Answer(200, {"content-type": rendered.content_type}, rendered.data)
        if rendered.vary:
            answer.headers["vary"] = ", ".join(rendered.vary)
        if rendered.dpr is not None:
            answer.headers["content-dpr"] = f"{rendered.dpr:g}"
        return answer

    async def passthrough(self, original: Original, request: DeliveryRequest,
                          headers: dict[str, str], timing: Timing, started: float,
                          kind: str | None, send: Send, head: bool,
                          request_id: str) -> Answer | None:
        """Serve the file as it is: buffered when small, streamed when large."""
        content_type = mime.content_type(request.file_path, original.content_type,
                                         CONTENT_TYPES.get(kind or ""))
        answer = Answer(200, {"content-type": content_type, "accept-ranges": "bytes"})
        answer.headers.update(passthrough_headers(content_type))
        if original.status == 200 and (kind == "svg" or is_svg(content_type)):
            # An SVG opened directly is a document that can run scripts: serve a clean copy.
            data, complete = await original.read_upto(BUFFER_LIMIT)
            if not complete:
                raise LimitExceeded(f"SVGs larger than {BUFFER_LIMIT} bytes are not served")
            timing.measure("download", started)
            answer.body = await self.pool.run(svg.sanitize_svg, data)
            return answer
        if original.status != 206:
            data, complete = await original.read_upto(BUFFER_LIMIT)
            if complete:
                timing.measure("download", started)
                answer.body = data
                return answer
        # Large or partial: stream it with what the origin told us, never holding it whole.
        answer.status = original.status
        if original.size is not None:
            answer.headers["content-length"] = str(original.size)
        if original.content_range:
            answer.headers["content-range"] = original.content_range
        if original.etag:
            answer.headers["etag"] = original.etag
        self.finish(answer, original, request, headers, request_id, timing)
        if answer.status == 304:
            await send_bytes(send, 304, answer.headers, b"", head)
        else:
            await send_stream(send, answer.status, answer.headers, original.chunks(), head)
        return None

    def finish(self, answer: Answer, original: Original, request: DeliveryRequest,
               headers: dict[str, str], request_id: str, timing: Timing) -> None:
        """Caching, validators, timing, links; then 304 or 206 when the request allows."""
        h = answer.headers
        h["cache-control"] = f"public, max-age={self.config.server.cache_max_age}"
        if original.last_modified is not None:
            h["last-modified"] = http_date(original.last_modified)
        if answer.status == 200 and "etag" not in h and answer.body:
            h["etag"] = strong_etag(answer.body)
        if original.canonical_url:
            h["link"] = f'<{original.canonical_url}>; rel="canonical"'
        if request.flag("ik-attachment") == "true":
            h["content-disposition"] = _attachment(request.file_path)
        h["server-timing"] = timing.header()
        h["x-request-id"] = request_id
        if answer.status == 200 and not_modified(headers, h.get("etag"), original.last_modified):
            answer.status = 304
            h.pop("content-length", None)
            return
        if answer.status == 200 and answer.body and "accept-ranges" in h:
            _apply_range(answer, headers.get("range"))

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


def _apply_range(answer: Answer, header: str | None) -> None:
    size = len(answer.body)
    wanted = parse_range(header, size)
    if wanted is None:
        return
    if wanted is False:
        answer.status = 416
        answer.headers["content-range"] = f"bytes */{size}"
        answer.body = b""
        return
    assert isinstance(wanted, tuple)
    first, last = wanted
    answer.status = 206
    answer.headers["content-range"] = f"bytes {first}-{last}/{size}"
    answer.body = answer.body[first:last + 1]


def _attachment(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"

