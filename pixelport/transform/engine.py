"""The libvips pipeline. Runs in a worker thread, never on the event loop.

Fixed order, for predictable results:
  load (EXIF orientation applied; shrink-on-load when the first step scales) → sRGB
  then per step: trim → geometry (precrop, scale, crop, canvas) → rotate → flip → blur →
  grayscale → contrast → sharpen → unsharp mask → colour replace → gradient → rounded corners
  → border → shadow → opacity
  then encode once, with the output settings (f, q, pr, lo, md, cp) of the last step that set
  them, metadata stripped unless md/cp ask to keep it.
Animated GIF/WebP are processed frame by frame with one plan, and stay animated when the
output format can animate.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pyvips

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import InvalidRequest, LimitExceeded, UnsupportedFormat
from pixelport.transform import faces, formats, geometry, pixels, registry
from pixelport.transform.colours import WHITE, Colour
from pixelport.transform.geometry import Context, Plan
from pixelport.transform.step import ChainItem, Step

_LOADER_FORMATS = {
    "jpegload": "jpg", "pngload": "png", "webpload": "webp", "gifload": "gif",
    "heifload": "heic", "tiffload": "tiff", "svgload": "svg",
}
ANIMATABLE = ("gif", "webp")
# Truncated files and decoding errors (a bad PNG CRC) are refused with EFORMAT rather than
# served half grey; mere warnings, common in camera JPEGs, still pass.
FAIL_ON = "error"
WEBP_MAX = 16_383
JPEG_MAX = 65_535


@dataclass(frozen=True)
class RenderOptions:
    """Per-request inputs to the pipeline besides the chain."""

    accept: str
    images: ImagesConfig
    limits: LimitsConfig
    client_width: int | None = None
    client_dpr: float | None = None


@dataclass(frozen=True)
class Rendered:
    """An encoded result."""

    data: bytes
    format: str
    width: int
    height: int
    negotiated: bool
    vary: tuple[str, ...] = ()
    dpr: float | None = None

    @property
    def content_type(self) -> str:
        """The MIME type of `data`."""
        return formats.CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class Probe:
    """What the header says, read without decoding pixels."""

    format: str
    width: int  # upright, after EXIF orientation; one frame of an animation
    height: int
    pages: int


@dataclass
class Output:
    """Output settings merged over the steps actually applied."""

    format: str | None = None
    quality: int | None = None
    progressive: bool = False
    lossless: bool = False
    metadata: bool = False
    colour_profile: bool = False
    background: Colour | None = None
    unsharp: bool = False
    vary: set[str] = field(default_factory=set)
    dpr: float | None = None

    def absorb(self, step: Step) -> None:
        """Later steps override earlier ones."""
        self.format = step.format or self.format
        self.quality = step.quality or self.quality
        self.progressive = _override(step.progressive, self.progressive)
        self.lossless = _override(step.lossless, self.lossless)
        self.metadata = _override(step.metadata, self.metadata)
        self.colour_profile = _override(step.colour_profile, self.colour_profile)
        if step.background is not None and step.background.colour is not None:
            self.background = step.background.colour
        self.unsharp = self.unsharp or step.unsharp is not None


def _override(value: bool | None, current: bool) -> bool:
    return current if value is None else value


def probe(data: bytes, limits: LimitsConfig) -> Probe:
    """Read the header and enforce the input pixel and frame limits before any decoding."""
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
    pages = _integer(image, "n-pages", 1)
    width, height = image.width, image.height
    if width * height > limits.max_input_pixels:
        raise LimitExceeded(f"The input image is {width}x{height} pixels, more than the "
                            f"limit of {limits.max_input_pixels}")
    if pages > limits.max_frames:
        raise LimitExceeded(f"The input has {pages} frames, more than the limit of "
                            f"{limits.max_frames}")
    if width * height * pages > limits.max_input_pixels * 4:
        raise LimitExceeded("The input animation has too many pixels in all")
    if _integer(image, "orientation", 1) in (5, 6, 7, 8):
        width, height = height, width
    return Probe(fmt, width, height, pages)


def render(data: bytes, chain: list[ChainItem], options: RenderOptions) -> Rendered:
    """Transform and encode an image."""
    info = probe(data, options.limits)
    ctx = Context(info.width, info.height, options.client_width, options.client_dpr)
    output = Output()
    steps = [item for item in chain if isinstance(item, Step)]
    for step in steps:
        output.absorb(step)  # provisional: decides how to load (colour profile kept or not)
    keep_profile = output.metadata or output.colour_profile
    page = next((s.page for s in reversed(steps) if s.page is not None), None)
    animated = info.pages > 1 and info.format in ANIMATABLE and page is None
    frames, first_done = _load(data, info, chain, ctx, options, keep_profile, page, animated)
    output = Output()
    for index, item in enumerate(chain):
        step = _resolve(item, frames[0], ctx)
        output.absorb(step)
        _note_hints(step, output)
        frames = _apply(frames, step, ctx, options.limits, output, skip_scale=index == 0
                        and first_done)
    return _encode(frames, info, output, options, data)


def _resolve(item: ChainItem, image: Any, ctx: Context) -> Step:
    if isinstance(item, Step):
        return item
    values = geometry.variables(ctx, image.width, image.height)
    values.update({"w": image.width, "h": image.height, "ar": image.width / image.height})
    if registry.holds(item.condition, values):
        return item.then
    return item.otherwise or Step()


def _note_hints(step: Step, output: Output) -> None:
    if step.width_auto:
        output.vary.add("Sec-CH-Width")
    if step.dpr_auto:
        output.vary.add("Sec-CH-DPR")


# --- loading ----------------------------------------------------------------------------------

def _load(data: bytes, info: Probe, chain: list[ChainItem], ctx: Context,
          options: RenderOptions, keep_profile: bool, page: int | None,
          animated: bool) -> tuple[list[Any], bool]:
    """Decode the input; returns the frames and whether the first step's scale is done."""
    load_options: dict[str, Any] = {}
    if page is not None:
        if page > info.pages:
            raise InvalidRequest(f"pg-{page}: the input has {info.pages} page(s)")
        load_options["page"] = page - 1
    first = chain[0] if chain else None
    if (isinstance(first, Step) and not animated and not keep_profile and first.trim is None
            and first.focus != "face"):
        plan = geometry.plan(info.width, info.height, first, ctx)
        if plan is not None and plan.precrop is None and plan.scale is not None:
            _check_output(plan, options.limits)
            width, height = plan.scale
            option_string = ",".join(f"{k}={v}" for k, v in load_options.items())
            try:
                # Shrink-on-load: JPEG, WebP, HEIF and SVG decode straight at a reduced size.
                image = pyvips.Image.thumbnail_buffer(
                    data, width, height=height, size="force", option_string=option_string,
                    crop="attention" if plan.attention else "none", fail_on=FAIL_ON)
            except pyvips.Error as exc:
                raise _decode_error(exc) from None
            # Materialised (it is small now) so later steps may read it more than once.
            return [_to_srgb(image, keep_profile).copy_memory()], True
    try:
        if animated:
            strip = pyvips.Image.new_from_buffer(data, "", n=-1, access="random",
                                                 fail_on=FAIL_ON)
            height = _integer(strip, "page-height", strip.height)
            frames = [strip.crop(0, top, strip.width, height)
                      for top in range(0, strip.height - height + 1, height)]
            frames = [_to_srgb(frame.copy_memory(), False) for frame in frames]
            _keep_animation(frames, strip)
            return frames, False
        image = pyvips.Image.new_from_buffer(data, "", access="random", fail_on=FAIL_ON,
                                             **load_options)
        return [_to_srgb(image.autorot().copy_memory(), keep_profile)], False
    except pyvips.Error as exc:
        raise _decode_error(exc) from None


