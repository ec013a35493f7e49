"""Layers: `l-image|l-text|l-video|l-subtitles,…,l-end`, parsed into a typed `Layer`.

The grammar (grammar.py) hands a layer over as one parameter, Param("l", "<type>,<body>").
The body's first step holds the layer's own keys (input, placement, blending, timing; for text
its style; for a solid block its size and colour); what is left of it, and the steps after it
(`:`-chained), are the layer's own transformation chain, nested layers included. Rendering and
placing a layer is overlay.py's job.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pixelport.errors import InvalidRequest
from pixelport.security.paths import check_file_path
from pixelport.transform import colours, expr
from pixelport.transform.colours import Colour
from pixelport.transform.expr import Expr
from pixelport.transform.grammar import Param, RawStep, split_chain
from pixelport.transform.step import ChainItem, Step

KINDS = ("image", "text", "video", "subtitles")
CANVAS = "ik_canvas"  # l-image,i-ik_canvas,bg-<colour>: a solid block
MAX_TEXT = 2000  # characters of plain text (i-)
MAX_ENCODED = 2500  # characters of base64 (ie-)
POSITIONS = ("center", "top", "left", "bottom", "right", "top_left", "top_right", "bottom_left",
             "bottom_right")
MODES = ("multiply", "displace", "cutout", "cutter")
ALIGNMENTS = ("left", "right", "center")
TYPOGRAPHY = ("b", "i", "strikethrough")
# The keys of the layer itself (the rest of its first step is its transformation chain).
PLACEMENT = ("i", "ie", "lx", "ly", "lxc", "lyc", "lfo", "lap", "lm", "lso", "leo", "ldu")
TEXT_STYLE = ("fs", "ff", "co", "ia", "pa", "al", "tg", "lh", "w", "bg")
TEXT_ONLY = frozenset(TEXT_STYLE) - {"w", "bg"}  # keys no other chain takes
SOLID_STYLE = ("w", "h", "bg", "al")
DEFAULT_FONT_SIZE = 45

BuildItem = Callable[[RawStep], ChainItem]  # registry.build_item, passed in (no import cycle)


@dataclass(frozen=True)
class TextStyle:
    """How a text layer is drawn: fs, ff, co, bg, pa, ia, al, tg, lh and the wrap width w."""

    size: Expr
    font: str = "default"  # a built-in font's name, or a .ttf/.otf path in the library
    colour: Colour = colours.BLACK
    background: Colour | None = None
    padding: tuple[Expr, Expr, Expr, Expr] | None = None  # top, right, bottom, left
    align: str = "left"
    alpha: int | None = None  # 1..9: tenths of opacity
    bold: bool = False
    italic: bool = False
    strikethrough: bool = False
    line_height: Expr | None = None
    wrap: Expr | None = None

    @property
    def font_path(self) -> str | None:
        """The library path of a font file, when `ff` names one rather than a built-in."""
        lowered = self.font.lower()
        return self.font if lowered.endswith((".ttf", ".otf")) else None


@dataclass(frozen=True)
class Layer:
    """One layer: what it shows, where it goes, how it blends, and its own chain."""

    kind: str  # image | text | solid | video | subtitles
    source: str  # the image's path, or the text
    steps: tuple[ChainItem, ...] = ()  # the layer's own chain
    x: Expr | None = None
    y: Expr | None = None
    xc: Expr | None = None
    yc: Expr | None = None
    focus: str = "center"
    anchor: str = "top_left"
    mode: str | None = None
    start: Expr | None = None
    end: Expr | None = None
    duration: Expr | None = None
    text: TextStyle | None = None
    width: Expr | None = None  # a solid block's size (default: the base's)
    height: Expr | None = None
    colour: Colour | None = None  # a solid block's colour
    alpha: int | None = None  # a solid block's al
    trim: bool = True  # image layers are trimmed unless t-false
    spec: str = ""

    @property
    def placed(self) -> bool:
        """Whether lx/ly/lxc/lyc place it (then lfo is ignored)."""
        return any(v is not None for v in (self.x, self.y, self.xc, self.yc))


def parse(value: str, build_item: BuildItem) -> Layer:
    """`<type>,<body>` (a Param("l", …)'s value) into a Layer."""
    kind, _, body = value.partition(",")
    if kind not in KINDS:
        raise InvalidRequest(f"Unknown layer type l-{kind}: expected l-image, l-text, "
                             "l-video or l-subtitles")
    steps = split_chain(body)
    first = steps[0] if steps else ()
    own = {p.key: p for p in first if p.key in PLACEMENT}
    rest = [p for p in first if p.key not in PLACEMENT]
    source = _source(kind, own)
    spec = f"l-{value},l-end"
    fields: dict[str, object] = {
        "x": _expression(own.get("lx")), "y": _expression(own.get("ly")),
        "xc": _expression(own.get("lxc")), "yc": _expression(own.get("lyc")),
        "focus": _choice(own.get("lfo"), POSITIONS, "center"),
        "anchor": _choice(own.get("lap"), POSITIONS, "top_left"),
        "mode": _choice(own.get("lm"), MODES, None),
        "start": _expression(own.get("lso")), "end": _expression(own.get("leo")),
        "duration": _expression(own.get("ldu")),
    }
    if fields["x"] is not None and fields["xc"] is not None:
        raise InvalidRequest(f"lx and lxc cannot both place the layer {spec}")
    if fields["y"] is not None and fields["yc"] is not None:
        raise InvalidRequest(f"ly and lyc cannot both place the layer {spec}")
    if kind == "text":
        style = {p.key: p for p in rest if p.key in TEXT_STYLE}
        rest = [p for p in rest if p.key not in TEXT_STYLE]
        fields["text"] = _text_style(style)
    elif kind == "image" and source == CANVAS:
        kind = "solid"
        style = {p.key: p for p in rest if p.key in SOLID_STYLE}
        rest = [p for p in rest if p.key not in SOLID_STYLE]
        fields.update(width=_expression(style.get("w")), height=_expression(style.get("h")),
                      colour=colours.parse(style["bg"].value, "bg") if "bg" in style
                      else colours.BLACK,
                      alpha=_alpha(style.get("al")))
    fields["trim"] = Param("t", "false") not in rest
    _check_keys(kind, [tuple(rest), *steps[1:]])
    chain = ([tuple(rest)] if rest else []) + steps[1:]
    items = tuple(build_item(raw) for raw in chain)
    return Layer(kind, source, items, spec=spec, **fields)  # type: ignore[arg-type]


def _check_keys(kind: str, chain: list[RawStep]) -> None:
    """A layer key out of place names the place it belongs (the registry would only say it
    belongs inside a layer)."""
    for index, raw in enumerate(chain):
        for param in raw:
            if param.key in TEXT_ONLY and kind != "text":
                raise InvalidRequest(f"{param} applies to text layers (l-text), not to an "
                                     f"l-{'image' if kind == 'solid' else kind} layer")
            if param.key in PLACEMENT and index > 0:
                raise InvalidRequest(f"{param} goes in its layer's first step, before any ':'")


def _source(kind: str, own: dict[str, Param]) -> str:
    """The layer's input: ie- (base64) wins over i- (plain; `@@` for `/` in paths)."""
    if "ie" in own:
        encoded = unquote(own["ie"].value)
        if len(encoded) > MAX_ENCODED:
            raise InvalidRequest(f"The layer's ie- input is longer than {MAX_ENCODED} "
                                 "characters")
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            raw = (base64.urlsafe_b64decode(padded) if "-" in encoded or "_" in encoded
                   else base64.b64decode(padded, validate=True))
            text = raw.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidRequest(f"The layer input ie-{own['ie'].value} is not base64 of "
                                 "UTF-8 text") from None
    elif "i" in own:
        text = own["i"].value
        if kind == "text":
            text = unquote(text)
            if len(text) > MAX_TEXT:
                raise InvalidRequest(f"The layer text is longer than {MAX_TEXT} characters")
        else:
            text = text.replace("@@", "/")
    else:
        raise InvalidRequest(f"The l-{kind} layer has no input: give i-<...> or ie-<base64>")
    if kind == "text":
        if not text:
            raise InvalidRequest("The text layer's text is empty")
        return text
    if text == CANVAS and kind == "image":
        return text
    return _layer_path(text)


def _layer_path(path: str) -> str:
    """A layer's file path stays inside its source: no `..` segment or control character. An
    absolute URL is a path like any other: a web proxy origin fetches it if its allow-list
    lets it, every other origin looks it up under its own root."""
    checked = check_file_path(path)
    if not checked:
        raise InvalidRequest("The layer path is empty")
    return checked


def _text_style(style: dict[str, Param]) -> TextStyle:
    size = _expression(style.get("fs")) or expr.parse(str(DEFAULT_FONT_SIZE), "fs")
    tags: set[str] = set()
    if "tg" in style:
        tags = set(style["tg"].value.split("_"))
        unknown = tags - set(TYPOGRAPHY)
        if unknown:
            raise InvalidRequest(f"Invalid typography {style['tg']}: expected b, i, b_i or "
                                 "strikethrough")
    padding = None
    if "pa" in style:
        parts = [expr.parse(v, "pa") for v in style["pa"].value.split("_")]
        if not 1 <= len(parts) <= 4:
            raise InvalidRequest(f"Invalid padding {style['pa']}: one to four values")
        padding = _css_box(parts)
    font = style["ff"].value.replace("@@", "/") if "ff" in style else "default"
    if font.lower().endswith((".ttf", ".otf")):
        font = _layer_path(font)
    return TextStyle(
        size=size, font=font,
        colour=colours.parse(style["co"].value, "co") if "co" in style else colours.BLACK,
        background=colours.parse(style["bg"].value, "bg") if "bg" in style else None,
        padding=padding, align=_choice(style.get("ia"), ALIGNMENTS, "left") or "left",
        alpha=_alpha(style.get("al")), bold="b" in tags, italic="i" in tags,
        strikethrough="strikethrough" in tags, line_height=_expression(style.get("lh")),
        wrap=_expression(style.get("w")),
    )


def _css_box(parts: list[Expr]) -> tuple[Expr, Expr, Expr, Expr]:
    """CSS shorthand: 1 value (all), 2 (vertical, horizontal), 3 (top, horizontal, bottom)
    or 4 (top, right, bottom, left)."""
    if len(parts) == 1:
        return parts[0], parts[0], parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1], parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], parts[1]
    return parts[0], parts[1], parts[2], parts[3]


