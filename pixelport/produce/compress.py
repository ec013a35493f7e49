"""Files served as they are (text, scripts, fonts), compressed once per encoding and cached."""

from __future__ import annotations

import gzip
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import brotli

from pixelport.cache.entry import Entry, body_digest
from pixelport.cache.results import ResultCache
from pixelport.errors import Busy
from pixelport.produce.job import Job
from pixelport.transform.pool import WorkPool

if TYPE_CHECKING:
    from pixelport.cache.shared import SharedTier

# ImageKit answers non-media files with `Content-Encoding: br` or `gzip`. A result's encoded
# form is a result of its own, cached under its own key (`delivery.keys.encoded_key`) and made
# from the identity form on the work pool: a second request sends the stored bytes, and the
# event loop never compresses. Media, archives and WOFF/WOFF2 are compressed already, and a
# body under MIN_BYTES gains less than the headers cost: those are sent as they are.
MIN_BYTES = 1024
_TYPES = frozenset({
    "application/javascript", "application/x-javascript", "application/json",
    "application/manifest+json", "application/xml", "application/xhtml+xml",
    "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl",
    "application/wasm", "image/svg+xml",
    "font/ttf", "font/otf", "font/sfnt", "application/vnd.ms-fontobject",
    "application/x-font-ttf", "application/x-font-otf", "application/font-sfnt",
})
_FONTS = ("font/", "application/vnd.ms-fontobject", "application/x-font", "application/font")
# Compressed once and kept, so it may be slow, but the first request waits for it. Measured
# on a 200 KB source file (one core): brotli 11 costs 1.2 ms per KB (the smallest output),
# 9 0.11 ms, 5 0.02 ms (4 % larger than 9); gzip 9 0.1 ms, 6 0.025 ms. So the best quality
# for small bodies only, and at most ~0.2 s for the largest buffered file (8 MiB).
_BROTLI_QUALITY = ((64 * 1024, 11), (1024 * 1024, 9))
_GZIP_LEVEL = ((1024 * 1024, 9),)
# `[cache.shared]`: encoded forms are written to the bucket like results, and a node asks it
# before compressing. Measured (one core, a script-like body, the qualities above): brotli
# 17 ms for 20 KB, 57 ms for 64 KB, 20 ms for 200 KB, 58 ms for 1 MB; gzip 0.4, 2, 7 and
# 35 ms; a bucket GET 4 ms (moto on the same machine; a real bucket's more). So a br form is
# always looked for; a gzip one only past LOCAL_GZIP, or when the identity form is not here
# either (it would come from the bucket or the origin anyway).
LOCAL_GZIP = 256 * 1024


def essence(content_type: str) -> str:
    """The media type alone, lower-cased (`text/css; charset=utf-8` → `text/css`)."""
    return content_type.split(";", 1)[0].strip().lower()


def compressible_type(content_type: str) -> bool:
    """Whether files of this type are compressed (text-like; fonts other than WOFF/WOFF2)."""
    kind = essence(content_type)
    return (kind.startswith("text/") or kind in _TYPES or kind.endswith(("+json", "+xml")))


def compressible(entry: Entry) -> bool:
    """Whether an entry is sent compressed to clients that accept it."""
    return (entry.body_file is None and len(entry.body) >= MIN_BYTES
            and "content-encoding" not in entry.headers
            and compressible_type(entry.headers.get("content-type", "")))


def with_vary(headers: dict[str, str], name: str) -> dict[str, str]:
    """`headers` with `name` added to their Vary (once)."""
    present = [part.strip() for part in headers.get("vary", "").split(",") if part.strip()]
    if name.lower() not in (part.lower() for part in present):
        headers["vary"] = ", ".join([*present, name])
    return headers


