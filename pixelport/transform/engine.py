"""The libvips pipeline. Runs in a worker thread, never on the event loop.

Fixed order, for predictable results:
  load (EXIF orientation applied; shrink-on-load when the first step scales) → sRGB
  then per step: trim → geometry (precrop, scale, crop, canvas) → rotate → flip → blur →
  grayscale → contrast → sharpen → unsharp mask → colour replace → gradient → rounded corners
  → border → shadow → opacity → bg colour underneath → layers (overlay.py), each drawn
  with its own chain
  then encode once, with the output settings (f, q, pr, lo, md, cp) of the last step that set
  them, metadata stripped unless md/cp ask to keep it.
Animated GIF/WebP are processed frame by frame with one plan, and stay animated when the
output format can animate.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyvips

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import InvalidRequest, LimitExceeded, UnsupportedFormat
from pixelport.transform import budget, faces, formats, geometry, load, overlay, pixels, registry
from pixelport.transform.budget import Budget
from pixelport.transform.colours import TRANSPARENT, WHITE, Colour
from pixelport.transform.geometry import Context, Plan
from pixelport.transform.sharing import Sharing
from pixelport.transform.step import Background, ChainItem, Step

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
    sharing: Sharing | None = None  # decoded copies shared between variants
    budget: Budget | None = None  # the render's time and stop switch (budget.py)
    # fo-custom's area, "x,y,width,height" in the original's pixels (a library upload's).
    custom_coordinates: str | None = None
    # The files layers read (image layers, library fonts), by path: fetched by the caller.
    layer_files: Mapping[str, bytes] | None = None


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


def render(data: bytes, chain: list[ChainItem], options: RenderOptions) -> Rendered:
    """Transform and encode an image.

    The render runs within its budget (budget.py: max_render_seconds, and a stop switch for
    renders nobody waits for). Decoding is lazy, so a damaged input can fail in any operation
    that pulls its pixels (a resize, an effect, the encoder): any libvips failure is answered
    EFORMAT when the input itself does not decode whole; otherwise it is a fault of ours and
    propagates (a logged 500).
    """
    allowance = options.budget or Budget(options.limits.max_render_seconds)
    with allowance.running():
        try:
            return _render(data, chain, options)
        except pyvips.Error:
            if allowance.spent():  # killed: the time is up, or nobody wants the result
                raise allowance.error() from None
            failure = load.decode_failure(data)
            if failure is None:
                raise
            raise failure from None


def _render(data: bytes, chain: list[ChainItem], options: RenderOptions) -> Rendered:
    info = load.probe(data, options.limits)
    ctx = Context(info.width, info.height, options.client_width, options.client_dpr)
    output = Output()
    steps = [item for item in chain if isinstance(item, Step)]
    for step in steps:
        if step.video_only:
            raise InvalidRequest(f"{step.video_only[0]} applies to videos, and this file is "
                                 "an image")
        output.absorb(step)  # provisional: decides how to load (colour profile kept or not)
    keep_profile = output.metadata or output.colour_profile
    page = next((s.page for s in reversed(steps) if s.page is not None), None)
    animated = info.pages > 1 and info.format in load.ANIMATABLE and page is None
    load.check_decoded(data, info, page, animated, options.limits)
    frames, first_done = load.load(data, info, chain, ctx, options.limits, keep_profile,
                                  page, animated, options.images.fast_shrink_on_load,
                                  options.sharing, _encode_only(chain))
    output = Output()
    layers = overlay.Inputs(options.layer_files or {}, options.limits)
    for index, item in enumerate(chain):
        step = _resolve(item, frames[0], ctx)
        output.absorb(step)
        _note_hints(step, output)
        if step.focus == "custom":
            frames, step = _custom_area(frames, step, ctx, options.custom_coordinates)
        frames = _apply(frames, step, ctx, options.limits, output, skip_scale=index == 0
                        and first_done, layers=layers)
        budget.check()
    return _encode(frames, info, output, options, data)


def layer_chain(layers: overlay.Inputs) -> overlay.Transform:
    """Runs a layer's own chain on its image: the steps as for a base, their output settings
    (f, q…) ignored, nested layers drawn in turn."""
    def transform(image: Any, chain: tuple[ChainItem, ...], ctx: Context) -> Any:
        frames = [image]
        for item in chain:
            step = _resolve(item, frames[0], ctx)
            if step.focus == "custom":
                raise InvalidRequest("fo-custom applies to the base image, not to a layer")
            frames = _apply(frames, step, ctx, layers.limits, Output(), skip_scale=False,
                            layers=layers)
        return frames[0]
    return transform


def _custom_area(frames: list[Any], step: Step, ctx: Context,
                 coordinates: str | None) -> tuple[list[Any], Step]:
    """fo-custom: the frames cut to the stored area (clipped to the image), then the step
    goes on centred on what is left."""
    if coordinates is None:
        raise InvalidRequest("fo-custom: this file has no custom coordinates (set "
                             "customCoordinates when uploading it or in its details)")
    x, y, width, height = (int(v) for v in coordinates.split(","))
    first = frames[0]
    factor = first.width / ctx.input_width if ctx.input_width else 1.0  # when loaded smaller
    left = min(int(x * factor), first.width - 1)
    top = min(int(y * factor), first.height - 1)
    width = max(1, min(round(width * factor), first.width - left))
    height = max(1, min(round(height * factor), first.height - top))
    cut = [f.crop(left, top, width, height) for f in frames]
    return cut, dataclasses.replace(step, focus="center")


def _encode_only(chain: list[ChainItem]) -> bool:
    """Whether the loaded image, once scaled, goes to the encoder untouched (read once)."""
    if len(chain) != 1 or not isinstance(chain[0], Step):
        return False
    step = chain[0]
    return (step.trim is None and step.focus not in ("face", "custom")
            and not _operations(step, dict))


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


# --- per step ---------------------------------------------------------------------------------

def _apply(frames: list[Any], step: Step, ctx: Context, limits: LimitsConfig, output: Output,
           skip_scale: bool, layers: overlay.Inputs | None = None) -> list[Any]:
    first = frames[0]
    if step.trim is not None:
        frames = [pixels.trim(f, step.trim) for f in frames]
        first = frames[0]
    if not skip_scale:
        face = faces.detect(first) if step.focus == "face" else None
        plan = geometry.plan(first.width, first.height, step, ctx, face)
        if plan is not None:
            load.check_output(plan, limits)
            frames = [_geometry(f, plan, step) for f in frames]
            output.dpr = geometry.target(first.width, first.height, step, ctx).dpr or output.dpr
    else:
        plan = geometry.plan(ctx.input_width, ctx.input_height, step, ctx)
        output.dpr = geometry.target(ctx.input_width, ctx.input_height, step, ctx).dpr
        if plan is not None:
            frames = [_geometry(f, plan, step, scaled=True) for f in frames]
    # The size before any operation, read only by those that use iw/cw-style variables:
    # reading it costs several calls into libvips, each a GIL round trip.
    sized = frames[0]
    values = functools.cache(lambda: geometry.variables(ctx, sized.width, sized.height))
    for operation in _operations(step, values, limits.max_output_pixels):
        budget.check()
        frames = [operation(f) for f in frames]
    for layer in step.layers:
        budget.check()
        inputs = layers or overlay.Inputs({}, limits)
        first = frames[0]
        image = overlay.made(layer, first.width, first.height, ctx, inputs,
                             layer_chain(inputs))
        frames = [overlay.put(f, image, layer, ctx) for f in frames]
    return frames


def _operations(step: Step, values: Callable[[], dict[str, float]],
                max_pixels: int = 0) -> list[Any]:
    """The step's pixel operations in pipeline order; those that grow the image refuse to
    grow it past `max_pixels` before doing any pixel work."""
    ops: list[Any] = []
    if step.rotate:
        ops.append(lambda f: pixels.rotate(f, step.rotate or 0, _fill(step), max_pixels))
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
        ops.append(lambda f: pixels.gradient(f, gradient, values()))
    if step.radius:
        radius = step.radius
        ops.append(lambda f: pixels.round_corners(f, radius, values()))
    if step.border:
        border = step.border
        ops.append(lambda f: pixels.add_border(f, border, values(), max_pixels))
    if step.shadow:
        shadow = step.shadow
        ops.append(lambda f: pixels.drop_shadow(f, shadow, max_pixels))
    if step.opacity is not None:
        ops.append(lambda f: pixels.set_opacity(f, step.opacity or 0))
    backdrop = _backdrop(step)
    if backdrop is not None:
        ops.append(lambda f: pixels.underlay(f, backdrop))
    return ops


def _backdrop(step: Step) -> Colour | None:
    """The bg colour laid under the step's result, whatever the output format: a PNG's
    transparent areas take it (ImageKit's "Specifying a background for a PNG image",
    bg-F00000). With o- its alpha is ignored, so the result is opaque, as ImageKit says:
    "that color is blended with the resultant image, leading to a non-transparent (opaque)
    image"."""
    colour = step.background.colour if step.background is not None else None
    if colour is not None and step.opacity is not None:
        return dataclasses.replace(colour, alpha=255)
    return colour


