"""Pure size arithmetic: where a step's w/h/ar/dpr/c/cm/fo put the output.

`plan` decides, from sizes alone (plus a detected face box for fo-face), what the pixel stage
does, in this fixed order: precrop → scale → crop → canvas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pixelport.errors import InvalidRequest
from pixelport.transform.expr import Expr
from pixelport.transform.step import Step

MAX_DIMENSION = 65_535
DPR_MAX_OUTPUT = 5_000


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels."""

    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class Plan:
    """The geometry of one step."""

    out_width: int
    out_height: int
    precrop: Box | None = None  # cut this region of the current image first
    scale: tuple[int, int] | None = None  # then resize to exactly this size
    # fo-auto: libvips picks the region by saliency; with `scale` it scales to cover first.
    attention: bool = False
    crop: Box | None = None  # then cut this region of the scaled image
    canvas: Box | None = None  # then place the image at (left, top) on a width x height canvas


@dataclass(frozen=True)
class Context:
    """Sizes and client hints a step's values may refer to."""

    input_width: int
    input_height: int
    client_width: int | None = None
    client_dpr: float | None = None
    base_width: int | None = None  # inside a layer: the base it goes on (bw, bh, bar)
    base_height: int | None = None


@dataclass(frozen=True)
class Target:
    """The requested box after fractions, expressions, ar and dpr."""

    width: int | None
    height: int | None
    dpr: float | None  # the dpr actually applied (for Content-DPR)


def variables(ctx: Context, width: int, height: int) -> dict[str, float]:
    """Values of iw/ih/iar (input), cw/ch/car (current) and, in a layer, bw/bh/bar (base)."""
    values = {"iw": ctx.input_width, "ih": ctx.input_height,
              "iar": ctx.input_width / ctx.input_height, "cw": width, "ch": height,
              "car": width / height}
    if ctx.base_width and ctx.base_height:
        values.update(bw=ctx.base_width, bh=ctx.base_height,
                      bar=ctx.base_width / ctx.base_height)
    return values


def target(width: int, height: int, step: Step, ctx: Context) -> Target:
    """Resolve w/h/ar/dpr for an image currently `width` x `height`."""
    values = variables(ctx, width, height)
    out_w = _length(step.width, width, values)
    out_h = _length(step.height, height, values)
    hinted = ctx.client_width if step.width_auto else None  # Sec-CH-Width, device pixels
    if hinted:
        out_w = math.ceil(hinted / 100) * 100
    if step.aspect is not None and (out_w is None) != (out_h is None):
        ratio = step.aspect.evaluate(values)
        if ratio <= 0:
            raise InvalidRequest(f"The aspect ratio {step.aspect} is not positive")
        if out_w is not None:
            out_h = max(1, round(out_w / ratio))
        elif out_h is not None:
            out_w = max(1, round(out_h * ratio))
    dpr = step.dpr if step.dpr is not None else (ctx.client_dpr if step.dpr_auto else None)
    if dpr is not None and hinted and out_w is not None:
        return _hinted_dpr(out_w, out_h, step, dpr, hinted)
    applied = None
    if dpr is not None and (out_w is not None or out_h is not None):
        scaled = [round(v * dpr) if v is not None else None for v in (out_w, out_h)]
        # ImageKit ignores a dpr that would make the output smaller than 1 px or over 5000 px.
        if all(v is None or 1 <= v <= DPR_MAX_OUTPUT for v in scaled):
            out_w, out_h = scaled
            applied = dpr
    return Target(out_w, out_h, applied)


def _hinted_dpr(out_w: int, out_h: int | None, step: Step, dpr: float,
               client_width: int) -> Target:
    """w-auto with a dpr: Sec-CH-Width is in device pixels already, so the width is not
    multiplied again (ImageKit: `w-auto,dpr-auto` with Sec-CH-Width 600 and Sec-CH-DPR 2 is
    600 px). Only an h given in the step is; Content-DPR then tells the browser how the
    width was rounded up: the width delivered / (Sec-CH-Width / DPR), to two decimals."""
    if out_h is not None and step.height is not None:
        scaled = round(out_h * dpr)
        if 1 <= scaled <= DPR_MAX_OUTPUT:  # as below: a dpr past the limits is ignored
            out_h = scaled
    return Target(out_w, out_h, round(out_w * dpr / client_width, 2))


