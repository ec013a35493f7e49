"""What ImageKit's management API reports about a stored file: its type, size and alpha
(`probe`) and the metadata object of GET /v1/files/{id}/metadata (`read_metadata`).

Both block (libvips, Pillow, a DCT) and are called in worker threads. Neither decodes a whole
image: libvips' header gives the type, size, profile, alpha and density; Pillow's lazy open
gives the EXIF and the JPEG quantization tables; the pHash comes from a 32x32 shrink-on-load
thumbnail. Uploads are untrusted, so each part degrades to an empty value on malformed input
rather than raising.

Conventions:
- `quality`: the IJG quality (1..100) whose scaled standard luminance table (ITU T.81 K.1,
  libjpeg's `jpeg_quality_scaling`, baseline-clamped) is closest to the file's luminance table
  by the sum of absolute differences; ties go to the lower quality. 0 for other formats.
- `pHash`: imagehash.phash's convention: 32x32 grey, 2-D DCT-II, the top-left 8x8 block, each
  of its 64 coefficients (the DC term included) compared with the median of those 64, bits
  row-major, most significant first, as 16 lower-case hex digits.
- `exif`: exif-parser's tag names (what ImageKit returns), grouped by IFD; values made JSON-safe.
"""

from __future__ import annotations

import io
import math
import mimetypes
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyvips
from PIL import ExifTags, Image, JpegImagePlugin, TiffImagePlugin

from pixelport.errors import PixelportError
from pixelport.video import containers
from pixelport.video.probe import probe as video_probe

IMAGE = "image"
NON_IMAGE = "non-image"


@dataclass(frozen=True)
class Probe:
    """A stored file as ImageKit's file objects describe it."""

    width: int | None
    height: int | None
    has_alpha: bool
    format: str  # ImageKit's lower-case name: jpg, png, avif, svg, mp4...; "" when unknown
    mime: str
    file_type: str  # IMAGE or NON_IMAGE (videos and PDFs are non-image to ImageKit)
    # A video's facts (PyAV); None for every other file.
    duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bit_rate: int | None = None


_LOADER_FORMATS = {
    "jpegload": "jpg", "pngload": "png", "webpload": "webp", "gifload": "gif",
    "heifload": "heic", "svgload": "svg", "tiffload": "tiff", "jp2kload": "jp2",
    "jxlload": "jxl", "pdfload": "pdf",
}
# Loaders of images whose format libvips does not name; the file name's extension does
# (bmp, ico, psd... through ImageMagick).
_NAMED_BY_EXTENSION = frozenset({"magickload", "ppmload", "radload", "openexrload"})
# Readable by libvips but documents to ImageKit, which lists them as non-image files.
_DOCUMENTS = frozenset({"pdf"})
_EXTENSION_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tif": "tiff", "heif": "heic"}
_MIMES = {
    "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
    "avif": "image/avif", "heic": "image/heic", "tiff": "image/tiff", "svg": "image/svg+xml",
    "bmp": "image/bmp", "ico": "image/x-icon", "jp2": "image/jp2", "jxl": "image/jxl",
    "pdf": "application/pdf",
}
_OCTET_STREAM = "application/octet-stream"


def probe(path: Path, name: str | None = None) -> Probe:
    """Type, size and alpha of a file from its header; `name` stands in for the path's own."""
    # An upload is probed as a temporary `.part` file; its real name's extension is what
    # names a format libvips cannot read (mp4, zip...).
    found = _describe(Path(name) if name is not None else path, _open_header(path))
    return (_video(path, found) if found.file_type == NON_IMAGE else None) or found


def _video(path: Path, found: Probe) -> Probe | None:
    """A video's facts, when the file is one that decodes (else None)."""
    try:
        with path.open("rb") as handle:
            demuxer = containers.sniff(handle.read(containers.HEAD_BYTES))
        if demuxer is None or demuxer == "gif":
            return None
        info = video_probe(path, demuxer)
    except (OSError, PixelportError):
        return None
    fmt = found.format or {"mov": "mp4", "matroska": "webm"}.get(demuxer, demuxer)
    mime = found.mime if found.mime != _OCTET_STREAM else f"video/{fmt}"
    return Probe(info.width, info.height, False, fmt, mime, NON_IMAGE, info.duration,
                 info.video_codec, info.audio_codec, info.bit_rate)


