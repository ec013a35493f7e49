"""w, h, ar, dpr, c, cm, fo, x, y, xc, yc, z: the output box and how the image fits it."""

from __future__ import annotations

import re
from collections.abc import Callable

from pixelport.errors import InvalidRequest, LimitExceeded
from pixelport.transform import expr
from pixelport.transform.grammar import Param
from pixelport.transform.params.values import bounded, choice, expression, number
from pixelport.transform.step import CROP_MODES, CROPS, POSITIONS, Step

MAX_DIMENSION = 65_535
_RATIO = re.compile(r"^(\d+(?:\.\d+)?)[-_](\d+(?:\.\d+)?)$")
# COCO object classes ImageKit accepts as fo- values: they need an object detector (AI).
OBJECTS = ("person", "car", "bicycle", "motorcycle", "bus", "truck", "dog", "cat", "bird",
           "horse", "trafficlight", "trafficLight", "bottle", "chair", "cup")


def _length(param: Param) -> expr.Expr | None:
    """The size a w/h asks for; None for one above 65,535 px, which ImageKit ignores
    ("dimensions greater than this in the transformation string will get ignored")."""
    value = expression(param)
    constant = value.constant
    if constant is not None:
        if constant <= 0:
            raise InvalidRequest(f"{param} must be positive")
        if constant >= 1 and constant != int(constant):
            raise InvalidRequest(f"{param}: a size is whole pixels, or a fraction below 1")
        if constant > MAX_DIMENSION:
            return None  # as if not given (an expression is checked once evaluated)
    return value


def width(param: Param, step: Step) -> None:
    """w-300, w-0.5, w-iw_div_2 or w-auto (Sec-CH-Width)."""
    if param.value == "auto":
        step.width_auto, step.width = True, None
    else:
        step.width, step.width_auto = _length(param), False


def height(param: Param, step: Step) -> None:
    """h-200, h-0.5 or h-ih_div_2."""
    step.height = _length(param)


def aspect_ratio(param: Param, step: Step) -> None:
    """ar-4-3, ar-4_3 or an expression giving the ratio (ar-iar)."""
    match = _RATIO.match(param.value)
    if match:
        w, h = float(match.group(1)), float(match.group(2))
        if w <= 0 or h <= 0:
            raise InvalidRequest(f"{param}: both sides of a ratio must be positive")
        step.aspect = expr.parse(repr(w / h), str(param))
    else:
        step.aspect = expression(param)


def device_pixel_ratio(param: Param, step: Step) -> None:
    """dpr-0.1..5 or dpr-auto (Sec-CH-DPR / DPR)."""
    if param.value == "auto":
        step.dpr_auto, step.dpr = True, None
        return
    value = number(param)
    if not 0.1 <= value <= 5:
        raise LimitExceeded(f"{param}: dpr must be between 0.1 and 5")
    step.dpr, step.dpr_auto = value, False


def crop(param: Param, step: Step) -> None:
    """c-maintain_ratio | force | at_max | at_max_enlarge | at_least | ..."""
    step.crop = choice(param, CROPS)


def crop_mode(param: Param, step: Step) -> None:
    """cm-pad_resize | extract | pad_extract (+ _no_enlarge / _no_shrink)."""
    step.crop_mode = choice(param, CROP_MODES)


def focus(param: Param, step: Step) -> None:
    """fo-<position> | auto | face | custom (the area stored with a library upload, its
    customCoordinates); object names need AI and are refused."""
    if param.value in (*POSITIONS, "auto", "face", "custom"):
        step.focus = param.value
    elif param.value in OBJECTS:
        raise InvalidRequest(f"{param}: object-aware focus is an AI transformation, "
                             "not supported yet")
    else:
        choice(param, (*POSITIONS, "auto", "face", "custom"))


def _coordinate(name: str) -> Callable[[Param, Step], None]:
    def handler(param: Param, step: Step) -> None:
        setattr(step, name, expression(param))
    handler.__doc__ = f"{name}-<pixels or expression>: position for cm-extract."
    return handler


def zoom(param: Param, step: Step) -> None:
    """z-<factor>: zoom around a detected face (below 1 zooms out)."""
    step.zoom = bounded(param, 0.01, 100)


HANDLERS = {
    "w": width, "h": height, "ar": aspect_ratio, "dpr": device_pixel_ratio, "c": crop,
    "cm": crop_mode, "fo": focus, "z": zoom,
    "x": _coordinate("x"), "y": _coordinate("y"), "xc": _coordinate("xc"),
    "yc": _coordinate("yc"),
}
