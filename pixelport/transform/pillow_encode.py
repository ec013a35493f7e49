"""JPEG and WebP of up to 1 MP written by Pillow's libjpeg-turbo and libwebp: libvips' bytes,
sooner.

The bytes are libvips' own (tests/test_pillow_encode.py): libvips' wheel links mozjpeg, which
with libvips' settings (its "fastest" profile, the standard quantisation tables) encodes as
libjpeg-turbo does, and both wheels carry libwebp 1.6. libvips writes no JFIF segment when
metadata is stripped; Pillow's is cut out. What differs is the call: libvips runs a pipeline
with its own worker thread and process-wide locks for every encode, a fixed cost that
dominates small outputs; here the pixels are computed in the calling thread and encoded there.
Measured in one thread (docs/performance.md, ninth round): a 300x225 JPEG in 0.72 against
1.5 ms, a 300 px WebP at effort 4 in 7.5 against 9.5 ms, 640 px at effort 2 in 12.8 against
16.8; at 1920 px the two are even.

Only the plain case is taken: 8-bit sRGB (or grey, for JPEG) pixels, one page, no metadata to
keep, at most MAX_PIXELS. Anything else gives None and libvips encodes it. Pillow never reads
a file here: its decoders are not reachable from a request.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

import pyvips
from PIL import Image, ImageFile

# The pixels are handed over whole (libvips streams a JPEG's lines into its encoder): above
# this the saving is gone (1920 px) and the copy costs memory. 1 MP is also where pixelport
# stops optimising JPEG Huffman tables (formats.encode).
MAX_PIXELS = 1_000_000

# An optimised or progressive JPEG is written in one piece, and Pillow sizes that piece at 1
# or 2 bytes a pixel, which noisy images at high quality exceed (3.2 measured for noise at
# Q100): libjpeg then fails ("Suspension not allowed here"). Room for 4 bytes a pixel of the
# largest image taken here; the buffer is allocated but only what is written is touched.
ImageFile.MAXBLOCK = max(ImageFile.MAXBLOCK, 4 * MAX_PIXELS + 65_536)

_JPEG_MODES = {("srgb", 3): "RGB", ("b-w", 1): "L"}
_WEBP_MODES = {("srgb", 3): "RGB", ("srgb", 4): "RGBA"}


def jpeg(image: Any, quality: int, optimize: bool, progressive: bool,
         subsample: bool) -> bytes | None:
    """The image as libvips' jpegsave would write it with keep="none"; None: let libvips."""
    picture = _picture(image, _JPEG_MODES)
    if picture is None:
        return None
    # libvips' subsample_mode="auto" subsamples colour below Q 90; a grey image has no colour
    # to subsample, and libvips writes its one component at 1x1.
    subsampling = 2 if subsample and quality < 90 and picture.mode == "RGB" else 0
    data = _save(picture, "JPEG", quality=quality, optimize=optimize, progressive=progressive,
                 subsampling=subsampling)
    # Pillow always writes a JFIF APP0 segment first; libvips, stripping metadata, does not.
    if data is None or data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\x00":
        return None
    return data[:2] + data[4 + int.from_bytes(data[4:6], "big"):]


def webp(image: Any, quality: int, lossless: bool, effort: int) -> bytes | None:
    """The image as libvips' webpsave would write it with keep="none"; None: let libvips."""
    if image.get_typeof("page-height") and image.get("page-height") != image.height:
        return None  # frames stacked for an animation
    picture = _picture(image, _WEBP_MODES)
    if picture is None:
        return None
    return _save(picture, "WEBP", quality=quality, lossless=lossless, method=effort)


def _picture(image: Any, modes: dict[tuple[str, int], str]) -> Image.Image | None:
    width, height = image.width, image.height
    if width * height > MAX_PIXELS or image.format != "uchar":
        return None
    mode = modes.get((image.interpretation, image.bands))
    if mode is None:
        return None
    try:
        # A region computes what is left of the pipeline (a resize, a flatten) in this thread,
        # where write_to_memory would hand it to a libvips worker thread and wait.
        pixels = pyvips.Region.new(image).fetch(0, 0, width, height)
    except pyvips.Error:
        return None  # a damaged input: libvips' encoder reports it in its own words
    return Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)


def _save(picture: Image.Image, fmt: str, **params: Any) -> bytes | None:
    scratch = _scratch() if fmt == "JPEG" else None
    try:
        if scratch is None:
            out = io.BytesIO()
            picture.save(out, fmt, **params)
            return out.getvalue()
        fd = scratch.fileno()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        picture.save(scratch, fmt, **params)
        return os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0)
    except (OSError, ValueError):
        return None  # libvips then tries, and reports its own error if it fails too


_local = threading.local()


def _scratch() -> io.FileIO | None:
    """This thread's in-memory file for JPEG output (None where there is none to be had).

    Pillow encodes a JPEG into a Python bytes object holding the GIL throughout, but into a
    file descriptor with the GIL released: 0.2-0.5 ms a thumbnail during which the event loop
    and the other render threads wait, or run (docs/performance.md, tenth round). A memfd is
    a file that lives in memory; its pages are given back at the next truncation.
    """
    scratch: io.FileIO | None = getattr(_local, "scratch", None)
    if scratch is None and hasattr(os, "memfd_create"):
        try:
            scratch = _local.scratch = io.FileIO(
                os.memfd_create("pixelport-encode", os.MFD_CLOEXEC), "r+")
        except OSError:
            return None
    return scratch
