"""Drawing a layer (layer.py) on its base: make the layer's image, place it, blend it.

An image layer is the first frame of its file, read under the same limits as any original
and trimmed unless `t-false`; a solid block is `bg` (default black) at `w`x`h` (default the
base's size); a text layer is text.py's. Each then goes through its own chain, nested layers
included, with `bw`/`bh`/`bar` meaning the base. Placement: `lx`/`ly` offsets from the `lap`
anchor of the base (`N`, a negative offset, counts from the opposite edge), or `lxc`/`lyc` for
the layer's centre, else the `lfo` position; the layer is clamped into the base when it fits.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from pixelport.config import LimitsConfig
from pixelport.errors import InvalidRequest, LimitExceeded, UnsupportedFormat
from pixelport.lru import LRU
from pixelport.transform import geometry, load, pixels, text
from pixelport.transform.expr import Expr
from pixelport.transform.geometry import Context
from pixelport.transform.layer import Layer, files
from pixelport.transform.step import ChainItem, Step

# Runs a layer's own chain on its image (engine.py's, passed in: no import cycle).
Transform = Callable[[Any, tuple[ChainItem, ...], Context], Any]


@dataclass(frozen=True)
class Inputs:
    """What layers read: the bytes of their image and font files, by path."""

    files: Mapping[str, bytes]
    limits: LimitsConfig


@dataclass(frozen=True)
class Made:
    """A layer's image in memory, with its colour and alpha bands apart (for `blend`)."""

    image: Any  # sRGB, 3 or 4 bands
    colour: Any  # its 3 colour bands
    alpha: Any | None  # its alpha band; None: opaque

    @classmethod
    def of(cls, image: Any) -> Made:
        """Split (and materialise) a made layer."""
        image = image.copy_memory()
        if not image.hasalpha():
            return cls(image, image, None)
        return cls(image, image.extract_band(0, n=3).copy_memory(),
                   image.extract_band(3).copy_memory())


def put(base: Any, layer_image: Made, layer: Layer, ctx: Context) -> Any:
    """`base` with the layer's image (`made`'s) drawn on it: one frame; the caller makes the
    image once and loops over an animation's frames."""
    image = layer_image.image
    if image.width > text.MAX_LAYER_WIDTH:
        raise LimitExceeded(f"The layer {layer.spec} is {image.width} pixels wide, more than "
                            f"{text.MAX_LAYER_WIDTH}")
    left, top = place(layer, base.width, base.height, image.width, image.height, ctx)
    return blend(base, layer_image, left, top, layer)


# Made layers, kept: a watermark or caption is the same on every image of a size, and making
# it again (Pango's layout, a decode and a trim) cost 2-7 ms where the 300-px resize it goes on
# costs 3.4 ms. Small ones only (at most 64 of 512 KB: 32 MB a process); the key holds the
# layer's spelling, every size its expressions may read, and a digest of every file it reads.
MADE_ITEMS = 64
MADE_MAX_BYTES = 512 * 1024
_made: LRU[tuple[object, ...], Made] = LRU(MADE_ITEMS)
_made_lock = threading.Lock()


def made(layer: Layer, base_w: int, base_h: int, ctx: Context, inputs: Inputs,
         transform: Transform) -> Made:
    """`make`'s image in memory, from the kept ones when the same layer was made before."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(files(layer)):
        digest.update(path.encode() + b"\0" + hashlib.blake2b(inputs.files.get(path, b""))
                      .digest())
    key = (layer.spec, base_w, base_h, ctx.input_width, ctx.input_height, ctx.base_width,
           ctx.base_height, digest.digest())
    with _made_lock:
        found = _made.get(key)
    if found is not None:
        return found
    image = Made.of(make(layer, base_w, base_h, ctx, inputs, transform))
    if image.image.width * image.image.height * image.image.bands <= MADE_MAX_BYTES:
        with _made_lock:
            _made.put(key, image)
    return image


def make(layer: Layer, base_w: int, base_h: int, ctx: Context, inputs: Inputs,
         transform: Transform) -> Any:
    """The layer's own image, its chain applied, as sRGB with or without alpha."""
    values = _base_values(ctx, base_w, base_h)
    if layer.kind in ("video", "subtitles"):
        raise InvalidRequest(f"l-{layer.kind} layers go on videos; this base is an image")
    if layer.kind == "image":
        image = _image(layer, inputs)
    elif layer.kind == "solid":
        image = _solid(layer, base_w, base_h, values, inputs.limits)
    else:
        assert layer.text is not None
        image = text.render(layer.source, layer.text, values, inputs.files)
    inner = Context(image.width, image.height, base_width=base_w, base_height=base_h)
    return transform(image, layer.steps, inner) if layer.steps else image


def _base_values(ctx: Context, base_w: int, base_h: int) -> dict[str, float]:
    values = geometry.variables(ctx, base_w, base_h)
    values.update(bw=base_w, bh=base_h, bar=base_w / base_h)
    return values


def _image(layer: Layer, inputs: Inputs) -> Any:
    data = inputs.files.get(layer.source)
    if data is None:
        raise InvalidRequest(f"The layer image {layer.source!r} was not fetched")
    try:
        info = load.probe(data, inputs.limits)  # a layer can be a pixel bomb too: same limits
    except UnsupportedFormat as error:
        raise UnsupportedFormat(f"The layer {layer.source!r}: {error.message}") from None
    load.check_decoded(data, info, None, False, inputs.limits)
    try:
        image = pyvips.Image.new_from_buffer(data, "").autorot()  # a GIF: its first frame
        image = load.to_srgb(image, False)
        if layer.trim:
            image = pixels.trim(image, 10)
        return image.copy_memory()
    except pyvips.Error:
        raise UnsupportedFormat(f"The layer image {layer.source!r} cannot be decoded") from None


