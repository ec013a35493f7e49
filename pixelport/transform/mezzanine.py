"""Decoded, reduced copies of large JPEG originals, shared by the variants asked of them.

A responsive page asks one original at many widths and formats within moments. Decoding a
12 MP JPEG is most of the cost of each variant, so the second request for the same original
(within `ttl` seconds) decodes it once more, at the largest DCT shrink that keeps its longest
side at or above MIN_SIDE, and keeps that copy in memory; every later variant no larger than
the copy is resized from it instead of decoding the file again. The first request goes the
direct way, so a stream of unique originals pays nothing extra. Shared by worker threads.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MIN_SIDE = 1600  # a copy at least this large; smaller targets are resized from it
ELIGIBLE_SIDE = 2 * MIN_SIDE  # originals at least this large (a shrink of 2 or more)


class Mezzanines:
    """A bounded, short-lived store of decoded copies, keyed by the original's digest."""

    def __init__(self, capacity: int, ttl: float = 30.0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.used = 0
        self.lock = threading.Lock()
        self.items: OrderedDict[bytes, tuple[Any, int, float]] = OrderedDict()
        self.seen: OrderedDict[bytes, float] = OrderedDict()
        self.building: dict[bytes, threading.Event] = {}

    def get(self, data: bytes, build: Callable[[], Any]) -> Any | None:
        """The shared copy of `data`, building it on the second request; None: go direct."""
        if self.capacity <= 0:
            return None
        digest = hashlib.blake2b(data, digest_size=16).digest()
        now = time.monotonic()
        with self.lock:
            found = self._fresh(digest, now)
            if found is not None:
                return found
            event = self.building.get(digest)
            if event is None:
                first_seen = self.seen.pop(digest, None)
                self.seen[digest] = now
                while len(self.seen) > 4096:
                    self.seen.popitem(last=False)
                if first_seen is None or now - first_seen > self.ttl:
                    return None  # the first request: decode directly
                event = threading.Event()
                self.building[digest] = event
                builder = True
            else:
                builder = False
        if not builder:
            event.wait(timeout=30)
            with self.lock:
                return self._fresh(digest, time.monotonic())
        try:
            image = build()
        finally:
            with self.lock:
                self.building.pop(digest, None)
            event.set()
        if image is None:
            return None
        size = image.width * image.height * image.bands
        with self.lock:
            if size <= self.capacity:
                self.items[digest] = (image, size, time.monotonic())
                self.used += size
                while self.used > self.capacity:
                    _, (_, evicted, _) = self.items.popitem(last=False)
                    self.used -= evicted
        return image

    def _fresh(self, digest: bytes, now: float) -> Any | None:
        item = self.items.get(digest)
        if item is None:
            return None
        image, size, created = item
        if now - created > self.ttl:
            del self.items[digest]
            self.used -= size
            return None
        self.items.move_to_end(digest)
        return image
