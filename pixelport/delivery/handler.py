"""The delivery handler: parse, answer from the result cache, else have it produced and answer.

HTTP only. Hit path: parse → key → memory tier → send; no image work, no origin contact, no
disk I/O when the memory tier has it. Miss: a `Job` (what to make) goes to the production layer
(`pixelport.produce`), which makes it once for every identical request; a file too large to
buffer is streamed from the origin as it is.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from pixelport import metrics
from pixelport.asgi import Receive, Scope, Send, send_bytes, send_stream
from pixelport.cache.entry import Entry
from pixelport.cache.results import ResultCache
from pixelport.config import Config
from pixelport.delivery import keys
from pixelport.delivery.account import DEFAULT, Account
from pixelport.delivery.encoding import negotiate
from pixelport.delivery.endpoints import EndpointTable
from pixelport.delivery.hot import HotAnswers
from pixelport.delivery.hot import request_key as hot_key
from pixelport.delivery.inputs import RequestInputs
from pixelport.delivery.recent import RecentErrors
from pixelport.delivery.request import DeliveryRequest, canonical_query, parse_target
from pixelport.delivery.respond import Timing, attachment, open_body, send_entry
from pixelport.errors import (
    BadSignature,
    Busy,
    NotFound,
    PixelportError,
    Unexpected,
    UnsupportedFormat,
)
from pixelport.http_fields import http_date
from pixelport.lru import LRU
from pixelport.origins.base import FetchOptions
from pixelport.produce import compress, mime
from pixelport.produce.job import Job, NotReady
from pixelport.produce.production import Production
from pixelport.security import signing
from pixelport.security.headers import is_svg, passthrough_headers
from pixelport.transform import registry
from pixelport.transform.grammar import split_chain
from pixelport.transform.step import ChainItem, Step
from pixelport.video import ladder

log = logging.getLogger("pixelport.delivery")
T = TypeVar("T")

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
    headers: dict[str, str]  # all of them, for how the answer is sent (ranges, conditionals)
    inputs: RequestInputs  # those that change what the answer is
    transforming: bool
    original_only: bool
    rasterise: bool
    video: bool = False  # made by the video producer (a video transformed, or made from one)

    @property
    def derivative(self) -> str | None:
        """What the URL's suffix asks to be made of the file (request.DERIVATIVES)."""
        return self.request.derivative

    @property
    def maybe_image(self) -> bool:
        """Whether the file may be an image (its name says so, or says nothing)."""
        return not self.by_extension or self.by_extension.startswith("image/")


