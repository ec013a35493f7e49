"""The libvips pipeline: load (shrink-on-load), apply each step in order, encode.

Runs in a worker thread, never on the event loop. Pipeline order, per step: resize/crop;
after the last step: colour to sRGB, then encode with metadata stripped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pyvips

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import LimitExceeded, UnsupportedFormat
from pixelport.transform import formats, geometry
from pixelport.transform.step import Step

_LOADER_FORMATS = {
    "jpegload": "jpg", "pngload": "png", "webpload": "webp", "gifload": "gif",
    "heifload": "heic", "tiffload": "tiff", "svgload": "svg",
}


@dataclass(frozen=True)
class RenderOptions:
    """Per-request inputs to the pipeline besides the steps."""

    accept: str
    images: ImagesConfig
    limits: LimitsConfig


@dataclass(frozen=True)
class Rendered:
    """An encoded result."""

    data: bytes
    format: str
    width: int
    height: int
    negotiated: bool

    @property
    def content_type(self) -> str:
        """The MIME type of `data`."""
        return formats.CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class Probe:
    """What the header says, read without decoding pixels."""

    format: str
    width: int  # upright, after EXIF orientation
    height: int


def probe(data: bytes, limits: LimitsConfig) -> Probe:
    """Read the header and enforce the input pixel limit before any decoding."""
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential")
        loader = str(image.get("vips-loader"))
    except pyvips.Error:
        raise UnsupportedFormat("The file is not an image that can be decoded") from None
    fmt = _LOADER_FORMATS.get(loader.removesuffix("_buffer").removesuffix("_source"), "other")
    if fmt == "heic" and "av1" in _compression(image):
        fmt = "avif"
    width, height = image.width, image.height
    if width * height > limits.max_input_pixels:
        raise LimitExceeded(f"The input image is {width}x{height} pixels, more than the "
                            f"limit of {limits.max_input_pixels}")
    if _orientation(image) in (5, 6, 7, 8):
        width, height = height, width
    return Probe(fmt, width, height)


def render(data: bytes, steps: list[Step], options: RenderOptions) -> Rendered:
    """Transform and encode an image."""
    info = probe(data, options.limits)
    image = None
    width, height = info.width, info.height
    for step in steps:
        resize = geometry.plan(width, height, step)
        if resize is None:
            continue
        _check_output(resize.out_width, resize.out_height, options.limits)
        image = _resize(data if image is None else image, resize)
        width, height = image.width, image.height
    if image is None:
        image = _load(data)
    image = _to_srgb(image)
    last = _merged(steps)
    choice = formats.choose(last.format, info.format, bool(image.hasalpha()), options.accept,
                            options.images.best_format, options.images.avif)
    if choice.format == "svg":
        raise UnsupportedFormat("f-svg needs an SVG input, which is served as it is")
    encoded = formats.encode(image, choice.format, formats.EncodeOptions(
        quality=last.quality or options.images.quality,
        chroma_subsampling=options.images.chroma_subsampling,
    ))
    return Rendered(encoded, choice.format, image.width, image.height, choice.negotiated)


def _merged(steps: list[Step]) -> Step:
    """Output settings are global: the last step that sets one wins."""
    merged = Step()
    for step in steps:
        merged.format = step.format or merged.format
        merged.quality = step.quality or merged.quality
    return merged


def _check_output(width: int, height: int, limits: LimitsConfig) -> None:
    if width * height > limits.max_output_pixels:
        raise LimitExceeded(f"The output would be {width}x{height} pixels, more than the "
                            f"limit of {limits.max_output_pixels}")


def _resize(source: bytes | Any, resize: geometry.Resize) -> Any:
    crop = "centre" if resize.crop else "none"
    try:
        if isinstance(source, bytes):
            # Shrink-on-load: JPEG, WebP and HEIF decode at a reduced size when they can.
            return pyvips.Image.thumbnail_buffer(source, resize.width, height=resize.height,
                                                 crop=crop, size=resize.size)
        # A later step: the previous result is materialised so random access is safe.
        return source.copy_memory().thumbnail_image(resize.width, height=resize.height,
                                                    crop=crop, size=resize.size)
    except pyvips.Error as exc:
        raise UnsupportedFormat(f"The image could not be decoded: {_first_line(exc)}") from None


def _load(data: bytes) -> Any:
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential")
        return image.autorot()
    except pyvips.Error as exc:
        raise UnsupportedFormat(f"The image could not be decoded: {_first_line(exc)}") from None


def _to_srgb(image: Any) -> Any:
    if image.get_typeof("icc-profile-data") != 0:
        # A broken profile: fall back to the plain colourspace conversion below.
        with contextlib.suppress(pyvips.Error):
            image = image.icc_transform("srgb", embedded=True)
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb")  # also brings 16-bit input down to 8 bits
    return image


def _orientation(image: Any) -> int:
    if image.get_typeof("orientation") == 0:
        return 1
    try:
        return int(image.get("orientation"))
    except (pyvips.Error, ValueError):
        return 1


def _compression(image: Any) -> str:
    if image.get_typeof("heif-compression") == 0:
        return ""
    return str(image.get("heif-compression"))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
