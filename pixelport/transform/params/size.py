"""w, h, c: the output box and how the image is fitted into it."""

from __future__ import annotations

from pixelport.errors import InvalidRequest
from pixelport.transform.grammar import Param
from pixelport.transform.params.values import choice, number
from pixelport.transform.step import CROPS, Step

MAX_DIMENSION = 65_535


def _length(param: Param) -> float:
    value = number(param)
    if value <= 0:
        raise InvalidRequest(f"{param} must be positive")
    if value >= 1 and value != int(value):
        raise InvalidRequest(f"{param}: a size is whole pixels, or a fraction below 1")
    if value > MAX_DIMENSION:
        raise InvalidRequest(f"{param} is larger than {MAX_DIMENSION} pixels")
    return value


def width(param: Param, step: Step) -> None:
    """w-300 or w-0.5."""
    step.width = _length(param)


def height(param: Param, step: Step) -> None:
    """h-200 or h-0.5."""
    step.height = _length(param)


def crop(param: Param, step: Step) -> None:
    """c-maintain_ratio | force | at_max | at_max_enlarge | at_least | ..."""
    step.crop = choice(param, CROPS)


HANDLERS = {"w": width, "h": height, "c": crop}
