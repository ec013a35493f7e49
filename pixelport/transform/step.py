"""A typed, validated transformation step, built from raw parameters by the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pixelport.transform.colours import TRANSPARENT, WHITE, Colour
from pixelport.transform.expr import Expr
from pixelport.transform.grammar import Param

if TYPE_CHECKING:
    from pixelport.transform.layer import Layer

CROPS = ("maintain_ratio", "force", "at_max", "at_max_enlarge", "at_least",
         "maintain_ratio_no_enlarge")
CROP_MODES = ("pad_resize", "pad_resize_no_enlarge", "extract", "pad_extract",
              "pad_extract_no_shrink")
VIDEO_KEYS = ("vc", "ac", "so", "eo", "du", "sr")
VIDEO_FORMATS = ("mp4", "webm")
POSITIONS = ("center", "top", "left", "bottom", "right", "top_left", "top_right", "bottom_left",
             "bottom_right")


@dataclass(frozen=True)
class Radius:
    """Corner radii in pixels (tl, tr, br, bl); `maximum` makes a circle or ellipse."""

    corners: tuple[Expr, Expr, Expr, Expr] | None
    maximum: bool = False


@dataclass(frozen=True)
class Border:
    """`b-<width>_<colour>`."""

    width: Expr
    colour: Colour


@dataclass(frozen=True)
class Background:
    """`bg-`: a colour, a blurred copy of the image, or its dominant colour."""

    colour: Colour | None = None
    blurred: bool = False
    blur_amount: int | None = None  # None: automatic
    brightness: int = 0
    dominant: bool = False


@dataclass(frozen=True)
class Shadow:
    """`e-shadow[-bl-10_st-30_x-2_y-2]`; x and y are percentages of the image size."""

    blur: float = 10
    saturation: float = 30
    x: float = 2
    y: float = 2


@dataclass(frozen=True)
class Gradient:
    """`e-gradient[-ld-180_from-FFFFFF_to-00000000_sp-1]`."""

    angle: float = 180
    start: Colour = WHITE
    end: Colour = TRANSPARENT
    stop: Expr | None = None  # a fraction (<= 1) or pixels


@dataclass(frozen=True)
class ColourReplace:
    """`cr-<to>[_<tolerance>[_<from>]]`; `source` None means the dominant colour."""

    target: Colour
    tolerance: int = 35
    source: Colour | None = None


@dataclass(frozen=True)
class Unsharp:
    """`e-usm-radius-sigma-amount-threshold`."""

    radius: float
    sigma: float
    amount: float
    threshold: float


@dataclass
class Step:
    """What one chain step asks for. None means 'not given'."""

    # geometry
    width: Expr | None = None  # pixels, or a fraction of the input when a constant below 1
    height: Expr | None = None
    width_auto: bool = False  # w-auto: from the Sec-CH-Width client hint
    aspect: Expr | None = None
    dpr: float | None = None
    dpr_auto: bool = False
    crop: str | None = None  # one of CROPS
    crop_mode: str | None = None  # one of CROP_MODES
    focus: str | None = None  # a position, "auto" or "face"
    x: Expr | None = None
    y: Expr | None = None
    xc: Expr | None = None
    yc: Expr | None = None
    zoom: float | None = None
    # pixels
    trim: int | None = None  # threshold
    rotate: float | None = None  # degrees clockwise
    flip: str | None = None  # h, v, h_v
    blur: float | None = None
    opacity: float | None = None
    grayscale: bool = False
    contrast: bool = False
    sharpen: float | None = None
    unsharp: Unsharp | None = None
    shadow: Shadow | None = None
    gradient: Gradient | None = None
    colour_replace: ColourReplace | None = None
    radius: Radius | None = None
    background: Background | None = None
    border: Border | None = None
    # output (global: the last step that sets one wins)
    quality: int | None = None
    format: str | None = None  # auto | jpg | png | webp | avif | gif | svg | orig | mp4 | webm
    progressive: bool | None = None
    lossless: bool | None = None
    metadata: bool | None = None
    colour_profile: bool | None = None
    original: bool = False  # orig-true: serve the original untouched
    # input
    default_image: str | None = None
    page: int | None = None
    # video only (params/video.py)
    video_codec: str | None = None  # h264 | vp9 | av1 | none
    audio_codec: str | None = None  # aac | opus | none
    start_offset: Expr | None = None  # seconds
    end_offset: Expr | None = None
    duration: Expr | None = None
    streaming: tuple[int, ...] | None = None  # sr-: rendition heights
    # layers (layer.py), placed in order once the step's other work is done
    layers: list[Layer] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)

    @property
    def video_only(self) -> list[Param]:
        """The parameters that apply to videos alone (an image refuses them)."""
        return [p for p in self.params
                if p.key in VIDEO_KEYS or (p.key == "f" and p.value in VIDEO_FORMATS)]

    @property
    def resizes(self) -> bool:
        """Whether the step may change the geometry."""
        return (self.width is not None or self.height is not None or self.width_auto
                or self.crop_mode is not None or (self.focus == "face" and self.zoom is not None))


@dataclass(frozen=True)
class Condition:
    """`if-<prop>_<op>_<value>[_and_|_or_ ...]`: disjunction of conjunctions."""

    clauses: tuple[tuple[tuple[str, str, float], ...], ...]
    text: str


@dataclass
class Conditional:
    """An `if-…,<params>,[if-else,<params>,]if-end` step."""

    condition: Condition
    then: Step
    otherwise: Step | None
    params: list[Param] = field(default_factory=list)


ChainItem = Step | Conditional