def _length(value: Expr | None, reference: int, values: dict[str, float]) -> int | None:
    if value is None:
        return None
    constant = value.constant
    if constant is not None and 0 < constant < 1:
        return max(1, round(constant * reference))
    result = round(value.evaluate(values))
    if result > MAX_DIMENSION:
        return None  # ImageKit ignores dimensions above 65,535 px
    return max(1, result)


def plan(width: int, height: int, step: Step, ctx: Context, face: Box | None = None) -> Plan | None:
    """The geometry for `step` on an image of the given (upright) size; None: unchanged."""
    box = target(width, height, step, ctx)
    mode = step.crop_mode
    if mode in ("extract", "pad_extract", "pad_extract_no_shrink"):
        return _extract(width, height, box, step, ctx, face)
    if face is not None and box.width is None and box.height is None:
        region = _zoomed(face, step.zoom or 1.0, face.width / face.height, width, height)
        return Plan(region.width, region.height, precrop=region)
    if box.width is None and box.height is None:
        return None
    if mode in ("pad_resize", "pad_resize_no_enlarge") and box.width and box.height:
        return _pad_resize(width, height, box.width, box.height, step)
    if box.width is None or box.height is None:
        return _one_side(width, height, box.width, box.height, step.crop or "maintain_ratio")
    return _both_sides(width, height, box.width, box.height, step, face)


def _both_sides(width: int, height: int, out_w: int, out_h: int, step: Step,
                face: Box | None) -> Plan:
    crop = step.crop or "maintain_ratio"
    if crop == "force":
        return Plan(out_w, out_h, scale=(out_w, out_h))
    if crop == "at_least":
        scale = max(out_w / width, out_h / height)
        return _scaled(width, height, scale)
    if crop in ("at_max", "at_max_enlarge"):
        scale = min(out_w / width, out_h / height)
        return _scaled(width, height, min(scale, 1.0) if crop == "at_max" else scale)
    if crop == "maintain_ratio_no_enlarge" and (out_w > width or out_h > height):
        # Shrink the box, keeping its aspect ratio, until it fits inside the input.
        shrink = min(width / out_w, height / out_h)
        out_w, out_h = max(1, round(out_w * shrink)), max(1, round(out_h * shrink))
    if step.focus == "auto":
        return Plan(out_w, out_h, scale=(out_w, out_h), attention=True)
    if face is not None:
        region = (_zoomed(face, step.zoom, out_w / out_h, width, height) if step.zoom
                  else _around(face, out_w / out_h, width, height))
        return Plan(out_w, out_h, precrop=region, scale=(out_w, out_h))
    scale = max(out_w / width, out_h / height)
    cover_w = max(out_w, round(width * scale))
    cover_h = max(out_h, round(height * scale))
    left, top = gravity(step.focus or "center", cover_w - out_w, cover_h - out_h)
    crop_box = Box(left, top, out_w, out_h) if (cover_w, cover_h) != (out_w, out_h) else None
    return Plan(out_w, out_h, scale=(cover_w, cover_h), crop=crop_box)


def _scaled(width: int, height: int, scale: float) -> Plan:
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    return Plan(out_w, out_h, scale=(out_w, out_h))


def _one_side(width: int, height: int, out_w: int | None, out_h: int | None, crop: str) -> Plan:
    scale = out_w / width if out_w is not None else (out_h or 1) / height
    if crop in ("at_max", "maintain_ratio_no_enlarge"):
        scale = min(scale, 1.0)
    new_w = out_w if out_w is not None and scale == out_w / width else round(width * scale)
    new_h = out_h if out_h is not None and scale == out_h / height else round(height * scale)
    new_w, new_h = max(1, new_w), max(1, new_h)
    return Plan(new_w, new_h, scale=(new_w, new_h))


