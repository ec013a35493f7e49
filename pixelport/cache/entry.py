"""A cached response: body plus the headers that describe it, and its on-disk form.

On disk an entry is one file: a magic line, a JSON header (with the body's length and
CRC-32) and the body. A torn or damaged file fails the checks and reads as a miss. The CRC
guards against accidents, not tampering (whoever can write the cache folder can write a
matching CRC, or a matching hash): it is five times cheaper than the BLAKE2b of the first
format, which cost 4 ms to write or read a saved 12 MP original. Files of the first format
(PXPC1) still read.

A large result (a video) keeps its body on disk (`BodyFile`): its file is the same head
followed by the body, marked `"stream": true` and without a CRC; a read takes the head alone
and the body is sent from the file as it is read. Such files are written whole and renamed into
place like every other, so a torn one cannot appear under a real name; a short one (its length
does not match the head's) reads as a miss.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"PXPC2\n"
_MAGIC_BLAKE2B = b"PXPC1\n"
_LENGTH = struct.Struct(">I")


def body_digest(data: bytes) -> str:
    """The BLAKE2b digest of a body: the ETag of what we make."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class CorruptEntry(ValueError):
    """The bytes are not a whole, intact entry."""


@dataclass(frozen=True)
class BodyFile:
    """A body that stays on disk: `length` bytes of `path` from `offset`."""

    path: Path
    offset: int
    length: int


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
    body_file: BodyFile | None = None  # set: the body is this file's, `body` is empty
    shared: bool = False  # read from the shared tier (made on another node); not stored

    @property
    def size(self) -> int:
        """Bytes it holds in memory (what the memory budget counts)."""
        return len(self.body) + 256

    @property
    def length(self) -> int:
        """The body's length, wherever it is."""
        return self.body_file.length if self.body_file is not None else len(self.body)

    def head(self, crc32: int | None = None) -> bytes:
        """The on-disk form up to the body (written before it, without copying the body).
        `crc32`: the body's, for a body kept on disk that is to be checked when read (the
        shared tier's object of a video); else such a head is marked `stream`."""
        fields = {
            "headers": self.headers, "etag": self.etag, "endpoint": self.endpoint,
            "path": self.path, "created": self.created, "download_ms": self.download_ms,
            "transform_ms": self.transform_ms, "length": self.length}
        if crc32 is not None:
            fields["crc32"] = crc32
        elif self.body_file is not None:
            fields["stream"] = True
        else:
            fields["crc32"] = zlib.crc32(self.body)
        header = json.dumps(fields, separators=(",", ":")).encode()
        return MAGIC + _LENGTH.pack(len(header)) + header

    @classmethod
    def decode_streamed(cls, head: bytes, path: Path, file_size: int) -> Entry | None:
        """The entry at `path` whose head is `head`, if its body stays on disk (else None:
        read the whole file and `decode` it)."""
        if not head.startswith(MAGIC) or len(head) < len(MAGIC) + _LENGTH.size:
            return None
        (header_length,) = _LENGTH.unpack_from(head, len(MAGIC))
        start = len(MAGIC) + _LENGTH.size
        if len(head) < start + header_length:
            return None
        try:
            header = json.loads(head[start:start + header_length])
            if not header.get("stream"):
                return None
            offset, length = start + header_length, int(header["length"])
            if file_size != offset + length:
                raise CorruptEntry("truncated body")
            return cls(body=b"", headers=dict(header["headers"]), etag=str(header["etag"]),
                       endpoint=str(header["endpoint"]), path=str(header["path"]),
                       created=float(header["created"]),
                       download_ms=float(header["download_ms"]),
                       transform_ms=float(header["transform_ms"]),
                       body_file=BodyFile(path, offset, length))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptEntry(str(exc)) from None

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


def split_head(data: bytes) -> tuple[dict[str, Any], int] | None:
    """The JSON header of an on-disk form (PXPC2) that `data` begins with, and where its body
    starts; None while `data` is too short to hold the whole head (a read under way)."""
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        if not MAGIC.startswith(data[:len(MAGIC)]):
            raise CorruptEntry("bad magic")
        return None
    if not data.startswith(MAGIC):
        raise CorruptEntry("bad magic")
    (header_length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if len(data) < start + header_length:
        return None
    try:
        header = json.loads(data[start:start + header_length])
    except ValueError as exc:
        raise CorruptEntry(str(exc)) from None
    if not isinstance(header, dict):
        raise CorruptEntry("not a header")
    return header, start + header_length


def streamed_entry(header: dict[str, Any], body_file: BodyFile) -> Entry:
    """The entry `header` (from `split_head`) describes, its body in `body_file`."""
    try:
        return Entry(body=b"", headers=dict(header["headers"]), etag=str(header["etag"]),
                     endpoint=str(header["endpoint"]), path=str(header["path"]),
                     created=float(header["created"]),
                     download_ms=float(header["download_ms"]),
                     transform_ms=float(header["transform_ms"]), body_file=body_file)
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
