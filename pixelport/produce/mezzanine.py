"""Decoded, reduced copies of large JPEG originals, shared by the variants asked of them.

A responsive page asks one original at many widths and formats within moments. Decoding a
12 MP JPEG is most of the cost of each variant, so the second request for the same original
(within `ttl` seconds) decodes it once more, at the largest DCT shrink that keeps its longest
side at or above `transform.sharing.MIN_SIDE`, and keeps that copy in memory; every later
variant no larger than the copy is resized from it instead of decoding the file again. The
first request goes the direct way, so a stream of unique originals pays nothing extra, unless
other requests for the same original were already waiting for its download (`popular`): then
it builds the copy at once and they share it. Shared by worker threads.

With several worker processes, a copy is built by one of them and shared through a file
(`shared_copies.py`): another worker's request waits for it rather than decode again.

Originals are told apart without hashing them (a digest of a 4 MB file costs 2-5 ms, a tenth
of its render): by length and a checksum of their first and last 64 KiB, and a copy is only
used for the very bytes it was made from (compared in full unless they are the same object,
as they are for variants sharing one fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelport.lru import LRU
from pixelport.produce.shared_copies import SharedCopies

_EDGE = 65536
Key = tuple[int, int, int]


def _building() -> Future[None]:
    """A copy being built: threads wait for it, coroutines through `Pending.finished`."""
    build: Future[None] = Future()
    build.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it for others
    return build


class Pending(Exception):
    """Raised instead of blocking a worker thread while another job builds the copy.

    A blocked worker is a core left idle for the length of a 12 MP decode (80 ms), with
    work queued behind it; the request waits on the event loop instead and comes back.
    Another thread's build is a Future; another process's is watched with `over()`.
    """

    def __init__(self, build: Future[None] | None = None,
                 over: Callable[[], bool] | None = None) -> None:
        super().__init__("the shared copy is being built")
        self.build = build
        self.over = over

    async def finished(self, timeout: float = 30.0) -> None:
        """Wait without holding a thread until the build is over, `timeout` seconds at most."""
        with contextlib.suppress(TimeoutError):
            if self.build is not None:
                await asyncio.wait_for(asyncio.wrap_future(self.build), timeout)
            elif self.over is not None:
                async with asyncio.timeout(timeout):
                    while not await asyncio.to_thread(self.over):
                        await asyncio.sleep(POLL)


POLL = 0.005  # how often a build in another process is looked at


def _follow(build: Future[None], defer: bool) -> None:
    """Wait for another thread's build to end, or with `defer` raise Pending at once."""
    if defer:
        raise Pending(build)
    wait([build], timeout=30)


def _await_file(over: Callable[[], bool], defer: bool) -> None:
    """Wait for another process's build to end, or with `defer` raise Pending at once."""
    if defer:
        raise Pending(over=over)
    deadline = time.monotonic() + 30
    while not over() and time.monotonic() < deadline:
        time.sleep(POLL)


def quick_key(data: bytes) -> Key:
    """Length and checksums of both ends: cheap, and different for different files in practice."""
    view = memoryview(data)
    return len(data), zlib.crc32(view[:_EDGE]), zlib.crc32(view[-_EDGE:])