def _pad_resize(width: int, height: int, out_w: int, out_h: int, step: Step) -> Plan:
    scale = min(out_w / width, out_h / height)
    if step.crop_mode == "pad_resize_no_enlarge":
        scale = min(scale, 1.0)
    inner_w = min(out_w, max(1, round(width * scale)))
    inner_h = min(out_h, max(1, round(height * scale)))
    left, top = gravity(step.focus or "center", out_w - inner_w, out_h - inner_h)
    return Plan(out_w, out_h, scale=(inner_w, inner_h), canvas=Box(left, top, out_w, out_h))


def _extract(width: int, height: int, box: Target, step: Step, ctx: Context,
             face: Box | None) -> Plan:
    padded = step.crop_mode != "extract"
    out_w = box.width or width
    out_h = box.height or height
    if not padded:
        out_w, out_h = min(out_w, width), min(out_h, height)
    values = variables(ctx, width, height)
    if step.xc is not None or step.yc is not None:
        cx = step.xc.evaluate(values) if step.xc is not None else width / 2
        cy = step.yc.evaluate(values) if step.yc is not None else height / 2
        left, top = round(cx - out_w / 2), round(cy - out_h / 2)
        if not padded and (left < 0 or top < 0 or left + out_w > width or top + out_h > height):
            raise InvalidRequest("The extract box around xc/yc falls outside the image")
    elif step.x is not None or step.y is not None:
        left = round(step.x.evaluate(values)) if step.x is not None else 0
        top = round(step.y.evaluate(values)) if step.y is not None else 0
        if left < 0:
            left += width  # a negative offset counts from the right/bottom edge
        if top < 0:
            top += height
    elif step.focus == "auto" and not padded:
        return Plan(out_w, out_h, attention=True)  # libvips smartcrop, no scaling
    elif face is not None:
        centre_x, centre_y = face.left + face.width / 2, face.top + face.height / 2
        left, top = round(centre_x - out_w / 2), round(centre_y - out_h / 2)
    else:
        left, top = gravity(step.focus or "center", width - out_w, height - out_h)
    if padded:
        return Plan(out_w, out_h, canvas=Box(-left, -top, out_w, out_h))
    left = min(max(0, left), width - out_w)
    top = min(max(0, top), height - out_h)
    return Plan(out_w, out_h, crop=Box(left, top, out_w, out_h))


def gravity(position: str, spare_w: int, spare_h: int) -> tuple[int, int]:
    """Offsets that place a box by a named position, given the spare room on each axis."""
    x = spare_w // 2
    y = spare_h // 2
    if "left" in position:
        x = 0
    elif "right" in position:
        x = spare_w
    if "top" in position:
        y = 0
    elif "bottom" in position:
        y = spare_h
    return x, y


def _around(face: Box, ratio: float, width: int, height: int) -> Box:
    """The largest box of `ratio` inside the image, as centred on the face as it can be."""
    box_w = min(width, round(height * ratio))
    box_h = min(height, round(box_w / ratio))
    return _centred(face, max(1, box_w), max(1, box_h), width, height)


def _zoomed(face: Box, zoom: float, ratio: float, width: int, height: int) -> Box:
    """The face box grown to `ratio`, scaled by 1/zoom, kept inside the image."""
    box_w, box_h = float(face.width), float(face.height)
    if box_w / box_h < ratio:
        box_w = box_h * ratio
    else:
        box_h = box_w / ratio
    box_w, box_h = box_w / zoom, box_h / zoom
    shrink = min(1.0, width / box_w, height / box_h)
    return _centred(face, max(1, round(box_w * shrink)), max(1, round(box_h * shrink)),
                    width, height)


def _centred(face: Box, box_w: int, box_h: int, width: int, height: int) -> Box:
    left = round(face.left + face.width / 2 - box_w / 2)
    top = round(face.top + face.height / 2 - box_h / 2)
    left = min(max(0, left), width - box_w)
    top = min(max(0, top), height - box_h)
    return Box(left, top, box_w, box_h)