def quick_probe(source: Path | bytes) -> Probe | None:
    """`probe`'s answer for a JPEG (a file, or its bytes in memory), from Pillow's parse of
    its markers; None for anything else or what Pillow cannot parse (`probe` answers those).

    Most uploads are JPEG photos: Pillow reads their header in ~28 us, libvips in ~180 us
    plus a thread hop, and nothing of the file past its start-of-scan marker is read.
    tests/test_library_metadata.py holds it to `probe` on sound, odd and broken JPEGs.
    """
    try:
        with (io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")) as handle:
            if handle.read(3) != b"\xff\xd8\xff":
                return None
            handle.seek(0)
            # The plugin class itself: Image.open would also warn about pixel counts.
            with JpegImagePlugin.JpegImageFile(handle) as image:
                width, height = image.size
                mode = image.mode
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error):
        return None
    if mode not in _QUICK_MODES or width < 1 or height < 1:
        return None
    return Probe(width, height, False, "jpg", _MIMES["jpg"], IMAGE)


_QUICK_MODES = frozenset({"L", "RGB", "CMYK"})  # libvips: 1, 3 or 4 bands, none alpha


def read_metadata(path: Path) -> dict[str, Any]:
    """ImageKit's metadata object for a stored file (GET /v1/files/{id}/metadata)."""
    size = path.stat().st_size  # a missing file is the caller's error, so that one raises
    image = _open_header(path)
    info = _describe(path, image)
    video = _video(path, info) if info.file_type == NON_IMAGE else None
    if video is not None:
        return {"height": video.height, "width": video.width, "size": size,
                "format": video.format, "hasColorProfile": False, "hasTransparency": False,
                "exif": {}, "bitRate": video.bit_rate,
                "duration": round(video.duration) if video.duration is not None else None,
                "audioCodec": video.audio_codec, "videoCodec": video.video_codec}
    if image is None or info.file_type != IMAGE:
        return {"size": size, "format": info.format, "hasColorProfile": False,
                "hasTransparency": False, "exif": {}}
    exif, quality = _exif_and_quality(path, image, info)
    # The key order is ImageKit's.
    return {
        "height": info.height, "width": info.width, "size": size, "format": info.format,
        "hasColorProfile": _has_profile(image), "quality": quality, "density": _density(image),
        "hasTransparency": info.has_alpha, "exif": exif, "pHash": _phash(path),
    }


# -- header -------------------------------------------------------------------------------

def _open_header(path: Path) -> Any | None:
    # Sequential access reads the header only; pixels would be decoded on first use, and
    # nothing here uses them.
    try:
        return pyvips.Image.new_from_file(_vips_name(path), access="sequential")
    except pyvips.Error:
        return None


def _vips_name(path: Path) -> str:
    # libvips reads a trailing `[...]` as load options ("a.jpg[shrink=2]"); an empty option
    # list after such a name keeps it a name (scanned folders keep users' own file names).
    name = str(path)
    return f"{name}[]" if name.endswith("]") else name


def _describe(named_as: Path, image: Any | None) -> Probe:
    fmt = _vips_format(named_as, image) if image is not None else None
    if image is None or fmt is None or fmt in _DOCUMENTS:
        # libvips also reads CSV and matrix text files; to ImageKit those are not images.
        named = fmt if fmt is not None else _extension_format(named_as)
        return Probe(None, None, False, named, _mime(named, named_as), NON_IMAGE)
    return Probe(int(image.width), int(image.height), _has_alpha(image), fmt,
                 _mime(fmt, named_as), IMAGE)


def _vips_format(path: Path, image: Any) -> str | None:
    try:
        loader = str(image.get("vips-loader"))
    except pyvips.Error:
        return None
    loader = loader.removesuffix("_source").removesuffix("_buffer")
    if loader == "heifload":
        # One loader for both: AVIF is HEIF with AV1 inside.
        return "avif" if _text(image, "heif-compression") == "av1" else "heic"
    if loader in _NAMED_BY_EXTENSION:
        return _extension_format(path)
    return _LOADER_FORMATS.get(loader)


def _text(image: Any, field: str) -> str:
    try:
        return str(image.get(field)) if image.get_typeof(field) != 0 else ""
    except pyvips.Error:
        return ""


def _extension_format(path: Path) -> str:
    extension = path.suffix.lower().removeprefix(".")
    return _EXTENSION_ALIASES.get(extension, extension)


def _mime(fmt: str, path: Path) -> str:
    if fmt in _MIMES:
        return _MIMES[fmt]
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    return guessed or _OCTET_STREAM


def _has_alpha(image: Any) -> bool:
    try:
        return bool(image.hasalpha())
    except pyvips.Error:
        return False


def _has_profile(image: Any) -> bool:
    try:
        return bool(image.get_typeof("icc-profile-data") != 0)
    except pyvips.Error:
        return False


_UNKNOWN_DPI = 72
_MM_PER_INCH = 25.4
_VIPS_UNSET_RES = 1.0


