"""q, f, pr, lo, md, cp, orig: how the result is encoded."""

from __future__ import annotations

from pixelport.transform.grammar import Param
from pixelport.transform.params.values import boolean, choice, integer
from pixelport.transform.step import Step

FORMATS = ("auto", "jpg", "jpeg", "png", "webp", "avif", "gif", "svg", "orig", "mp4", "webm")


def quality(param: Param, step: Step) -> None:
    """q-1..100."""
    step.quality = integer(param, 1, 100)


def output_format(param: Param, step: Step) -> None:
    """f-auto|jpg|jpeg|png|webp|avif|gif|svg|orig, and mp4|webm for videos."""
    value = choice(param, FORMATS)
    step.format = "jpg" if value == "jpeg" else value


def progressive(param: Param, step: Step) -> None:
    """pr-true: progressive JPEG, interlaced PNG/GIF."""
    step.progressive = boolean(param)


def lossless(param: Param, step: Step) -> None:
    """lo-true: lossless WebP/AVIF."""
    step.lossless = boolean(param)


def metadata(param: Param, step: Step) -> None:
    """md-true: keep all metadata (stripped by default)."""
    step.metadata = boolean(param)


def colour_profile(param: Param, step: Step) -> None:
    """cp-true: keep the ICC profile (and do not convert to sRGB)."""
    step.colour_profile = boolean(param)


def original(param: Param, step: Step) -> None:
    """orig-true: the original, untouched."""
    step.original = boolean(param)


HANDLERS = {"q": quality, "f": output_format, "pr": progressive, "lo": lossless,
            "md": metadata, "cp": colour_profile, "orig": original}
