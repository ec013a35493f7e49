"""Recognising input formats, choosing the output format, and encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixelport.errors import UnsupportedFormat
from pixelport.transform import budget, pillow_encode
from pixelport.transform.colours import WHITE, Colour

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "tiff": "image/tiff",
    "heic": "image/heic",
}
ENCODABLE = ("jpg", "png", "webp", "avif", "gif")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def sniff(head: bytes) -> str | None:
    """The image format of a file from its first bytes, or None when it is not an image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i:i + 4] for i in range(16, min(len(head), 64), 4)}
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heic"
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in head.lower():
        return "svg"
    return None


def accepts(accept: str, media_type: str) -> bool:
    """Whether an Accept header explicitly lists `media_type` with a non-zero q."""
    for item in accept.lower().split(","):
        kind, _, params = item.strip().partition(";")
        if kind.strip() != media_type:
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


@dataclass(frozen=True)
class FormatChoice:
    """The output format and whether it was negotiated from Accept (then: Vary: Accept)."""

    format: str
    negotiated: bool


def choose(requested: str | None, input_format: str, has_alpha: bool, accept: str,
           best_format: bool, avif: bool, animated: bool = False) -> FormatChoice:
    """Pick the output format: explicit f-, else the best the client accepts.

    Animations stay animated (WebP when accepted, else GIF); AVIF only when enabled.
    """
    if requested == "orig" or (requested is None and not best_format):
        if input_format in ENCODABLE:
            return FormatChoice(input_format, False)
        return FormatChoice("png" if has_alpha else "jpg", False)
    if requested not in (None, "auto"):
        return FormatChoice(requested, False)
    if animated:
        return FormatChoice("webp" if accepts(accept, "image/webp") else "gif", True)
    if avif and accepts(accept, "image/avif"):
        return FormatChoice("avif", True)
    if accepts(accept, "image/webp"):
        return FormatChoice("webp", True)
    return FormatChoice("png" if has_alpha else "jpg", True)


DEFAULT_RESOLUTION = 72 / 25.4  # 72 dpi in pixels per millimetre, libvips' default


@dataclass(frozen=True)
class EncodeOptions:
    """Encoder settings common to all formats."""

    quality: int
    progressive: bool = False
    lossless: bool = False
    chroma_subsampling: bool = False
    keep: str = "none"
    background: Colour = WHITE  # what transparency becomes in JPEG
    webp_effort: int | None = None  # None: by size, see encode


def encode(image: Any, fmt: str, options: EncodeOptions) -> bytes:
    """Encode a pyvips image as `fmt` (a libvips failure propagates: see engine.render)."""
    image = budget.watch(image)
    if fmt == "jpg":
        if image.hasalpha():
            image = image.flatten(background=options.background.rgb)
        # Optimised Huffman tables save 1.5-3 % of bytes; libjpeg's second pass for them
        # costs as much as the encode itself, 30 ms on a 1920 px output. Kept up to 1 MP.
        optimize = options.progressive or image.width * image.height <= 1_000_000
        if options.keep == "none":
            fast = pillow_encode.jpeg(image, options.quality, optimize, options.progressive,
                                      options.chroma_subsampling)
            if fast is not None:
                return fast
        return bytes(image.jpegsave_buffer(
            Q=options.quality, optimize_coding=optimize, interlace=options.progressive,
            subsample_mode="auto" if options.chroma_subsampling else "off", keep=options.keep,
        ))
    if fmt == "png":
        if options.keep == "none":
            # PNG is the one output that writes the input's density (pHYs) even with
            # metadata stripped; write libvips' default, whichever decoder read the input.
            image = image.copy(xres=DEFAULT_RESOLUTION, yres=DEFAULT_RESOLUTION)
        return bytes(image.pngsave_buffer(compression=6, interlace=options.progressive,
                                          keep=options.keep))
    if fmt == "webp":
        # Effort 4 costs twice effort 2 for 3-4 % fewer bytes (measured on photos from
        # 320 to 1920 px): worth it on thumbnails, not where encoding dominates a request.
        effort = options.webp_effort
        if effort is None:
            effort = 4 if image.width * image.height <= 320_000 else 2
        if options.keep == "none":
            fast = pillow_encode.webp(image, options.quality, options.lossless, effort)
            if fast is not None:
                return fast
        return bytes(image.webpsave_buffer(Q=options.quality, lossless=options.lossless,
                                           effort=effort, keep=options.keep))
    if fmt == "avif":
        return bytes(image.heifsave_buffer(Q=options.quality, lossless=options.lossless,
                                           compression="av1", effort=2, keep=options.keep))
    if fmt == "gif":
        return bytes(image.gifsave_buffer(keep=options.keep, interlace=options.progressive))
    raise UnsupportedFormat(f"Output format {fmt!r} is not supported for this image")