def _density(image: Any) -> int:
    # libvips keeps resolution in pixels per millimetre, from JFIF, EXIF, pHYs or the like.
    try:
        xres = float(image.xres)
        dpi = round(xres * _MM_PER_INCH)
    except (pyvips.Error, ValueError, OverflowError):
        return _UNKNOWN_DPI
    # Exactly 1 pixel/mm is libvips' value when a file states none (GIF, WebP, most TIFFs),
    # not a real 25.4 dpi.
    return dpi if dpi > 0 and xres != _VIPS_UNSET_RES else _UNKNOWN_DPI


# -- EXIF and JPEG quality (Pillow) -------------------------------------------------------

# Pillow formats opened lazily (no pixels) whose EXIF or quantization tables are wanted; a
# file is opened only as the format libvips found, so Pillow never guesses at user input.
_PILLOW_FORMATS = {"jpg": ["JPEG"], "png": ["PNG"], "webp": ["WEBP"], "tiff": ["TIFF"]}


def _exif_and_quality(path: Path, image: Any, info: Probe) -> tuple[dict[str, Any], int]:
    formats = _PILLOW_FORMATS.get(info.format)
    if formats is None:
        # HEIC, AVIF, GIF...: libvips read the EXIF block along with the header.
        return _exif_groups(_vips_exif(image)), 0
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and (info.width or 0) * (info.height or 0) > limit:
        # Pillow's decompression-bomb check would warn or raise on open; deciding first
        # avoids both (a warning filter is process-wide state, not safe in worker threads).
        return {}, 0
    try:
        with Image.open(path, formats=formats) as opened:
            exif = _exif_groups(_pillow_exif(opened))
            quality = _jpeg_quality(opened) if info.format == "jpg" else 0
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return {}, 0
    except Exception:  # malformed upload: Pillow raises many kinds (SyntaxError, struct.error)
        return _exif_groups(_vips_exif(image)), 0
    return exif, quality


def _pillow_exif(opened: Image.Image) -> Image.Exif | None:
    try:
        blob = opened.info.get("exif")
        if isinstance(blob, bytes):
            # Parsed from the APP1/eXIf/EXIF block read on open; Image.getexif would decode a
            # whole PNG whose eXIf chunk follows the pixels, and folds XMP into IFD0.
            exif = Image.Exif()
            exif.load(blob)
            return exif
        if isinstance(opened, TiffImagePlugin.TiffImageFile):
            return opened.getexif()  # IFD0 is the TIFF's own directory, read on open
    except Exception:
        return None
    return None


def _vips_exif(image: Any) -> Image.Exif | None:
    try:
        if image.get_typeof("exif-data") == 0:
            return None
        exif = Image.Exif()
        exif.load(bytes(image.get("exif-data")))
    except Exception:
        return None
    return exif


# Where exif-parser (whose names ImageKit returns) and Pillow name a tag differently.
_EXIF_PARSER_NAMES = {
    0x0132: "ModifyDate", 0x9004: "CreateDate", 0x8827: "ISO", 0x9204: "ExposureCompensation",
    0xA005: "InteropOffset", 0xA405: "FocalLengthIn35mmFormat", 0xA432: "LensInfo",
    0xA431: "SerialNumber", 0xA430: "OwnerName", 0x0201: "ThumbnailOffset",
    0x0202: "ThumbnailLength", 0x9214: "SubjectArea", 0x1002: "RelatedImageHeight",
    0x83BB: "IPTC-NAA",
}
_TAG_NAMES: Mapping[int, str] = {**ExifTags.TAGS, **_EXIF_PARSER_NAMES}
_GPS_NAMES: Mapping[int, str] = ExifTags.GPSTAGS
_INTEROP_NAMES: Mapping[int, str] = {tag.value: tag.name for tag in ExifTags.Interop}
# Maker notes are vendor binary; ImageKit reports them as {} too.
_SKIPPED_TAGS = frozenset({ExifTags.IFD.MakerNote.value})


def _exif_groups(exif: Image.Exif | None) -> dict[str, Any]:
    if exif is None:
        return {}
    return {
        "image": _named(lambda: exif, _TAG_NAMES),
        "thumbnail": _named(lambda: exif.get_ifd(ExifTags.IFD.IFD1), _TAG_NAMES),
        "exif": _named(lambda: exif.get_ifd(ExifTags.IFD.Exif), _TAG_NAMES),
        "gps": _named(lambda: exif.get_ifd(ExifTags.IFD.GPSInfo), _GPS_NAMES),
        "interoperability": _named(lambda: exif.get_ifd(ExifTags.IFD.Interop), _INTEROP_NAMES),
        "makernote": {},
    }


def _named(read: Callable[[], Mapping[int, Any]], names: Mapping[int, str]) -> dict[str, Any]:
    # Each directory, and each value in it, is read on its own: one corrupt offset or count
    # loses that entry, not the rest.
    try:
        directory = read()
        tags = list(directory)
    except Exception:
        return {}
    named: dict[str, Any] = {}
    for tag in tags:
        name = names.get(tag) if isinstance(tag, int) else None
        if name is None or tag in _SKIPPED_TAGS:
            continue
        value = _json_value(_read_tag(directory, tag))
        if value is not None:
            named[name] = value
    return named