class Delivery:
    """Answers every request that is not an admin or API route."""

    def __init__(self, config: Config, table: EndpointTable, results: ResultCache,
                 production: Production, hot: HotAnswers | None = None) -> None:
        self.config = config
        self.table = table
        self.results = results
        self.production = production
        self.hot = hot
        self.errors = RecentErrors()  # the overview's recent errors, fed by send_error
        # Answers from the result cache, and results made: the overview's hit ratio (hot
        # answers count their own, HotAnswers.served).
        self.hits = self.misses = 0
        self.parsed: LRU[str, tuple[list[ChainItem], str]] = LRU(4096)
        self.named: Mapping[str, str] = config.transformations
        # `[cache.shared]`: a stream's part another node made, by (endpoint, path, key).
        self.shared_part: Callable[[str, str, str], Awaitable[Entry | None]] | None = None

    def use_named(self, named: Mapping[str, str], account: Account = DEFAULT) -> None:
        """Expand `n-<name>` with these named transformations from now on (on the endpoints
        of `account`)."""
        if account is DEFAULT:
            self.named = named
        else:
            account.named = named
        self.parsed = LRU(4096)  # chains parsed with the old ones

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point for one delivery request."""
        request_id = secrets.token_hex(8)
        timing = Timing()
        head = scope["method"] == "HEAD"
        vary: list[str] = []  # the headers the answer depends on, once the request is planned
        try:
            if scope["method"] not in ("GET", "HEAD"):
                await send_bytes(send, 405, {"allow": "GET, HEAD",
                                             "content-type": "text/plain"}, b"Method Not Allowed")
                return
            await self.deliver(scope, receive, send, request_id, timing, head, vary)
        except ClientGone:
            log.info("request %s: the client left before its answer was made", request_id)
        except PixelportError as exc:
            await self.send_error(send, exc, request_id, timing, head, vary)
        except Exception:
            log.exception("request %s failed unexpectedly", request_id)
            error = Unexpected(f"Internal error; request id {request_id}")
            await self.send_error(send, error, request_id, timing, head, vary)

    def plan(self, scope: Scope) -> Plan:
        """Parse and check the request (signature included)."""
        headers = request_headers(scope)
        inputs = RequestInputs.read(headers)
        raw_path = (scope.get("raw_path") or quote(scope["path"]).encode()).decode("latin-1")
        request = parse_target(self.table, inputs.host, raw_path.split("?", 1)[0],
                               scope.get("query_string", b"").decode("latin-1"))
        derivative = request.derivative
        account = request.endpoint.account
        if derivative != "abs-part":  # a stream's parts are named by a MAC (keys.ladder_id)
            signing.check_request(request, account.security or self.config.security)
        steps, canonical = self.parse_chain(request.transformation, account)
        plain = [s for s in steps if isinstance(s, Step)]
        original_only = any(step.original for step in plain)
        by_extension = mime.guess(request.file_path) or ""
        if derivative in ("hls", "dash"):
            ladder.resolutions(steps)  # 400 now for what a stream does not take
        if derivative == "video":
            by_extension = "video/mp4"  # ik-video.mp4: the file is a video, whatever its name
        made = derivative in ("thumbnail", "gif-video", "hls", "dash")
        return Plan(
            request=request, steps=steps, canonical=canonical, by_extension=by_extension,
            headers=headers, inputs=inputs,
            transforming=made or (bool(steps) and not original_only),
            original_only=original_only and not made,
            rasterise=any(step.format in RASTER for step in plain),
            video=made or by_extension.startswith("video/"),
        )

    def key(self, plan: Plan) -> str:
        """The result cache key of a planned request."""
        request = plan.request
        if plan.derivative in ("hls", "dash"):
            return ladder.part_key(self.ladder_id(plan), ladder.MANIFESTS[plan.derivative])
        if plan.video and plan.derivative != "thumbnail":
            variant = keys.video_variant(plan.steps, plan.inputs, self.config.images)
        else:
            variant = keys.variant(plan.steps, plan.inputs, self.config.images)
        canonical = plan.canonical
        if plan.derivative is not None:
            canonical += f"|{plan.derivative}"  # a thumbnail is not the video, nor its GIF
        return keys.result_key(request.endpoint.identifier, request.file_path, canonical,
                               variant, request.flag("ik-attachment") == "true",
                               canonical_query(request.origin_query), self.origin_host(plan),
                               request.version)

    def ladder_id(self, plan: Plan) -> str:
        """The name of the stream a manifest request's ladder makes (both protocols share
        it: one encode serves HLS and DASH)."""
        request = plan.request
        ladder_key = keys.result_key(request.endpoint.identifier, request.file_path,
                                     plan.canonical + "|abs", "", False,
                                     canonical_query(request.origin_query),
                                     self.origin_host(plan), request.version)
        return keys.ladder_id(ladder_key, self.config.security.private_key)

    def origin_host(self, plan: Plan) -> str | None:
        """The Host sent on to the origin: the client's, where an origin of the endpoint
        forwards it (then part of every key), else none."""
        return plan.inputs.host if plan.request.endpoint.chain.forwards_host else None

    def encodable(self, plan: Plan) -> bool:
        """Whether the answer may be encoded (if the file turns out compressible): never for
        video or what is made from it, nor for a file whose name says it is of a type that
        is never compressed (images: no lookup of an encoded form on their hot path)."""
        if plan.video or plan.derivative is not None:
            return False
        return not plan.by_extension or compress.compressible_type(plan.by_extension)

    def encoding(self, plan: Plan) -> str | None:
        """The content coding (br, gzip) the answer takes if the file is compressible, from
        the client's Accept-Encoding; None: the identity."""
        return negotiate(plan.inputs.accept_encoding) if self.encodable(plan) else None

    def job(self, plan: Plan, key: str, encoding: str | None = None) -> Job:
        """What the production layer is to make for a planned request (`encoding`: the
        result's form compressed so, produce/compress.py)."""
        request, inputs = plan.request, plan.inputs
        return Job(key=keys.encoded_key(key, encoding) if encoding else key,
                   identity_key=key, encoding=encoding,
                   source=request.endpoint, path=request.file_path,
                   fetch=FetchOptions(host=self.origin_host(plan), query=request.origin_query,
                                      version=request.version),
                   steps=plan.steps, transforming=plan.transforming,
                   original_only=plan.original_only, rasterise=plan.rasterise,
                   maybe_image=plan.maybe_image, accept=inputs.accept,
                   client_width=inputs.client_width, client_dpr=inputs.client_dpr,
                   video=plan.video and plan.transforming,
                   derivative=plan.derivative if plan.derivative != "video" else None,
                   ladder=(self.ladder_id(plan) if plan.derivative in ("hls", "dash")
                           else None))

    def parse_chain(self, text: str,
                    account: Account = DEFAULT) -> tuple[list[ChainItem], str]:
        """Parse a transformation string and spell it canonically, memoised.

        A hot URL's string repeats every request, and steps are never changed after parsing,
        so one parsed chain (and its cache-key spelling) serves every request. A sub-account
        with named transformations of its own has its own entries (`n-` differs by account).
        """
        named = account.named
        memo = text if named is None else f"{account.name}\0{text}"
        found = self.parsed.get(memo)
        if found is None:
            steps = registry.parse(text, self.named if named is None else named)
            found = (steps, registry.canonical(steps))
            self.parsed.put(memo, found)
        return found

    async def deliver(self, scope: Scope, receive: Receive, send: Send, request_id: str,
                      timing: Timing, head: bool, vary: list[str]) -> None:
        """Answer from the cache, or produce (once for all identical requests) and answer."""
        plan = self.plan(scope)
        vary.extend(keys.vary(plan.steps, self.config.images))
        request = plan.request
        if plan.derivative == "abs-part":
            await self.send_part(plan, send, request_id, timing, head)
            return
        if not plan.transforming and plan.by_extension.startswith(STREAMED):
            await self.stream(plan, send, request_id, timing, head)
            return
        attach = request.flag("ik-attachment") == "true"
        key = self.key(plan)
        # A Range is of the identity form: a ranged request is never answered encoded.
        coding = None if "range" in plan.headers else self.encoding(plan)
        sent_key = keys.encoded_key(key, coding) if coding else key
        tier = "memory"  # where the entry was found, for the metrics
        entry = self.results.get_memory(sent_key)
        if entry is None:
            entry, tier = await self.results.get(sent_key), "disk"
        if entry is None and coding is not None:
            plain, plain_tier = self.results.get_memory(key), "memory"
            if plain is None:
                plain, plain_tier = await self.results.get(key), "disk"
            if plain is not None and not compress.compressible(plain):
                # Sent as it is (an image, a small file).
                entry, sent_key, tier = plain, key, plain_tier
        opened = await open_body(entry) if entry is not None else None
        if entry is not None and entry.body_file is not None and opened is None:
            entry = None  # its file went (evicted, purged) after the entry was read
        if entry is not None:
            timing.describe("cache", "hit")
            self.hits += 1
            metrics.looked_up(tier, self.results.disk is not None, self.hot is not None)
        else:
            self.misses += 1
            metrics.looked_up(None, self.results.disk is not None, self.hot is not None)
            try:
                entry = await unless_gone(receive,
                                          self.production.make(self.job(plan, key, coding)))
            except NotReady as pending:
                await self.send_not_ready(send, plan, pending, request_id, head)
                return
            if entry is None:  # too large to buffer: stream it instead
                await self.stream(plan, send, request_id, timing, head)
                return
            if "content-encoding" not in entry.headers:
                sent_key = key  # the file is not compressed: its identity form came back
            opened = await open_body(entry)
            if entry.body_file is not None and opened is None:
                raise Unexpected(f"The result went before it was sent; request id {request_id}")
            if entry.shared:  # made by another node: neither fetched nor rendered here
                timing.describe("cache", "shared")
            else:
                timing.add("download", entry.download_ms)
                if entry.transform_ms:
                    timing.add("transformation", entry.transform_ms)
                metrics.made(entry.download_ms, entry.transform_ms)
                timing.describe("cache", "miss")
        try:
            self.check_private(entry.headers.get("x-private") == "1", plan)
            status, sent = await send_entry(send, entry, plan.headers, timing, request_id,
                                            self.config.server.cache_max_age,
                                            download_name(request) if attach else None, head,
                                            opened, self.encodable(plan))
        finally:
            if opened is not None:
                opened.close()
        # Not an identity answer to a client that takes an encoding (sent so while the pool
        # was full): repeated, it would keep that client from the encoded form.
        stopgap = coding is not None and sent_key == key and compress.compressible(entry)
        if (status == 200 and not head and self.hot is not None and entry.body_file is None
                and not stopgap):
            self.remember_hot(scope, sent, entry, sent_key, request.expiry)

    async def send_part(self, plan: Plan, send: Send, request_id: str, timing: Timing,
                        head: bool) -> None:
        """A file of an adaptive bitrate stream, as its ladder job cached it."""
        assert plan.request.part is not None
        ladder_id, name = plan.request.part
        entry = None
        if re.fullmatch(r"[0-9a-f]{32}", ladder_id) and ladder.PART_NAME.match(name):
            key = ladder.part_key(ladder_id, name)
            entry = await self.results.get(key)
            if entry is None and self.shared_part is not None:
                request = plan.request  # its manifest may have come from the bucket
                entry = await self.shared_part(request.endpoint.identifier,
                                               request.file_path, key)
        if entry is None:
            raise NotFound("This part of a stream is not here (or no longer): ask for the "
                           "stream's manifest again")
        timing.describe("cache", "shared" if entry.shared else "hit")
        await send_entry(send, entry, plan.headers, timing, request_id,
                         self.config.server.cache_max_age, None, head)

    async def send_not_ready(self, send: Send, plan: Plan, pending: NotReady, request_id: str,
                             head: bool) -> None:
        """A video job still under way: 302 to the original video (ImageKit's answer), or
        202 with an empty body (thumbnails), never cached."""
        headers = {"cache-control": "no-store", "x-request-id": request_id}
        if not pending.redirect:
            headers["retry-after"] = "5"
            await send_bytes(send, 202, headers, b"", head)
            return
        request = plan.request
        prefix = "/" + request.prefix
        location = prefix + request.raw_file_path
        if request.origin_query:
            location += "?" + request.origin_query
        security = request.endpoint.account.security or self.config.security
        key = security.private_key
        if key and (request.signature is not None
                    or signing.required_for(request.endpoint.config, security)):
            # Signed as the SDKs sign: the target after the endpoint's prefix, then the expiry.
            target = location[len(prefix):]
            signature = signing.sign(key, signing.string_to_sign(target, request.expiry))
            joiner = "&" if "?" in location else "?"
            if request.expiry is not None:
                location += f"{joiner}ik-t={request.expiry}"
                joiner = "&"
            location += f"{joiner}ik-s={signature}"
        headers["location"] = location
        await send_bytes(send, 302, headers, b"", head)

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

    def check_private(self, private: bool, plan: Plan) -> None:
        """A private file needs a signed URL, or a chain of named transformations and nothing
        else (as on ImageKit): a name unlocks its own output, not whatever follows it."""
        if private and plan.request.signature is None and not _only_named(plan):
            raise BadSignature("This file is private: a signed URL is required")

    async def stream(self, plan: Plan, send: Send, request_id: str, timing: Timing,
                     head: bool) -> None:
        """A large file straight from the origin, Range forwarded; never buffered or cached."""
        request = plan.request
        options = FetchOptions(host=self.origin_host(plan), byte_range=plan.headers.get("range"),
                               query=request.origin_query, version=request.version)
        started = time.perf_counter()
        original = await request.endpoint.chain.fetch(request.file_path, options)
        try:
            self.check_private(original.private, plan)
            download_ms = (time.perf_counter() - started) * 1000
            timing.add("download", download_ms)
            metrics.made(download_ms, 0.0)
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
                headers["content-disposition"] = attachment(download_name(request))
            await send_stream(send, original.status, headers, original.chunks(), head)
        finally:
            await original.close()

    async def send_error(self, send: Send, error: PixelportError, request_id: str,
                         timing: Timing, head: bool, vary: list[str]) -> None:
        """The error contract: status, ik-error header, short body.

        An error the request alone decides is cacheable for a while, with the same `Vary` as
        the answer would have had: `w-auto` that is ELIMIT for one client width only must not
        be served to every client by a shared cache.
        """
        headers = {"content-type": "text/plain; charset=utf-8", "ik-error": error.header,
                   "x-request-id": request_id}
        if error.code in ("ENOENT", "EINVALID", "ELIMIT", "EFORMAT"):
            headers["cache-control"] = f"public, max-age={self.config.server.error_max_age}"
            if vary:
                headers["vary"] = ", ".join(vary)
        else:
            headers["cache-control"] = "no-store"
        if isinstance(error, Busy):
            headers["retry-after"] = str(error.retry_after)
        if timing.entries:
            headers["server-timing"] = timing.header()
        log.info("request %s: %d %s", request_id, error.status, error.header)
        self.errors.record(error.code)
        metrics.error_answered(error.code)
        await send_bytes(send, error.status, headers, error.body.encode(), head)


class ClientGone(Exception):
    """The client hung up while its answer was being made: nothing is sent."""


async def unless_gone(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result, or ClientGone when the client hangs up first. `work` is then
    cancelled: production stops what no other request waits for (a render included)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_hung_up(receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        raise ClientGone
    return task.result()


async def _hung_up(receive: Receive) -> None:
    """Return when the client disconnects (ASGI's `http.disconnect`)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):
            # The request is whole: the next message can only be the disconnect. A server
            # that answers at once again says nothing of it: wait for ever (until cancelled).
            if (await receive())["type"] == "http.disconnect":
                return
            await asyncio.get_running_loop().create_future()


def _only_named(plan: Plan) -> bool:
    """Whether the chain is named transformations alone (`n-thumb`, `n-a:n-b`), each a step."""
    steps = split_chain(plan.request.transformation)
    return bool(steps) and all(len(step) == 1 and step[0].key == "n" for step in steps)


def download_name(request: DeliveryRequest) -> str:
    """What a download (`ik-attachment=true`) is named: the URL's SEO name where it has one."""
    return request.seo_name or request.file_path


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names lower-cased (the last of repeated ones counts)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