class Mezzanines:
    """A bounded, short-lived store of decoded copies of originals, with the originals."""

    def __init__(self, capacity: int, ttl: float = 30.0, shared: Path | None = None) -> None:
        """`shared`: a folder through which worker processes share their copies."""
        self.capacity = capacity
        self.ttl = ttl
        self.shared = SharedCopies(shared, ttl) if shared is not None else None
        self.published: set[Key] = set()  # copies this process wrote for the others
        self.used = 0
        self.lock = threading.Lock()
        self.items: OrderedDict[Key, tuple[Any, bytes, int, float]] = OrderedDict()
        self.seen: LRU[Key, float] = LRU(4096)  # when each original was last asked
        self.building: dict[Key, Future[None]] = {}
        self.making: dict[tuple[Key, tuple[object, ...]], Future[None]] = {}
        # Resizes of a copy, with their cost and time; they go with their copy.
        self.sized: OrderedDict[tuple[Key, tuple[object, ...]], tuple[Any, int, float]] = (
            OrderedDict())

    def get(self, data: bytes, build: Callable[[], Any], popular: bool = False,
            defer: bool = False) -> Any | None:
        """The shared copy of `data` (`build()` gives it, lazily), built on the second request
        (or the first of several asked at once: `popular`); None: go direct. While another
        thread or process builds it, wait, or with `defer` raise Pending."""
        if self.capacity <= 0:
            return None
        digest = quick_key(data)
        now = time.monotonic()
        with self.lock:
            found = self._fresh(digest, data, now)
            if found is not None:
                return found
            pending = self.building.get(digest)
            if pending is None:
                first_seen = self.seen.pop(digest)
                self.seen.put(digest, now)
                wanted = popular or (first_seen is not None and now - first_seen <= self.ttl)
                if not wanted and self.shared is not None:
                    wanted = self.shared.seen_elsewhere(digest)
                if not wanted and self.shared is None:
                    return None  # the first request: decode directly
                pending = _building()
                self.building[digest] = pending
                builder = True
            else:
                builder = False
        if not builder:
            _follow(pending, defer)
            with self.lock:
                return self._fresh(digest, data, time.monotonic())
        image, published = None, False
        try:
            image, published = self._obtain(digest, data, build, wanted, defer)
        finally:
            # Kept before the waiters wake, so that they find it.
            with self.lock:
                self.building.pop(digest, None)
                if image is not None:
                    self._keep(digest, image, data, published)
            pending.set_result(None)
        return image

    def _obtain(self, digest: Key, data: bytes, build: Callable[[], Any], wanted: bool,
                defer: bool) -> tuple[Any | None, bool]:
        """Another process's copy, else (if `wanted`) one built here, and whether this
        process published it for the others; None: go direct."""
        shared = self.shared
        if shared is None:
            image = build()
            return (image.copy_memory() if image is not None else None), False
        if shared.claimed(digest):  # another worker is building it: its decode, not ours
            _await_file(lambda: not shared.claimed(digest), defer)
        found = shared.load(digest, data)
        if found is not None or not wanted:
            return found, False
        if not shared.claim(digest):  # another worker took it just now
            _await_file(lambda: not shared.claimed(digest), defer)
            return shared.load(digest, data), False
        return shared.publish(digest, build(), data)

    def _keep(self, digest: Key, image: Any, data: bytes, published: bool = False) -> None:
        size = image.width * image.height * image.bands + len(data)
        self._drop(digest)
        if published:
            self.published.add(digest)
        if self._make_room(size, digest):
            self.items[digest] = (image, data, size, time.monotonic())
            self.used += size
        elif digest in self.published and self.shared is not None:
            self.published.discard(digest)
            self.shared.remove(digest)

    def _drop(self, digest: Key) -> None:
        """Forget a copy and the resizes held from it."""
        item = self.items.pop(digest, None)
        if item is not None:
            self.used -= item[2]
        if digest in self.published and self.shared is not None:
            self.published.discard(digest)
            self.shared.remove(digest)
        for key in [key for key in self.sized if key[0] == digest]:
            self.used -= self.sized.pop(key)[1]

    def _make_room(self, cost: int, spare: Key) -> bool:
        """Whether `cost` more bytes fit, after evicting the least recently used copies (not
        `spare`'s) and then the oldest held resizes as needed.

        A resize of a copy in use is worth more than an idle copy; and under a stream of
        originals the store is always full of copies, so a resize that only took free room
        would never be held.
        """
        if cost > self.capacity:
            return False
        self._expire_sized(time.monotonic())
        for digest in list(self.items):
            if self.used + cost <= self.capacity:
                return True
            if digest != spare:
                self._drop(digest)
        while self.used + cost > self.capacity and self.sized:
            self.used -= self.sized.popitem(last=False)[1][1]
        return self.used + cost <= self.capacity

    def resized(self, data: bytes, size: tuple[object, ...], make: Callable[[], Any],
                defer: bool = False) -> Any:
        """`make()` (a resize of `data`'s copy to `size`), shared with one later request for
        the same size: a page asks each width in two formats, and the second need not
        resize again. Held until that request, for `ttl` seconds at most.

        The two formats of a width are usually asked at the same moment: while another
        thread makes the same size, wait for it (with `defer`, raise Pending) rather than
        resize twice, as a third of `srcset`'s resizes did.
        """
        digest = quick_key(data)
        key = (digest, size)
        with self.lock:
            held = self._take_sized(key, data)
            making = self.making.get(key) if held is None else None
            if held is None and making is None:
                mine = self.making[key] = _building()
        if held is not None:
            return held
        if making is not None:
            _follow(making, defer)
            with self.lock:
                held = self._take_sized(key, data)
            return held if held is not None else make()
        image = None
        try:
            image = make()
        finally:
            with self.lock:  # held before the waiters wake, so that they find it
                del self.making[key]
                if image is not None:
                    cost = image.width * image.height * image.bands
                    if digest in self.items and self._make_room(cost, digest):
                        self.sized[key] = (image, cost, time.monotonic())
                        self.used += cost
            mine.set_result(None)
        return image

    def _take_sized(self, key: tuple[Key, tuple[object, ...]], data: bytes) -> Any | None:
        """The held resize for `key`, taken out, if its copy was made from `data` (under the
        lock)."""
        held = self.sized.pop(key, None)
        if held is None:
            return None
        self.used -= held[1]
        copy = self.items.get(key[0])
        return held[0] if copy is not None and (copy[1] is data or copy[1] == data) else None

    def _expire_sized(self, now: float) -> None:
        while self.sized:
            key, (_, cost, made) = next(iter(self.sized.items()))
            if now - made <= self.ttl:
                return
            del self.sized[key]
            self.used -= cost

    def _fresh(self, digest: Key, data: bytes, now: float) -> Any | None:
        item = self.items.get(digest)
        if item is None:
            return None
        image, original, _, created = item
        if now - created > self.ttl:
            self._drop(digest)
            return None
        if original is not data and original != data:
            return None  # another file with the same quick key: it goes the direct way
        self.items.move_to_end(digest)
        return image


@dataclass(frozen=True)
class Sharing:
    """How one render may use the shared copies (transform.sharing.Sharing)."""

    store: Mezzanines
    popular: bool = False  # other requests want this original too: share its decode now
    defer: bool = False  # raise Pending rather than block while another job builds the copy

    def copy(self, data: bytes, build: Callable[[], Any]) -> Any | None:
        """The store's copy of `data`, built now if `popular` (see `Mezzanines.get`)."""
        return self.store.get(data, build, self.popular, self.defer)

    def resized(self, data: bytes, size: tuple[object, ...], make: Callable[[], Any]) -> Any:
        """A resize of the copy, shared (see `Mezzanines.resized`)."""
        return self.store.resized(data, size, make, self.defer)