def _solid(layer: Layer, base_w: int, base_h: int, values: dict[str, float],
           limits: LimitsConfig) -> Any:
    width = _length(layer.width, values, base_w)
    height = _length(layer.height, values, base_h)
    pixels.check_growth(width, height, limits.max_output_pixels, f"The layer {layer.spec}")
    colour = layer.colour
    assert colour is not None
    alpha = colour.alpha * (layer.alpha or 10) / 10
    block = pyvips.Image.black(width, height).new_from_image([*colour.rgb, alpha])
    return block.cast("uchar").copy(interpretation="srgb")


def _length(value: Expr | None, values: dict[str, float], default: int) -> int:
    if value is None:
        return default
    number = value.evaluate(values)
    if 0 < number < 1:  # a fraction of the base, as w-0.5 is of the input
        number *= default
    length = round(number)
    if length < 1:
        raise InvalidRequest(f"The layer size {value} is below one pixel")
    return length


def place(layer: Layer, base_w: int, base_h: int, width: int, height: int,
          ctx: Context) -> tuple[int, int]:
    """The layer's top-left corner on the base."""
    if not layer.placed:
        return geometry.gravity(layer.focus, base_w - width, base_h - height)
    values = _base_values(ctx, base_w, base_h)
    values.update(cw=width, ch=height, car=width / height)
    left = _axis(layer.x, layer.xc, layer.anchor, ("left", "right"), base_w, width, values)
    top = _axis(layer.y, layer.yc, layer.anchor, ("top", "bottom"), base_h, height, values)
    return left, top


def _axis(offset: Expr | None, centre: Expr | None, anchor: str, sides: tuple[str, str],
          base: int, size: int, values: dict[str, float]) -> int:
    """One coordinate: from lxc (the layer's centre), or lx from the anchor's edge."""
    if centre is not None:
        position = round(centre.evaluate(values) - size / 2)
    else:
        amount = offset.evaluate(values) if offset is not None else 0.0
        near, far = sides
        if far in anchor:
            start, direction = base - size, -1
        elif near in anchor:
            start, direction = 0, 1
        else:
            start, direction = (base - size) // 2, 1
        if math.copysign(1.0, amount) < 0:  # N (N0 too): from the opposite edge
            start, direction, amount = (base - size - start), -direction, -amount
        position = round(start + direction * amount)
    if size <= base:  # clamped into the base when it fits
        position = min(max(position, 0), base - size)
    return position


def blend(base: Any, made_image: Made, left: int, top: int, layer: Layer) -> Any:
    """Composite by `lm`: over (default), multiply, cutout, cutter, or displace."""
    if layer.mode is None and not base.hasalpha():
        return _over_opaque(base, made_image, left, top)
    layer_image = pixels.with_alpha(made_image.image)
    work = pixels.with_alpha(base)
    if layer.mode == "displace":
        return _displace(base, layer_image, left, top, layer)
    if layer.mode == "cutter":
        full = layer_image.embed(left, top, base.width, base.height,
                                 extend="background", background=[0, 0, 0, 0])
        return work.composite2(full, "dest-in")
    if layer.mode == "cutout":
        return work.composite2(layer_image, "dest-out", x=left, y=top)
    mode = "multiply" if layer.mode == "multiply" else "over"
    result = work.composite2(layer_image, mode, x=left, y=top)
    if not base.hasalpha():  # an opaque base stays opaque: the layer only covered it
        result = result.extract_band(0, n=result.bands - 1)
    return result.cast("uchar")


def _over_opaque(base: Any, made_image: Made, left: int, top: int) -> Any:
    """A layer over an opaque base: only the patch under it is blended (its alpha weighing
    the layer's colour against the base's), then put back. A caption on a photo then costs
    its own area in three libvips calls; a whole-base composite took 1.1 ms of a 3.4-ms
    300-px thumbnail."""
    image = made_image.image
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(base.width, left + image.width), min(base.height, top + image.height)
    if x1 <= x0 or y1 <= y0:
        return base  # wholly outside
    colour, alpha = made_image.colour, made_image.alpha
    if (x0, y0, x1, y1) != (left, top, left + image.width, top + image.height):
        box = (x0 - left, y0 - top, x1 - x0, y1 - y0)
        colour = colour.crop(*box)
        alpha = alpha.crop(*box) if alpha is not None else None
    if alpha is None:
        return base.insert(colour, x0, y0)
    patch = base.crop(x0, y0, x1 - x0, y1 - y0)
    return base.insert(alpha.ifthenelse(colour, patch, blend=True), x0, y0)


def _displace(base: Any, layer_image: Any, left: int, top: int, layer: Layer) -> Any:
    """lm-displace: the layer's red band moves the base's pixels across, its green band down,
    by up to the layer's x-/y- pixels (128 moves nothing)."""
    plain = [s for s in layer.steps if isinstance(s, Step)]
    step = next((s for s in plain if s.x is not None or s.y is not None), None)
    if step is None:
        raise InvalidRequest(f"lm-displace needs x- or y- in the layer {layer.spec} to set how "
                             "far it moves the base's pixels")
    amount_x, amount_y = _constant(step.x), _constant(step.y)
    region = layer_image.embed(left, top, base.width, base.height, extend="background",
                               background=[128, 128, 128, 0])
    shift = (region.extract_band(0, n=2).cast("float") - 128) / 128
    index = pyvips.Image.xyz(base.width, base.height) + shift * [amount_x, amount_y]
    return base.mapim(index, extend="copy").cast(base.format)


def _constant(value: Expr | None) -> float:
    if value is None:
        return 0.0
    constant = value.constant
    if constant is None:
        raise InvalidRequest(f"lm-displace takes a number of pixels in x-/y-, not {value}")
    return constant