def _fill(step: Step) -> Background | None:
    """What padding and rotation fill with: a translucent bg colour is left transparent there,
    since the backdrop lays it under the whole result and must not lay it twice."""
    background = step.background
    if background is not None and background.colour is not None and not background.colour.opaque:
        return Background(colour=TRANSPARENT)
    return background


def _geometry(image: Any, plan: Plan, step: Step, scaled: bool = False) -> Any:
    source = image
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
        image = pixels.place_on_canvas(image, plan.canvas, _fill(step), source)
    return image


# --- encoding ---------------------------------------------------------------------------------

def _encode(frames: list[Any], info: load.Probe, output: Output, options: RenderOptions,
            data: bytes) -> Rendered:
    first = frames[0]
    width, height = first.width, first.height
    if width * height > options.limits.max_output_pixels:
        raise LimitExceeded(f"The output would be {width}x{height} pixels, more "
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
    largest = max(width, height)
    if fmt == "webp" and largest > WEBP_MAX:
        if not choice.negotiated:
            raise LimitExceeded(f"WebP output is limited to {WEBP_MAX} pixels a side")
        fmt = "png" if first.hasalpha() else "jpg"
    if fmt == "jpg" and largest > JPEG_MAX:
        raise LimitExceeded(f"JPEG output is limited to {JPEG_MAX} pixels a side")
    image = first
    if animated and fmt in load.ANIMATABLE:
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
        webp_effort=options.images.webp_effort,
    ))
    vary = tuple(sorted(output.vary | ({"Accept"} if choice.negotiated else set())))
    return Rendered(encoded, fmt, width, height, choice.negotiated, vary, output.dpr)