def _expression(param: Param | None) -> Expr | None:
    return expr.parse(param.value, str(param)) if param is not None else None


def _choice(param: Param | None, choices: tuple[str, ...], default: str | None) -> str | None:
    if param is None:
        return default
    if param.value not in choices:
        raise InvalidRequest(f"Invalid value in {param}: expected one of {', '.join(choices)}")
    return param.value


def _alpha(param: Param | None) -> int | None:
    if param is None:
        return None
    if not param.value.isdigit() or not 1 <= int(param.value) <= 9:
        raise InvalidRequest(f"Invalid {param}: al takes 1 to 9 (tenths of opacity)")
    return int(param.value)


def inputs(items: Sequence[ChainItem]) -> set[str]:
    """Every library/origin path a chain's layers read (images and font files), nested too."""
    found: set[str] = set()
    for item in items:
        steps = [item] if isinstance(item, Step) else [
            s for s in (item.then, item.otherwise) if s is not None]
        for step in steps:
            for layer in step.layers:
                found |= files(layer)
    return found


def files(layer: Layer) -> set[str]:
    """The paths one layer reads: its image or font file, and its nested layers'."""
    found = inputs(layer.steps)
    if layer.kind == "image":
        found.add(layer.source)
    if layer.text is not None and layer.text.font_path:
        found.add(layer.text.font_path)
    return found
