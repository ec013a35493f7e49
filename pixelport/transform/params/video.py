"""vc, ac, so, eo, du, sr: the parameters that only videos take (ImageKit's video API).

`f-mp4`/`f-webm` are `output.py`'s; which combinations of f, vc and ac are valid is checked
where a video's output is planned (`pixelport.video.plan`), once the whole chain is known.
"""

from __future__ import annotations

from pixelport.errors import InvalidRequest
from pixelport.transform.expr import Expr
from pixelport.transform.grammar import Param
from pixelport.transform.params.values import choice, expression
from pixelport.transform.step import Step

VIDEO_CODECS = ("h264", "vp9", "av1", "none")
AUDIO_CODECS = ("aac", "opus", "none")
# ImageKit's ladder: the height of each rendition `sr-` may name.
RESOLUTIONS = (240, 360, 480, 720, 1080, 1440, 2160)


def video_codec(param: Param, step: Step) -> None:
    """vc-h264 | vp9 | av1 | none (none: the audio alone)."""
    step.video_codec = choice(param, VIDEO_CODECS)


def audio_codec(param: Param, step: Step) -> None:
    """ac-aac | opus | none (none: the audio removed)."""
    step.audio_codec = choice(param, AUDIO_CODECS)


def _seconds(param: Param) -> Expr:
    """Seconds with at most two decimals, or an expression (`idu_mul_0.5`)."""
    value = expression(param)
    constant = value.constant
    if constant is not None:
        if constant < 0:
            raise InvalidRequest(f"{param}: seconds cannot be negative")
        _whole, _, decimals = param.value.lstrip("N").partition(".")
        if len(decimals) > 2:
            raise InvalidRequest(f"{param}: seconds take at most two decimals")
    return value


def start_offset(param: Param, step: Step) -> None:
    """so-<seconds>: where the video starts (and which frame a thumbnail shows)."""
    step.start_offset = _seconds(param)


def end_offset(param: Param, step: Step) -> None:
    """eo-<seconds>: where the video ends."""
    step.end_offset = _seconds(param)


def duration(param: Param, step: Step) -> None:
    """du-<seconds>: how long the video lasts from its start."""
    value = _seconds(param)
    if value.constant == 0:
        raise InvalidRequest(f"{param}: a duration must be positive")
    step.duration = value


def streaming_resolutions(param: Param, step: Step) -> None:
    """sr-240_360_480_720_1080: the renditions of an adaptive bitrate stream."""
    heights: list[int] = []
    for part in param.value.split("_"):
        if not part.isdigit() or int(part) not in RESOLUTIONS:
            raise InvalidRequest(f"Invalid resolution {part!r} in {param}: expected "
                                 f"{', '.join(str(r) for r in RESOLUTIONS)}")
        heights.append(int(part))
    step.streaming = tuple(sorted(set(heights)))


HANDLERS = {"vc": video_codec, "ac": audio_codec, "so": start_offset, "eo": end_offset,
            "du": duration, "sr": streaming_resolutions}
