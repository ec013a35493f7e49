"""Hot answers: whole responses to repeated plain GETs, written by the HTTP protocol itself.

A cache hit through ASGI costs a task, a scope, header parsing into a dict, the chain and the
key, and four awaited sends: about 70 µs of CPU, which caps one process near 14,000 answers
a second. Once the delivery path has answered a plain GET (no conditional, no range) from
the result cache's memory tier, it files the serialized headers here under everything of
the request that can change the answer: the target as sent and the headers of
`inputs.INPUTS` (Host, Accept, the client hints). The protocol (`pixelport.server`) looks
there before it builds an ASGI request.

An answer is only good while the memory tier still holds the very entry it was made from,
so purges, evictions, replacements and the cache's time to live apply to it unchanged; a
signed URL's answer also ends at its `ik-t`. Answers refer to their entry weakly: an entry the
memory tier has let go is freed, not kept alive by a stale answer.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Iterable

from pixelport.cache.entry import Entry
from pixelport.cache.memory import MemoryTier
from pixelport.delivery.inputs import INPUTS

# The request headers that can change an answer (inputs.py): each is part of the key.
KEYED = {name.encode("ascii"): slot for slot, name in enumerate(INPUTS)}
# Request headers that make an answer other than the plain 200: never answered from here.
BYPASS = frozenset({b"range", b"if-range", b"if-none-match", b"if-modified-since",
                    b"if-match", b"if-unmodified-since", b"content-length",
                    b"transfer-encoding", b"expect", b"upgrade"})
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
Key = tuple[bytes, ...]


class _Answer:
    __slots__ = ("entry", "expires", "head", "result_key")

    def __init__(self, head: bytes, entry: Entry, result_key: str, expires: float) -> None:
        self.head = head
        self.entry = weakref.ref(entry)
        self.result_key = result_key
        self.expires = expires


class HotAnswers:
    """Serialized 200 answers keyed by the request, valid while their cache entry lives."""

    def __init__(self, memory: MemoryTier, ttl: float, limit: int = 16384) -> None:
        self.memory = memory
        self.ttl = ttl
        self.limit = limit
        self.answers: dict[Key, _Answer] = {}
        self.served = 0  # answers given: cache hits for the overview's hit ratio

    def lookup(self, method: bytes, target: bytes,
               headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
        """(header lines, body) for this request, or None to take the ordinary path."""
        if method != b"GET":
            return None
        key = request_key(target, headers)
        if key is None:
            return None
        answer = self.answers.get(key)
        if answer is None:
            return None
        entries = self.memory.entries
        entry = answer.entry()
        if (entry is None or entries.get(answer.result_key) is not entry
                or time.time() >= answer.expires):
            del self.answers[key]
            return None
        entries.move_to_end(answer.result_key)
        self.served += 1
        return answer.head, entry.body

    def remember(self, key: Key, headers: dict[str, str], entry: Entry, result_key: str,
                 expiry: int | None) -> None:
        """File a 200 answer just sent for `key` (from `request_key`)."""
        if self.memory.entries.get(result_key) is not entry:
            return  # not in the memory tier (too large, or already replaced)
        lines = []
        for name, value in headers.items():
            raw = value.encode("latin-1", "replace")
            if _INVALID_VALUE.search(raw):
                return  # the ordinary path would refuse it too
            lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), raw))
        expires = entry.created + self.ttl
        if expiry is not None:
            expires = min(expires, float(expiry))
        if key not in self.answers and len(self.answers) >= self.limit:
            del self.answers[next(iter(self.answers))]  # the oldest filed
        self.answers[key] = _Answer(b"".join(lines), entry, result_key, expires)


def request_key(target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Key | None:
    """Everything of a request that can change a plain answer; None if it is not plain.

    `headers` are lower-cased names with raw values, as HTTP servers hand them over; the
    last of repeated headers counts, as it does in the delivery path.
    """
    values = [b""] * len(KEYED)
    for name, value in headers:
        slot = KEYED.get(name)
        if slot is not None:
            values[slot] = value
        elif name in BYPASS:
            return None
    return (target, *values)