def _read_tag(directory: Mapping[int, Any], tag: int) -> Any:
    try:
        return directory[tag]
    except Exception:
        return None


# Strip and tile offset tables have an entry per strip: nobody reads them as metadata and they
# would swell the answer.
_MAX_ITEMS = 256
# BYTE/UNDEFINED values this short are versions and codes (GPSVersionID [2, 2, 0, 0]),
# reported as numbers like exif-parser does; longer binary blobs are left out.
_MAX_BYTE_LIST = 16


def _json_value(value: Any) -> Any:
    """A JSON-safe form of an EXIF value, or None to leave the tag out."""
    if isinstance(value, TiffImagePlugin.IFDRational | float):
        return _number(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return value.rstrip("\x00")
    if isinstance(value, bytes):
        return _bytes_value(value)
    if isinstance(value, tuple | list) and len(value) <= _MAX_ITEMS:
        items = [_json_value(item) for item in value]
        return None if any(item is None for item in items) else items
    return None  # nested directories (reported as their own groups) and anything unknown


def _number(value: float) -> int | float | None:
    if not math.isfinite(value):  # a rational with a zero denominator
        return None
    # Whole numbers as integers: exif-parser's JavaScript numbers print 72, not 72.0.
    return int(value) if value.is_integer() else value


def _bytes_value(data: bytes) -> Any:
    if len(data) == 1:
        return data[0]
    text = data.rstrip(b"\x00")
    if text and all(0x20 <= byte < 0x7F for byte in text):
        return text.decode("ascii")  # ExifVersion "0232", FlashpixVersion "0100"
    if len(data) <= _MAX_BYTE_LIST:
        return list(data)
    return None


# ITU T.81 Annex K.1 luminance table, natural (row-major) order.
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)


def _ijg_tables() -> np.ndarray[Any, np.dtype[np.int64]]:
    # libjpeg's jpeg_quality_scaling and jpeg_add_quant_table (force_baseline), row q-1.
    scales = np.array([5000 // q if q < 50 else 200 - 2 * q for q in range(1, 101)],
                      dtype=np.int64)
    tables = (_IJG_LUMINANCE[np.newaxis, :] * scales[:, np.newaxis] + 50) // 100
    clipped: np.ndarray[Any, np.dtype[np.int64]] = np.clip(tables, 1, 255)
    return clipped


_IJG_TABLES = _ijg_tables()


def _jpeg_quality(opened: Image.Image) -> int:
    try:
        tables = getattr(opened, "quantization", None)
        if not isinstance(tables, dict) or not tables:
            return 0
        # Table 0 is the luminance table in practice (the first component's, by convention).
        luminance = np.asarray(tables.get(0, tables[min(tables)]), dtype=np.int64)
        if luminance.shape != (64,):
            return 0
        errors = np.abs(_IJG_TABLES - luminance[np.newaxis, :]).sum(axis=1)
        return int(np.argmin(errors)) + 1  # argmin takes the first: ties go to lower quality
    except Exception:
        return 0


# -- pHash ------------------------------------------------------------------------------

_HASH_SIDE = 32
_HASH_BLOCK = 8


def _phash(path: Path) -> str:
    try:
        # Shrink-on-load (JPEG, WebP, HEIF, SVG, PDF) keeps a large upload from being decoded
        # at full size; other formats stream through in strips.
        if str(path).endswith("]"):
            # thumbnail() adds options of its own to the name, so `[]` cannot protect it.
            thumb = pyvips.Image.thumbnail_source(pyvips.Source.new_from_file(str(path)),
                                                  _HASH_SIDE, height=_HASH_SIDE, size="force")
        else:
            thumb = pyvips.Image.thumbnail(str(path), _HASH_SIDE, height=_HASH_SIDE,
                                           size="force")
        grey = thumb.colourspace("b-w")[0].cast("float")
        if (grey.width, grey.height) != (_HASH_SIDE, _HASH_SIDE):
            return ""
        pixels = np.frombuffer(grey.write_to_memory(), dtype=np.float32)
        pixels = pixels.reshape(_HASH_SIDE, _HASH_SIDE).copy()
        dct = np.asarray(cv2.dct(pixels), dtype=np.float64)
    except Exception:
        return ""
    # cv2's DCT is orthonormal, which scales the first row and column by 1/sqrt(2) against the
    # rest; undone so the comparison with the median is imagehash's (unnormalised DCT-II).
    dct[0, :] *= math.sqrt(2)
    dct[:, 0] *= math.sqrt(2)
    block = dct[:_HASH_BLOCK, :_HASH_BLOCK]
    bits = (block > np.median(block)).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"
