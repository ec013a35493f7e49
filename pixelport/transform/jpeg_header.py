"""The size, EXIF orientation and ICC profile of a plain JPEG, read from its markers without
libvips.

Every render probes its input's header before decoding. Through libvips that is one more
operation, and building one takes libvips' process-wide locks, which the worker threads
then wait on (docs/performance.md, fifth round: a 1200x900 → 300 px thumbnail on three
threads ran 9 % faster without it). Only the common case is read here: 8-bit baseline,
extended or progressive Huffman JPEGs with one or three components and at most one EXIF
block whose orientation is 1 to 8. Anything else, or anything malformed, gives None, and
libvips reads the header as before, with its own errors.
"""

from __future__ import annotations

from typing import Literal

_PLAIN_SOF = (0xC0, 0xC1, 0xC2)
_OTHER_SOF = frozenset(range(0xC3, 0xD0)) - {0xC4, 0xCC}  # lossless, arithmetic, ...
_SOS, _APP1, _APP2 = 0xDA, 0xE1, 0xE2
_ICC = b"ICC_PROFILE\0"
_ORIENTATION_TAG = 0x0112
_SHORT = 3


def read(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) as stored, or None: let libvips read the header."""
    found = segments(data)
    if found is None:
        return None
    size: tuple[int, int] | None = None
    orientation: int | None = None
    for marker, body, end in found:
        if marker in _OTHER_SOF:
            return None
        if marker in _PLAIN_SOF:
            if size is not None or end - body < 6:
                return None
            precision, components = data[body], data[body + 5]
            height = int.from_bytes(data[body + 1:body + 3], "big")
            width = int.from_bytes(data[body + 3:body + 5], "big")
            if (precision != 8 or components not in (1, 3) or not width or not height
                    or end - body != 6 + 3 * components):
                return None
            size = (width, height)
        elif marker == _APP1 and data[body:body + 6] == b"Exif\0\0":
            if orientation is not None:
                return None  # two EXIF blocks: which one libvips takes is its business
            orientation = exif_orientation(data[body + 6:end])
            if orientation is None:
                return None
    return None if size is None else (*size, orientation or 1)


def segments(data: bytes) -> list[tuple[int, int, int]] | None:
    """The marker segments before the first scan, as (marker, start of body, end); None if
    the file is not sound that far: stray bytes (libjpeg skips them with a warning), a marker
    that has no place there, a length past the end, or no scan at all."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    found: list[tuple[int, int, int]] = []
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == _SOS:
            return found
        if not 0xC0 <= marker <= 0xFE or 0xD0 <= marker <= 0xD9:
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        body = pos + 4
        pos += 2 + length
        if length < 2 or pos > end:
            return None
        found.append((marker, body, pos))
    return None


def exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag (1-8) of IFD0 in an EXIF TIFF structure; 1 if it has none; None if
    the structure or the value is not what a camera writes."""
    order: Literal["little", "big"]
    if tiff[:2] == b"II":
        order = "little"
    elif tiff[:2] == b"MM":
        order = "big"
    else:
        return None

    def number(at: int, width: int) -> int:
        return int.from_bytes(tiff[at:at + width], order)

    if len(tiff) < 8 or number(2, 2) != 42:
        return None
    ifd = number(4, 4)
    if ifd < 8 or ifd + 2 > len(tiff):
        return None
    count = number(ifd, 2)
    if ifd + 2 + 12 * count > len(tiff):
        return None
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if number(entry, 2) == _ORIENTATION_TAG:
            value = number(entry + 8, 2)
            if number(entry + 2, 2) != _SHORT or number(entry + 4, 4) != 1 or not 1 <= value <= 8:
                return None
            return value
    return 1


def icc_profile(data: bytes) -> bytes | None:
    """The ICC profile in a plain JPEG's APP2 chunks, joined in order; b"" if it has none;
    None if its chunks do not make one profile as libjpeg's reader would take it."""
    found = segments(data)
    if found is None:
        return None
    chunks: dict[int, bytes] = {}
    counts: set[int] = set()
    for marker, body, end in found:
        if marker == _APP2 and data[body:body + 12] == _ICC:
            if end - body < 14 or data[body + 12] in chunks:
                return None
            chunks[data[body + 12]] = data[body + 14:end]
            counts.add(data[body + 13])
    if not chunks:
        return b""
    if len(counts) != 1 or sorted(chunks) != list(range(1, counts.pop() + 1)):
        return None
    return b"".join(chunks[number] for number in sorted(chunks))
