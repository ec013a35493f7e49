"""q, f, orig: how the result is encoded."""

from __future__ import annotations

from pixelport.transform.grammar import Param
from pixelport.transform.params.values import boolean, choice, integer
from pixelport.transform.step import Step

FORMATS = ("auto", "jpg", "jpeg", "png", "webp", "avif", "gif", "svg", "orig")


def quality(param: Param, step: Step) -> None:
    """q-1..100."""
    step.quality = integer(param, 1, 100)


def output_format(param: Param, step: Step) -> None:
    """f-auto|jpg|jpeg|png|webp|avif|gif|svg|orig."""
    value = choice(param, FORMATS)
    step.format = "jpg" if value == "jpeg" else value


def original(param: Param, step: Step) -> None:
    """orig-true: the original, untouched."""
    step.original = boolean(param)


HANDLERS = {"q": quality, "f": output_format, "orig": original}