def _keep_animation(frames: list[Any], strip: Any) -> None:
    delay = strip.get("delay") if strip.get_typeof("delay") else None
    loop = _integer(strip, "loop", 0)
    frames[0] = frames[0].copy()
    frames[0].set_type(pyvips.GValue.array_int_type, "delay",
                       delay or [100] * len(frames))
    frames[0].set_type(pyvips.GValue.gint_type, "loop", loop)


def _to_srgb(image: Any, keep_profile: bool) -> Any:
    if not keep_profile and image.get_typeof("icc-profile-data") != 0:
        # A broken profile: fall back to the plain colourspace conversion below.
        with contextlib.suppress(pyvips.Error):
            image = image.icc_transform("srgb", embedded=True)
    if image.interpretation not in ("srgb",) or image.format != "uchar":
        image = image.colourspace("srgb").cast("uchar")  # grey, CMYK, 16-bit → 8-bit sRGB
    if image.bands > 4:
        image = image[:4]
    return image


# --- per step ---------------------------------------------------------------------------------

def _apply(frames: list[Any], step: Step, ctx: Context, limits: LimitsConfig, output: Output,
           skip_scale: bool) -> list[Any]:
    first = frames[0]
    values = geometry.variables(ctx, first.width, first.height)
    if step.trim is not None:
        frames = [pixels.trim(f, step.trim) for f in frames]
        first = frames[0]
    if not skip_scale:
        face = faces.detect(first) if step.focus == "face" else None
        plan = geometry.plan(first.width, first.height, step, ctx, face)
        if plan is not None:
            _check_output(plan, limits)
            frames = [_geometry(f, plan, step) for f in frames]
            output.dpr = geometry.target(first.width, first.height, step, ctx).dpr or output.dpr
    else:
        plan = geometry.plan(ctx.input_width, ctx.input_height, step, ctx)
        output.dpr = geometry.target(ctx.input_width, ctx.input_height, step, ctx).dpr
        if plan is not None:
            frames = [_geometry(f, plan, step, scaled=True) for f in frames]
    values = geometry.variables(ctx, frames[0].width, frames[0].height)
    operations = _operations(step, values)
    for operation in operations:
        frames = [operation(f) for f in frames]
    return frames


