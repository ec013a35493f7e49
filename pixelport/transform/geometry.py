"""Pure size arithmetic: where a step's w/h/c put the output, before any pixel is touched."""

from __future__ import annotations

from dataclasses import dataclass

from pixelport.transform.step import Step

UNBOUNDED = 10_000_000  # libvips' VIPS_MAX_COORD: "no limit" for the free dimension


@dataclass(frozen=True)
class Resize:
    """Arguments for libvips thumbnail, plus the expected output size."""

    width: int
    height: int
    crop: bool  # cover the box, then cut it to size at the centre
    size: str  # both | down | force
    out_width: int
    out_height: int


def _absolute(value: float | None, reference: int) -> int | None:
    if value is None:
        return None
    return max(1, round(value * reference)) if value < 1 else int(value)


def plan(in_width: int, in_height: int, step: Step) -> Resize | None:
    """The resize for `step` on an image of the given (upright) size; None when it keeps size."""
    width = _absolute(step.width, in_width)
    height = _absolute(step.height, in_height)
    if width is None and height is None:
        return None
    crop = step.crop or "maintain_ratio"
    if width is None or height is None:
        return _one_side(in_width, in_height, width, height, crop)
    if crop == "force":
        return Resize(width, height, False, "force", width, height)
    if crop in ("maintain_ratio", "maintain_ratio_no_enlarge"):
        if crop == "maintain_ratio_no_enlarge" and (width > in_width or height > in_height):
            # Shrink the box, keeping its aspect ratio, until it fits inside the input.
            scale = min(in_width / width, in_height / height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        return Resize(width, height, True, "both", width, height)
    if crop == "at_least":
        scale = max(width / in_width, height / in_height)
        out_w, out_h = max(1, round(in_width * scale)), max(1, round(in_height * scale))
        return Resize(out_w, out_h, False, "force", out_w, out_h)
    # at_max (never enlarges) and at_max_enlarge: fit inside the box
    scale = min(width / in_width, height / in_height)
    if crop == "at_max":
        scale = min(scale, 1.0)
    out_w, out_h = max(1, round(in_width * scale)), max(1, round(in_height * scale))
    return Resize(out_w, out_h, False, "force", out_w, out_h)


def _one_side(in_width: int, in_height: int, width: int | None, height: int | None,
              crop: str) -> Resize:
    if width is not None:
        scale = width / in_width
    else:
        assert height is not None
        scale = height / in_height
    if crop in ("at_max", "maintain_ratio_no_enlarge"):
        scale = min(scale, 1.0)
    out_w = width if width is not None and scale == width / in_width else round(in_width * scale)
    out_h = (height if height is not None and scale == height / in_height
             else round(in_height * scale))
    out_w, out_h = max(1, out_w), max(1, out_h)
    return Resize(out_w, out_h, False, "force", out_w, out_h)
