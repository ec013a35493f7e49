"""Getting an original's bytes: saved copy, else one shared fetch through the origin chain.

Concurrent requests for the same file (any transformation) share one fetch. Limits: a
transformation's original is refused (ELIMIT) past `max_input_bytes`, from the declared length
before any byte of the body is read, else as soon as the bytes read pass it; without a
transformation, an image is buffered up to that size and any other file up to BUFFER_LIMIT, and
a larger one is TOO_LARGE: the caller streams it as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pixelport import tracing
from pixelport.cache.coalesce import Coalescer
from pixelport.cache.entry import Entry
from pixelport.cache.originals import OriginalStore
from pixelport.errors import LimitExceeded, NotFound, PixelportError
from pixelport.http_fields import http_date
from pixelport.lru import LRU
from pixelport.origins.base import FetchOptions, Original
from pixelport.origins.chain import OriginChain
from pixelport.origins.http import parse_http_date
from pixelport.transform import layer
from pixelport.transform.formats import sniff
from pixelport.transform.step import ChainItem

if TYPE_CHECKING:
    from pixelport.cache.shared import SharedTier

log = logging.getLogger("pixelport.produce")
BUFFER_LIMIT = 8 * 1024 * 1024  # non-image files up to this size are buffered and cached


class Source(Protocol):
    """Where an endpoint's originals come from (delivery's `Endpoint` is one)."""

    @property
    def identifier(self) -> str:
        """The endpoint's identifier: originals are told apart per endpoint."""
        ...

    @property
    def chain(self) -> OriginChain:
        """The media library, then the endpoint's origins."""
        ...


@dataclass
class Fetched:
    """A whole original in memory, or word that it is too large to buffer."""

    data: bytes
    kind: str | None  # sniffed image format, None for other files
    content_type: str | None = None
    last_modified: datetime | None = None
    etag: str | None = None
    canonical_url: str | None = None
    private: bool = False
    custom_coordinates: str | None = None  # a library file's fo-custom area
    download_ms: float = 0.0
    too_large: bool = False
    saved: bool = False  # served from the saved copy
    demand: int = 1  # requests it has served: more than one, and its variants share a decode


TOO_LARGE = Fetched(b"", None, too_large=True)


