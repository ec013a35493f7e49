"""Loading an image: header probe (limits before decoding), decode with shrink-on-load,
EXIF orientation, sRGB, and animation frames."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pyvips

from pixelport.config import LimitsConfig
from pixelport.errors import InvalidRequest, LimitExceeded, UnsupportedFormat
from pixelport.transform import budget, geometry, jpeg_decode, jpeg_header, profiles
from pixelport.transform.geometry import Context, Plan
from pixelport.transform.sharing import ELIGIBLE_SIDE, MIN_SIDE, Sharing
from pixelport.transform.step import ChainItem, Step

_LOADER_FORMATS = {
    "jpegload": "jpg", "pngload": "png", "webpload": "webp", "gifload": "gif",
    "heifload": "heic", "tiffload": "tiff", "svgload": "svg",
}
ANIMATABLE = ("gif", "webp")
# Truncated files and decoding errors (a bad PNG CRC) are refused with EFORMAT rather than
# served half grey; mere warnings, common in camera JPEGs, still pass.
FAIL_ON = "error"


@dataclass(frozen=True)
class Probe:
    """What the header says, read without decoding pixels."""

    format: str
    width: int  # upright, after EXIF orientation; one frame of an animation
    height: int
    pages: int
    orientation: int = 1  # EXIF, 1 to 8
    bands: int = 3
    sample_bytes: int = 1  # 2 for 16-bit, 4 for float

    @property
    def oriented(self) -> bool:
        """Whether an EXIF orientation other than "upright" is to be applied."""
        return self.orientation in range(2, 9)


def probe(data: bytes, limits: LimitsConfig) -> Probe:
    """Read the header and enforce the input pixel and frame limits before any decoding."""
    plain = jpeg_header.read(data)
    bands, sample_bytes = 3, 1  # a plain JPEG: 8-bit, grey or YCbCr (decoded as RGB)
    if plain is not None:
        fmt, (width, height, orientation), pages = "jpg", plain, 1
    else:
        fmt, width, height, pages, orientation, bands, sample_bytes = _vips_header(data)
    if width * height > limits.max_input_pixels:
        raise LimitExceeded(f"The input image is {width}x{height} pixels, more than the "
                            f"limit of {limits.max_input_pixels}")
    if pages > limits.max_frames:
        raise LimitExceeded(f"The input has {pages} frames, more than the limit of "
                            f"{limits.max_frames}")
    if width * height * pages > limits.max_input_pixels * 4:
        raise LimitExceeded("The input animation has too many pixels in all")
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Probe(fmt, width, height, pages, orientation if orientation in range(1, 9) else 1,
                 bands, sample_bytes)


def check_decoded(data: bytes, info: Probe, page: int | None, animated: bool,
                  limits: LimitsConfig) -> None:
    """Refuse (ELIMIT), before decoding, what this request would decode past the limits.

    The probe reads the first page: `pg-N` is checked against the page asked for (a 1x1
    first page may hide a 40000x40000 second one), and an animation kept animated counts
    all its frames. The decoded size is the full one: shrink-on-load only makes it smaller.
    """
    width, height, bands, sample_bytes = info.width, info.height, info.bands, info.sample_bytes
    if page is not None and page > info.pages:
        raise InvalidRequest(f"pg-{page}: the input has {info.pages} page(s)")
    if page is not None and page > 1 and info.pages > 1:
        try:
            image = pyvips.Image.new_from_buffer(data, "", access="sequential", page=page - 1)
        except pyvips.Error:
            raise UnsupportedFormat(f"Page {page} of the file cannot be read") from None
        width, height, bands = image.width, image.height, image.bands
        sample_bytes = _SAMPLE_BYTES.get(str(image.format), 4)
        if width * height > limits.max_input_pixels:
            raise LimitExceeded(f"Page {page} is {width}x{height} pixels, more than the limit "
                                f"of {limits.max_input_pixels}")
    frames = info.pages if animated else 1
    decoded = width * height * bands * sample_bytes * frames
    if decoded > limits.max_decoded_bytes:
        raise LimitExceeded(f"Decoding {width}x{height} x {bands} band(s) x {sample_bytes} "
                            f"byte(s) x {frames} frame(s) takes {decoded} bytes, more than "
                            f"the limit of {limits.max_decoded_bytes} (max_decoded_bytes)")


_SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2}


def _vips_header(data: bytes) -> tuple[str, int, int, int, int, int, int]:
    """Format, size, pages, EXIF orientation, bands and bytes per sample as libvips reads
    them from the header."""
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential")
        loader = str(image.get("vips-loader"))
    except pyvips.Error:
        raise UnsupportedFormat("The file is not an image that can be decoded") from None
    fmt = _LOADER_FORMATS.get(loader.removesuffix("_buffer").removesuffix("_source"), "other")
    if fmt == "other":
        raise UnsupportedFormat(f"Images loaded by {loader} are not supported")
    if fmt == "heic" and "av1" in _string(image, "heif-compression"):
        fmt = "avif"
    return (fmt, image.width, image.height, _integer(image, "n-pages", 1),
            _integer(image, "orientation", 1), image.bands,
            _SAMPLE_BYTES.get(str(image.format), 4))


def load(data: bytes, info: Probe, chain: list[ChainItem], ctx: Context,
          limits: LimitsConfig, keep_profile: bool, page: int | None,
          animated: bool, fast_shrink: bool = True,
          sharing: Sharing | None = None,
          encode_only: bool = False) -> tuple[list[Any], bool]:
    """Decode the input; returns the frames and whether the first step's scale is done.

    `encode_only`: the caller will only encode the frame once, so a decode that already has
    the output's size is left lazy and runs inside the encoder's pass.
    """
    load_options: dict[str, Any] = {}
    if page is not None:
        if page > info.pages:
            raise InvalidRequest(f"pg-{page}: the input has {info.pages} page(s)")
        if info.pages > 1:  # single-page loaders (JPEG, PNG, SVG) take no page argument
            load_options["page"] = page - 1
    first = chain[0] if chain else None
    if (isinstance(first, Step) and not animated and not keep_profile and first.trim is None
            and first.focus not in ("face", "custom")):
        plan = geometry.plan(info.width, info.height, first, ctx)
        if plan is not None and plan.precrop is None and plan.scale is not None:
            check_output(plan, limits)
            width, height = plan.scale
            option_string = ",".join(f"{k}={v}" for k, v in load_options.items())
            crop = "attention" if plan.attention else "none"
            shrink = jpeg_shrink(info, width, height) if fast_shrink else 1
            # Left lazy for JPEGs only: libjpeg's decode is bounded by the pixel limits, where
            # another loader's (librsvg's above all) is best stopped by the render's budget in
            # a materialisation it can kill, before the encoder's region reads it.
            lazy = (encode_only and plan.crop is None and plan.canvas is None
                    and crop == "none" and info.format == "jpg")
            copy = shared_copy(data, info, width, height, sharing, page)
            if copy is not None and sharing is not None:
                image = sharing.resized(data, (width, height, crop), lambda: to_srgb(
                    budget.watch(copy.thumbnail_image(width, height=height, size="force",
                                                      crop=crop)), False).copy_memory())
                return [budget.watch_view(image)], True
            elif shrink > 1:
                image = _jpeg_shrunk(data, info, shrink, width, height, crop, lazy)
            else:
                # Shrink-on-load: JPEG, WebP, HEIF and SVG decode at a reduced size.
                image = pyvips.Image.thumbnail_buffer(
                    data, width, height=height, size="force", option_string=option_string,
                    crop=crop, fail_on=FAIL_ON)
            image = to_srgb(budget.watch(image), keep_profile)
            if lazy:
                # Decoding straight into the encoder saves a pass over memory and a libvips
                # pipeline: about 1 ms, a fifth of a 300 px thumbnail of a 1200x900 photo.
                # Damaged input then fails in the encoder (EFORMAT all the same: engine.render).
                return [image], True
            # Materialised (it is small now) so later steps may read it more than once.
            return [budget.watch(image.copy_memory())], True
    if animated:
        strip = budget.watch(pyvips.Image.new_from_buffer(data, "", n=-1, access="random",
                                                          fail_on=FAIL_ON))
        height = _integer(strip, "page-height", strip.height)
        frames = [strip.crop(0, top, strip.width, height)
                  for top in range(0, strip.height - height + 1, height)]
        frames = [to_srgb(budget.watch(frame.copy_memory()), False) for frame in frames]
        keep_animation(frames, strip)
        return frames, False
    image = budget.watch(pyvips.Image.new_from_buffer(data, "", access="random",
                                                      fail_on=FAIL_ON, **load_options))
    return [to_srgb(budget.watch(image.autorot().copy_memory()), keep_profile)], False


def _jpeg_shrunk(data: bytes, info: Probe, shrink: int, width: int, height: int, crop: str,
                 lazy: bool) -> Any:
    """A JPEG decoded at the largest DCT-domain shrink that stays at or above the target (as
    Pillow's draft() and sharp do; libvips' thumbnail keeps 2x headroom), then resized."""
    image = jpeg_decode.shrunk(data, shrink, info.orientation)
    if image is None:
        image = _vips_jpeg_shrunk(data, info, shrink, width, height, lazy)
    image = budget.watch(image)
    if (image.width, image.height) != (width, height) or crop != "none":
        image = image.thumbnail_image(width, height=height, size="force", crop=crop)
    return image


def _vips_jpeg_shrunk(data: bytes, info: Probe, shrink: int, width: int, height: int,
                      lazy: bool) -> Any:
    """The shrunk decode through libvips' loader, for the JPEGs jpeg_decode leaves to it."""
    # libvips rounds a shrunk size down.
    exact = not info.oriented and (info.width // shrink, info.height // shrink) == (width, height)
    # Read once, in order, by the encoder alone: no line cache is needed (one libvips
    # operation less per thumbnail, 2-3 % of its CPU). A resize reads lines again.
    access = "sequential-unbuffered" if lazy and exact else "sequential"
    image = _libvips_jpeg(data, info, shrink, access)
    if (image.width, image.height) != (width, height) and access != "sequential":
        # Not the size foreseen, so it is resized, which reads lines again: use the cache.
        image = _libvips_jpeg(data, info, shrink, "sequential")
    return image


def _libvips_jpeg(data: bytes, info: Probe, shrink: int, access: str) -> Any:
    """The JPEG at 1/shrink through libvips' loader, upright."""
    image = pyvips.Image.jpegload_buffer(data, shrink=shrink, access=access, fail_on=FAIL_ON)
    return image.autorot() if info.oriented else image


def keep_animation(frames: list[Any], strip: Any) -> None:
    """Carry the animation's frame delays and loop count on the first frame."""
    delay = strip.get("delay") if strip.get_typeof("delay") else None
    loop = _integer(strip, "loop", 0)
    frames[0] = frames[0].copy()
    frames[0].set_type(pyvips.GValue.array_int_type, "delay",
                       delay or [100] * len(frames))
    frames[0].set_type(pyvips.GValue.gint_type, "loop", loop)


def shared_copy(data: bytes, info: Probe, width: int, height: int,
                sharing: Sharing | None, page: int | None) -> Any | None:
    """A decoded copy of a large JPEG shared by its variants (see sharing.py), or None."""
    if (sharing is None or info.format != "jpg" or page is not None
            or max(info.width, info.height) < ELIGIBLE_SIDE):
        return None
    shrink = max(f for f in (8, 4, 2, 1) if max(info.width, info.height) // f >= MIN_SIDE)
    if info.width // shrink < width or info.height // shrink < height:
        return None  # the target is larger than the copy would be

    def build() -> Any:  # the store writes it to memory, or to a shared file
        image = jpeg_decode.shrunk(data, shrink, info.orientation)
        if image is None:
            image = _libvips_jpeg(data, info, shrink, "random")
        return to_srgb(budget.watch(image), False)

    return sharing.copy(data, build)


def jpeg_shrink(info: Probe, width: int, height: int) -> int:
    """The largest JPEG load shrink (8, 4, 2) keeping both sides at or above the target."""
    if info.format != "jpg" or info.pages > 1:
        return 1
    for factor in (8, 4, 2):
        if info.width // factor >= width and info.height // factor >= height:
            return factor
    return 1


def to_srgb(image: Any, keep_profile: bool) -> Any:
    """8-bit sRGB (3 or 4 bands); embedded profiles converted unless asked to keep them."""
    if not keep_profile and image.get_typeof("icc-profile-data") != 0:
        profile = bytes(image.get("icc-profile-data"))
        if not profiles.is_srgb(profile):
            # A broken profile: fall back to the plain colourspace conversion below.
            with contextlib.suppress(pyvips.Error):
                image = image.icc_transform("srgb", embedded=True)
    if image.interpretation not in ("srgb",) or image.format != "uchar":
        image = image.colourspace("srgb").cast("uchar")  # grey, CMYK, 16-bit → 8-bit sRGB
    if image.bands > 4:
        image = image[:4]
    return image


def check_output(plan: Plan, limits: LimitsConfig) -> None:
    """Refuse a plan whose output exceeds the output pixel limit (ELIMIT)."""
    sizes = [(plan.out_width, plan.out_height)]
    if plan.scale is not None:
        sizes.append(plan.scale)
    for width, height in sizes:
        if width * height > limits.max_output_pixels:
            raise LimitExceeded(f"The output would be {width}x{height} pixels, more than the "
                                f"limit of {limits.max_output_pixels}")


def decode_failure(data: bytes) -> UnsupportedFormat | None:
    """EFORMAT, in the loader's words, unless every page of `data` decodes whole.

    Only asked after a libvips failure, to tell a damaged input (EFORMAT) from a fault of
    ours: decoding is lazy, so damage surfaces in whichever operation first reads the pixels.
    """
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on=FAIL_ON)
        pages = _integer(image, "n-pages", 1)
        for page in range(pages):
            if page:
                image = pyvips.Image.new_from_buffer(data, "", access="sequential",
                                                     fail_on=FAIL_ON, page=page)
            image.avg()
    except pyvips.Error as exc:
        return decode_error(exc)
    return None


def decode_error(exc: Exception) -> UnsupportedFormat:
    """A libvips failure on a damaged input as EFORMAT, with the loader's own words."""
    # libvips' error text ends with the loader's own line ("VipsJpeg: premature end ...").
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[-1] if lines else type(exc).__name__
    return UnsupportedFormat(f"The image could not be decoded: {detail}")


def _integer(image: Any, name: str, default: int) -> int:
    if image.get_typeof(name) == 0:
        return default
    try:
        return int(image.get(name))
    except (pyvips.Error, TypeError, ValueError):
        return default


def _string(image: Any, name: str) -> str:
    if image.get_typeof(name) == 0:
        return ""
    return str(image.get(name))