def _operations(step: Step, values: dict[str, float]) -> list[Any]:
    ops: list[Any] = []
    if step.rotate:
        ops.append(lambda f: pixels.rotate(f, step.rotate or 0, step.background))
    if step.flip:
        ops.append(lambda f: pixels.flip(f, step.flip or ""))
    if step.blur:
        ops.append(lambda f: pixels.blur(f, step.blur or 0))
    if step.grayscale:
        ops.append(pixels.grayscale)
    if step.contrast:
        ops.append(pixels.contrast)
    if step.sharpen:
        ops.append(lambda f: pixels.sharpen(f, step.sharpen or 0))
    if step.unsharp:
        u = step.unsharp
        ops.append(lambda f: pixels.unsharp(f, u.radius, u.sigma, u.amount, u.threshold))
    if step.colour_replace:
        spec = step.colour_replace
        ops.append(lambda f: pixels.replace_colour(f, spec))
    if step.gradient:
        gradient = step.gradient
        ops.append(lambda f: pixels.gradient(f, gradient, values))
    if step.radius:
        radius = step.radius
        ops.append(lambda f: pixels.round_corners(f, radius, values))
    if step.border:
        border = step.border
        ops.append(lambda f: pixels.add_border(f, border, values))
    if step.shadow:
        shadow = step.shadow
        ops.append(lambda f: pixels.drop_shadow(f, shadow))
    if step.opacity is not None:
        ops.append(lambda f: pixels.set_opacity(f, step.opacity or 0))
    return ops


def _geometry(image: Any, plan: Plan, step: Step, scaled: bool = False) -> Any:
    source = image
    try:
        if plan.precrop is not None and not scaled:
            box = plan.precrop
            image = image.crop(box.left, box.top, box.width, box.height)
        if plan.scale is not None and not scaled:
            width, height = plan.scale
            if plan.attention:
                image = image.thumbnail_image(width, height=height, crop="attention")
            elif (image.width, image.height) != (width, height):
                image = image.thumbnail_image(width, height=height, size="force")
        elif plan.attention and plan.scale is None:
            image = image.smartcrop(plan.out_width, plan.out_height, interesting="attention")
        if plan.crop is not None:
            box = plan.crop
            image = image.crop(box.left, box.top, box.width, box.height)
        if plan.canvas is not None:
            image = pixels.place_on_canvas(image, plan.canvas, step.background, source)
    except pyvips.Error as exc:
        raise _decode_error(exc) from None
    return image


def _check_output(plan: Plan, limits: LimitsConfig) -> None:
    sizes = [(plan.out_width, plan.out_height)]
    if plan.scale is not None:
        sizes.append(plan.scale)
    for width, height in sizes:
        if width * height > limits.max_output_pixels:
            raise LimitExceeded(f"The output would be {width}x{height} pixels, more than the "
                                f"limit of {limits.max_output_pixels}")


# --- encoding ---------------------------------------------------------------------------------

def _encode(frames: list[Any], info: Probe, output: Output, options: RenderOptions,
            data: bytes) -> Rendered:
    first = frames[0]
    if first.width * first.height > options.limits.max_output_pixels:
        raise LimitExceeded(f"The output would be {first.width}x{first.height} pixels, more "
                            f"than the limit of {options.limits.max_output_pixels}")
    animated = len(frames) > 1
    choice = formats.choose(
        output.format, info.format, bool(first.hasalpha()), options.accept,
        options.images.best_format,
        options.images.avif and not (output.colour_profile or output.unsharp),
        animated=animated,
    )
    fmt = choice.format
    if fmt == "svg":
        raise UnsupportedFormat("f-svg needs an SVG input, which is served as it is")
    largest = max(first.width, first.height)
    if fmt == "webp" and largest > WEBP_MAX:
        if not choice.negotiated:
            raise LimitExceeded(f"WebP output is limited to {WEBP_MAX} pixels a side")
        fmt = "png" if first.hasalpha() else "jpg"
    if fmt == "jpg" and largest > JPEG_MAX:
        raise LimitExceeded(f"JPEG output is limited to {JPEG_MAX} pixels a side")
    image = first
    if animated and fmt in ANIMATABLE:
        image = pyvips.Image.arrayjoin(frames, across=1).copy()
        image.set_type(pyvips.GValue.gint_type, "page-height", first.height)
        for name in ("delay", "loop"):
            if frames[0].get_typeof(name):
                image.set_type(frames[0].get_typeof(name), name, frames[0].get(name))
    keep = "all" if output.metadata else ("icc" if output.colour_profile else "none")
    encoded = formats.encode(image, fmt, formats.EncodeOptions(
        quality=output.quality or options.images.quality,
        progressive=output.progressive,
        lossless=output.lossless,
        chroma_subsampling=options.images.chroma_subsampling,
        keep=keep,
        background=output.background or WHITE,
    ))
    vary = tuple(sorted(output.vary | ({"Accept"} if choice.negotiated else set())))
    return Rendered(encoded, fmt, first.width, first.height, choice.negotiated, vary, output.dpr)


def _decode_error(exc: Exception) -> UnsupportedFormat:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return UnsupportedFormat(f"The image could not be decoded: {first}")


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