class Originals:
    """Fetches originals for the producers: one fetch per file at a time, saved copies."""

    def __init__(self, max_input_bytes: int, store: OriginalStore | None,
                 recent_bytes: int = 64 * 2**20, recent_ttl: float = 10.0) -> None:
        self.max_input_bytes = max_input_bytes
        self.store = store
        self.fetches: Coalescer[Fetched] = Coalescer()
        # Originals fetched moments ago: the variants of one file queued behind the pool
        # (a srcset burst) then still share one fetch after the first batch has finished.
        self.recent: OrderedDict[str, tuple[Fetched, float]] = OrderedDict()
        self.recent_bytes = recent_bytes
        self.recent_ttl = recent_ttl
        self.recent_used = 0
        self.joined: dict[str, int] = {}  # requests waiting on each fetch in flight
        self.seen: LRU[str, float] = LRU(4096)  # when each key was last fetched
        # `[cache.shared]` (with `save_originals`): saved originals shared by the nodes.
        self.shared: SharedTier | None = None
        self.tracing: tracing.Tracing | None = None  # `[tracing]`: a span per download

    async def fetch(self, endpoint: Source, path: str, options: FetchOptions,
                    transforming: bool = False) -> Fetched:
        """The original, buffered; TOO_LARGE for a file past the buffer limit that is served
        as it is, ELIMIT for one to transform past `max_input_bytes`."""
        fetched = await self._fetch(endpoint, path, options, transforming)
        if transforming and len(fetched.data) > self.max_input_bytes:  # a saved or held copy
            raise self._too_large()
        return fetched

    async def layer_files(self, endpoint: Source, steps: Sequence[ChainItem],
                          options: FetchOptions) -> tuple[dict[str, bytes], bool]:
        """The files a chain's layers read (images, library fonts), fetched as originals to
        transform are (saved copies, one shared fetch, max_input_bytes); and whether any is
        private (the result then is too)."""
        paths = sorted(layer.inputs(steps))
        if not paths:
            return {}, False
        found = await asyncio.gather(*(self._layer_file(endpoint, p, options) for p in paths))
        return ({path: f.data for path, f in zip(paths, found, strict=True)},
                any(f.private for f in found))

    async def _layer_file(self, endpoint: Source, path: str,
                          options: FetchOptions) -> Fetched:
        try:
            fetched = await self.fetch(endpoint, path, options, True)
        except NotFound as missing:
            raise NotFound(f"The layer file {path!r} was not found: {missing.message}") from None
        if fetched.too_large:
            raise LimitExceeded(f"The layer file {path!r} is too large")
        return fetched

    def _too_large(self) -> LimitExceeded:
        return LimitExceeded(f"The original is larger than the limit of {self.max_input_bytes} "
                             "bytes (max_input_bytes)")

    async def _fetch(self, endpoint: Source, path: str, options: FetchOptions,
                     transforming: bool) -> Fetched:
        # The Host is part of the key: origins that forward it may answer differently per host.
        # A transformation's fetch is capped differently from one served as it is.
        key = (f"{endpoint.identifier}\0{path}\0{options.host or ''}\0"
               f"{'t' if transforming else ''}\0{options.query}\0{options.version or ''}")
        now = time.monotonic()
        self._prune(now)
        held = self.recent.get(key)
        if held is not None:
            held[0].demand += 1
            return held[0]
        self.joined[key] = self.joined.get(key, 0) + 1

        async def load() -> Fetched:
            fetched = await self._load(endpoint, path, options, transforming)
            if not fetched.too_large:
                # Counted before anyone wakes: the first renderer knows the others are coming.
                fetched.demand = self.joined.pop(key, 1)
                last = self.seen.pop(key)
                now = time.monotonic()
                self.seen.put(key, now)
                if last is not None and now - last < self.recent_ttl:
                    fetched.demand += 1  # fetched moments ago too: more variants are coming
            return fetched

        fetched, shared = await self.fetches.run(key, load)
        if key not in self.fetches.running:
            self.joined.pop(key, None)  # joined after the fetch had finished
        if not shared and not fetched.too_large and fetched.demand > 1:
            # Only originals asked more than once: a stream of distinct originals would
            # otherwise fill the whole budget with files nobody asks again.
            self._remember(key, fetched)
        return fetched

    def _prune(self, now: float) -> None:
        """Drop the recent originals past their time (the oldest come first)."""
        while self.recent:
            key, (_, stored) = next(iter(self.recent.items()))
            if now - stored < self.recent_ttl:
                return
            self._drop(key)

    def _remember(self, key: str, fetched: Fetched) -> None:
        size = len(fetched.data)
        if size > self.recent_bytes // 4:
            return
        self._drop(key)
        self.recent[key] = (fetched, time.monotonic())
        self.recent_used += size
        while self.recent_used > self.recent_bytes:
            self._drop(next(iter(self.recent)))

    def _drop(self, key: str) -> None:
        held = self.recent.pop(key, None)
        if held is not None:
            self.recent_used -= len(held[0].data)

    async def purge(self, matches: Callable[[str, str], bool],
                    paths: Collection[str] | None = None) -> int:
        """Forget recently fetched originals of matching (endpoint, path); they are few
        (bounded by `recent_bytes`), so `paths` is not needed to find them."""
        for key in [k for k in self.recent if matches(*k.split("\0")[:2])]:
            self._drop(key)
        return 0  # results are what a purge counts; these are only their inputs

    async def _load(self, endpoint: Source, path: str, options: FetchOptions,
                    transforming: bool) -> Fetched:
        # A version (`ik-obj-version`) is saved apart from the file's current bytes.
        stored_as = options.query + (f"\0version\0{options.version}" if options.version else "")
        began = time.time()
        saved = (await self.store.get(endpoint.identifier, path, stored_as, options.host)
                 if self.store else None)
        if saved is None and self.store is not None and self.shared is not None:
            saved = await self._from_shared(endpoint.identifier, path, stored_as, options.host)
        if saved is not None and self.store is not None and self.store.fresh(saved):
            return _from_saved(saved)
        if saved is not None:
            options = replace(options, if_none_match=saved.etag or None,
                              if_modified_since=saved.headers.get("last-modified"))
        started = time.perf_counter()
        with tracing.span(self.tracing, "download", {"pixelport.endpoint": endpoint.identifier,
                                                     "pixelport.path": path}) as span:
            try:
                original = await endpoint.chain.fetch(path, options)
            except NotFound:
                raise  # the file is gone: a saved copy must not resurrect it
            except PixelportError as exc:
                if saved is None:
                    raise
                log.warning("origin failed for %r (%s); serving the saved copy", path,
                            exc.header)
                return _from_saved(saved)
            try:
                if original.status == 304 and saved is not None and self.store is not None:
                    saved.created = time.time()
                    await self._save(saved, stored_as, options.host, began)
                    return _from_saved(saved)
                fetched = await self._read(original, transforming)
            finally:
                await original.close()
            if span is not None:
                span.set_attribute("pixelport.bytes", len(fetched.data))
        fetched.download_ms = (time.perf_counter() - started) * 1000
        if self.store is not None and not fetched.too_large:
            await self._save(_to_saved(fetched, endpoint.identifier, path), stored_as,
                             options.host, began)
        return fetched

    async def _from_shared(self, endpoint: str, path: str, stored_as: str,
                           host: str | None) -> Entry | None:
        """The saved copy another node fetched, kept here too (fresh or not: an old one is
        revalidated as a local one would be)."""
        assert self.shared is not None and self.store is not None
        found = await self.shared.get_original(
            endpoint, path, OriginalStore.key(endpoint, path, stored_as, host))
        if found is not None:
            await self.store.put(found, stored_as, host)
        return found

    async def _save(self, entry: Entry, stored_as: str, host: str | None,
                    began: float) -> None:
        """Save a copy here, and in the shared tier in the background."""
        assert self.store is not None
        await self.store.put(entry, stored_as, host)
        if self.shared is not None:
            self.shared.put_original(
                entry, OriginalStore.key(entry.endpoint, entry.path, stored_as, host), began)

    async def _read(self, original: Original, transforming: bool) -> Fetched:
        if transforming and original.size is not None and original.size > self.max_input_bytes:
            raise self._too_large()  # from the declared length: no byte of the body is read
        kind = sniff(await original.peek(1024))
        limit = self.max_input_bytes if kind or transforming else BUFFER_LIMIT
        data, complete = await original.read_upto(limit)
        if not complete:
            if transforming:
                raise self._too_large()
            return TOO_LARGE
        return Fetched(data, kind, original.content_type, original.last_modified,
                       original.etag, original.canonical_url, original.private,
                       original.custom_coordinates)


def _to_saved(fetched: Fetched, endpoint: str, path: str) -> Entry:
    headers = {"content-type": fetched.content_type or "", "kind": fetched.kind or "",
               "link": fetched.canonical_url or "", "private": str(fetched.private),
               "coordinates": fetched.custom_coordinates or ""}
    if fetched.last_modified is not None:
        headers["last-modified"] = http_date(fetched.last_modified)
    return Entry(fetched.data, headers, fetched.etag or "", endpoint, path)


def _from_saved(entry: Entry) -> Fetched:
    headers = entry.headers
    return Fetched(entry.body, headers.get("kind") or None, headers.get("content-type") or None,
                   parse_http_date(headers.get("last-modified")), entry.etag or None,
                   headers.get("link") or None, headers.get("private") == "True",
                   headers.get("coordinates") or None, saved=True)
