"""Text layers drawn by libvips' own text renderer (Pango) with an explicit font file.

ImageKit's font names (`ff-`) map onto the DejaVu files shipped in `fonts/` (licence there):
sans-serif names to DejaVu Sans, serif ones to DejaVu Serif, monospaced ones to DejaVu Sans
Mono. A `.ttf`/`.otf` path in the media library is fetched like an image layer and handed over
as bytes; it is written once, by content hash, to a private folder for fontconfig to read.
The text itself is escaped, so no Pango markup a URL carries is ever interpreted.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyvips
from PIL import ImageFont

from pixelport.errors import InvalidRequest, LimitExceeded
from pixelport.transform.colours import Colour
from pixelport.transform.layer import TextStyle

FONTS = Path(__file__).with_name("fonts")
MAX_LAYER_WIDTH = 16_383  # ImageKit's limit on a layer's width
MAX_FONT_SIZE = 2_000
# ImageKit's built-in font names (lower case, spaces and '_' removed) by family.
SERIF = frozenset({"abrilfatface", "arvo", "crimsontext", "lora", "oldstandard", "ptserif",
                   "vollkorn", "gravitasone", "serif", "dejavuserif", "timesnewroman"})
MONO = frozenset({"ptmono", "monospace", "dejavusansmono", "couriernew", "sourcecodepro"})
_FAMILIES = {
    "sans": ("DejaVu Sans", {(False, False): "DejaVuSans.ttf", (True, False): "DejaVuSans-Bold.ttf",
                             (False, True): "DejaVuSans-Oblique.ttf",
                             (True, True): "DejaVuSans-BoldOblique.ttf"}),
    "serif": ("DejaVu Serif", {(False, False): "DejaVuSerif.ttf",
                               (True, False): "DejaVuSerif-Bold.ttf"}),
    "mono": ("DejaVu Sans Mono", {(False, False): "DejaVuSansMono.ttf",
                                  (True, False): "DejaVuSansMono-Bold.ttf"}),
}
_ALIGN = {"left": "low", "center": "centre", "right": "high"}


def family_of(name: str) -> str:
    """The shipped family (sans, serif, mono) an ImageKit font name is drawn with."""
    key = name.lower().replace(" ", "").replace("_", "").replace("-", "")
    if key in SERIF:
        return "serif"
    if key in MONO:
        return "mono"
    return "sans"


def render(text: str, style: TextStyle, values: Mapping[str, float],
           fonts: Mapping[str, bytes]) -> Any:
    """The text as an sRGB image with alpha, padded and on its background (if any)."""
    size = style.size.evaluate(values)
    if not 1 <= size <= MAX_FONT_SIZE:
        raise InvalidRequest(f"The font size {style.size} is {size:g}: it must be 1 to "
                             f"{MAX_FONT_SIZE}")
    wrap = round(style.wrap.evaluate(values)) if style.wrap is not None else None
    if wrap is not None and not 1 <= wrap <= MAX_LAYER_WIDTH:
        raise LimitExceeded(f"The text layer's width w-{style.wrap} must be 1 to "
                            f"{MAX_LAYER_WIDTH} pixels")
    longest = max(len(line) for line in text.splitlines() or [text])
    if wrap is None and longest * size * 0.3 > MAX_LAYER_WIDTH:  # no glyph is under 0.3 em
        raise LimitExceeded(_too_wide(text, size))
    family, path = _font(style, fonts)
    markup = html.escape(text, quote=False)
    if style.strikethrough:
        markup = f"<s>{markup}</s>"
    weight = " Bold" if style.bold else ""
    slant = " Italic" if style.italic else ""
    options: dict[str, Any] = {"fontfile": str(path), "dpi": 72,
                               "font": f"{family}{weight}{slant} {size:g}px",
                               "align": _ALIGN[style.align], "wrap": "word-char"}
    if wrap is not None:
        options["width"] = wrap
    if style.line_height is not None:
        # lh is the distance between lines; Pango's spacing is what is added to the font's.
        options["spacing"] = max(0, round(style.line_height.evaluate(values) - size))
    mask = pyvips.Image.text(markup, **options)
    image = _coloured(mask, style.colour, style.alpha)
    image = _padded(image, style, values)
    if image.width > MAX_LAYER_WIDTH:
        raise LimitExceeded(_too_wide(text, size))
    return image


def _too_wide(text: str, size: float) -> str:
    return (f"The text layer ({len(text)} characters at {size:g} px) would be wider than "
            f"{MAX_LAYER_WIDTH} pixels: wrap it with w- or use a smaller fs-")


def _font(style: TextStyle, fonts: Mapping[str, bytes]) -> tuple[str, Path]:
    """The Pango family name and the font file to draw with."""
    if style.font_path is not None:
        data = fonts.get(style.font_path)
        if data is None:
            raise InvalidRequest(f"The font {style.font_path!r} was not fetched")
        return _library_font(data, style.font_path)
    family, files = _FAMILIES[family_of(style.font)]
    file = files.get((style.bold, style.italic)) or files.get((style.bold, False)) \
        or files[(False, False)]
    return family, FONTS / file


def _library_font(data: bytes, path: str) -> tuple[str, Path]:
    """A media-library font: its family name read by FreeType (Pillow), its bytes on disk."""
    try:
        family = ImageFont.truetype(io.BytesIO(data), 12).getname()[0]
    except OSError:
        raise InvalidRequest(f"The font {path!r} is not a TrueType or OpenType font") from None
    if not family:
        raise InvalidRequest(f"The font {path!r} names no family")
    folder = Path(tempfile.gettempdir()) / f"pixelport-fonts-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / (hashlib.sha256(data).hexdigest() + Path(path).suffix.lower())
    if not target.exists():  # written whole under another name, then renamed: never partial
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(target)
    return family, target


def _coloured(mask: Any, colour: Colour, alpha: int | None) -> Any:
    """A one-band coverage mask as `colour` with that coverage as alpha."""
    opacity = colour.alpha / 255 * ((alpha or 10) / 10)
    ink = mask.new_from_image(colour.rgb).copy(interpretation="srgb")
    cover = mask if opacity == 1 else (mask * opacity).cast("uchar")
    return ink.bandjoin(cover)


def _padded(image: Any, style: TextStyle, values: Mapping[str, float]) -> Any:
    """pa- around the text, and bg- behind text and padding."""
    top = right = bottom = left = 0
    if style.padding is not None:
        top, right, bottom, left = (max(0, round(p.evaluate(values))) for p in style.padding)
    if top or right or bottom or left:
        width, height = image.width + left + right, image.height + top + bottom
        if width > MAX_LAYER_WIDTH or height > MAX_LAYER_WIDTH * 4:
            raise LimitExceeded(f"The text layer's padding makes it {width}x{height} pixels")
        image = image.embed(left, top, width, height, extend="background",
                            background=[0, 0, 0, 0])
    if style.background is None:
        return image
    block = image.new_from_image(style.background.rgba).copy(interpretation="srgb")
    return block.composite2(image, "over")
