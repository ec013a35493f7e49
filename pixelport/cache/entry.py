"""A cached response: body plus the headers that describe it, and its on-disk form.

On disk an entry is one file: a magic line, a JSON header (with the body's length and
CRC-32) and the body. A torn or damaged file fails the checks and reads as a miss. The CRC
guards against accidents, not tampering (whoever can write the cache folder can write a
matching CRC, or a matching hash): it is five times cheaper than the BLAKE2b of the first
format, which cost 4 ms to write or read a saved 12 MP original. Files of the first format
(PXPC1) still read.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zlib
from dataclasses import dataclass, field

MAGIC = b"PXPC2\n"
_MAGIC_BLAKE2B = b"PXPC1\n"
_LENGTH = struct.Struct(">I")


def body_digest(data: bytes) -> str:
    """The BLAKE2b digest of a body: the ETag of what we make."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class CorruptEntry(ValueError):
    """The bytes are not a whole, intact entry."""


@dataclass
class Entry:
    """One cached response."""

    body: bytes
    headers: dict[str, str]  # content-type, vary, content-dpr, link, last-modified, ...
    etag: str
    endpoint: str
    path: str  # the decoded file path, for purging every variant of a file
    created: float = field(default_factory=time.time)
    download_ms: float = 0.0
    transform_ms: float = 0.0

    @property
    def size(self) -> int:
        """Bytes it holds (what the budgets count)."""
        return len(self.body) + 256

    def head(self) -> bytes:
        """The on-disk form up to the body (written before it, without copying the body)."""
        header = json.dumps({
            "headers": self.headers, "etag": self.etag, "endpoint": self.endpoint,
            "path": self.path, "created": self.created, "download_ms": self.download_ms,
            "transform_ms": self.transform_ms, "length": len(self.body),
            "crc32": zlib.crc32(self.body),
        }, separators=(",", ":")).encode()
        return MAGIC + _LENGTH.pack(len(header)) + header

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Parse and verify the on-disk form."""
        if not data.startswith((MAGIC, _MAGIC_BLAKE2B)) or len(data) < len(MAGIC) + _LENGTH.size:
            raise CorruptEntry("bad magic")
        start = len(MAGIC) + _LENGTH.size
        (header_length,) = _LENGTH.unpack_from(data, len(MAGIC))
        try:
            header = json.loads(data[start:start + header_length])
            body = data[start + header_length:]
            if len(body) != header["length"]:
                raise CorruptEntry("truncated body")
            if (zlib.crc32(body) != header["crc32"] if data.startswith(MAGIC)
                    else body_digest(body) != header["checksum"]):
                raise CorruptEntry("checksum mismatch")
            return cls(body=body, headers=dict(header["headers"]), etag=str(header["etag"]),
                       endpoint=str(header["endpoint"]), path=str(header["path"]),
                       created=float(header["created"]),
                       download_ms=float(header["download_ms"]),
                       transform_ms=float(header["transform_ms"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptEntry(str(exc)) from None


def read_header(data: bytes) -> tuple[str, str, float]:
    """Endpoint, path and creation time from the head of an on-disk entry (for the index)."""
    if not data.startswith((MAGIC, _MAGIC_BLAKE2B)):
        raise CorruptEntry("bad magic")
    (header_length,) = _LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    try:
        header = json.loads(data[start:start + header_length])
        return str(header["endpoint"]), str(header["path"]), float(header["created"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntry(str(exc)) from None