def encode(body: bytes, encoding: str, content_type: str) -> bytes:
    """`body` compressed as `encoding` ("br" or "gzip"); blocking (run on a worker thread)."""
    size = len(body)
    if encoding == "br":
        quality = next((q for limit, q in _BROTLI_QUALITY if size <= limit), 5)
        mode = (brotli.MODE_FONT if essence(content_type).startswith(_FONTS)
                else brotli.MODE_TEXT if compressible_type(content_type) else brotli.MODE_GENERIC)
        return bytes(brotli.compress(body, mode=mode, quality=quality))
    if encoding == "gzip":
        level = next((lv for limit, lv in _GZIP_LEVEL if size <= limit), 6)
        return gzip.compress(body, compresslevel=level, mtime=0)  # mtime 0: the same bytes
    raise ValueError(f"unknown content coding {encoding!r}")


def _encode_and_digest(body: bytes, encoding: str, content_type: str) -> tuple[bytes, str]:
    data = encode(body, encoding, content_type)
    return data, body_digest(data)


class Compressor:
    """Makes a result's encoded form: the jobs with an `encoding`.

    The identity form comes from the result cache, else from `plain` (production, so an
    identical identity request shares its making); a file that is not to be compressed is
    answered in its identity form.
    """

    def __init__(self, pool: WorkPool, results: ResultCache,
                 plain: Callable[[Job], Awaitable[Entry | None]]) -> None:
        self.pool = pool
        self.results = results
        self.plain = plain
        self.shared: SharedTier | None = None  # `[cache.shared]`: forms other nodes made

    def takes(self, job: Job) -> bool:
        """The jobs for an encoded form."""
        return job.encoding is not None

    async def make(self, job: Job) -> Entry | None:
        """The encoded form of the job's result (cached), or its identity form."""
        assert job.encoding is not None
        # Announced before the identity form is read: a purge made from now on wins, so an
        # encoded copy of bytes purged meanwhile is never kept.
        write = self.results.begin(job.key)
        began = time.time()  # a purge from now on keeps the form out of the bucket
        try:
            identity = replace(job, key=job.identity_key, encoding=None)
            entry = (self.results.get_memory(identity.key)
                     or await self.results.get(identity.key))
            if entry is not None and not compressible(entry):
                write.abandon()
                return entry
            if self.shared is not None and (entry is None or job.encoding == "br"
                                            or len(entry.body) > LOCAL_GZIP):
                found = await self._from_shared(job)
                if found is not None:
                    write.store(found)  # kept here too: the next request is a local hit
                    return found
            if entry is None:
                entry = await self.plain(identity)
            if entry is None or not compressible(entry):
                write.abandon()
                return entry
            try:
                encoded = await self.encoded(entry, job.encoding)
            except Busy:
                # The pool's queue is full: the bytes as they are beat a 503 (the encoded
                # form is made by a later request).
                write.abandon()
                return entry
        except BaseException:
            write.abandon()
            raise
        write.store(encoded)
        if self.shared is not None:
            self.shared.put_result(encoded, job.key, began)  # in the background
        return encoded

    async def _from_shared(self, job: Job) -> Entry | None:
        """The encoded form as another node made it, if the bucket has it, within the TTL."""
        assert self.shared is not None
        found = await self.shared.get_result(job.source.identifier, job.path, job.key)
        if found is None or time.time() - found.created > self.results.ttl:
            return None
        found.shared = True
        return found

    async def encoded(self, entry: Entry, encoding: str) -> Entry:
        """`entry` compressed on the work pool (admitted like a render: 503 past its queue)."""
        began = time.perf_counter()
        content_type = entry.headers.get("content-type", "")
        async with self.pool.admit():
            body, digest = await self.pool.run(_encode_and_digest, entry.body, encoding,
                                               content_type)
        headers = with_vary(dict(entry.headers), "Accept-Encoding")
        headers["content-encoding"] = encoding
        # Ranges are served from the identity form (a Range request is never encoded).
        headers.pop("accept-ranges", None)
        return Entry(body, headers, f'"{digest}"', entry.endpoint, entry.path,
                     created=entry.created,  # expires with the bytes it was made from
                     download_ms=entry.download_ms,
                     transform_ms=entry.transform_ms + (time.perf_counter() - began) * 1000)
