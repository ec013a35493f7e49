"""Every parameter family on every awkward shape of input: a clean result or a clean 4xx.

Odd inputs (1x1, one pixel wide or high, 16-bit, grey with alpha, CMYK, GIF with one frame
or many, EXIF-rotated, SVG) each go through a representative of every parameter family. No
combination may fail with anything but an answered 400: a libvips error or any other
exception here would be a 500 in production (`find_trim` on a 1-px image was one).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import pyvips

from pixelport.config import from_dict
from pixelport.errors import PixelportError
from pixelport.transform import engine, registry

CONFIG = from_dict({"images": {"avif": True}})
OPTIONS = engine.RenderOptions("image/avif,image/webp,*/*", CONFIG.images, CONFIG.limits,
                               client_width=320, client_dpr=2.0)


def _rgb(width: int, height: int) -> Any:
    """A gradient, so that trims, crops and effects have something to work on."""
    x = pyvips.Image.xyz(width, height)[0]
    y = pyvips.Image.xyz(width, height)[1]
    red = (x * 255 / max(1, width - 1)).cast("uchar")
    green = (y * 255 / max(1, height - 1)).cast("uchar")
    return red.bandjoin([green, (red + green) / 2]).cast("uchar").copy(interpretation="srgb")


def _gif_frames(count: int) -> bytes:
    frames = [(_rgb(12, 9) + 40 * i).cast("uchar") for i in range(count)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 9)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * count)
    return bytes(strip.gifsave_buffer())


def _exif_rotated() -> bytes:
    image = _rgb(30, 20).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    return bytes(image.jpegsave_buffer(keep="exif"))


def _cmyk() -> bytes:
    image = _rgb(24, 16).colourspace("cmyk")
    return bytes(image.jpegsave_buffer())


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" '
       b'height="30" fill="#c33"/><circle cx="20" cy="15" r="9" fill="#33c"/></svg>')


@functools.cache
def inputs() -> dict[str, bytes]:
    """name -> encoded input."""
    return {
        "1x1.png": bytes(_rgb(1, 1).pngsave_buffer()),
        "1x1.jpg": bytes(_rgb(1, 1).jpegsave_buffer()),
        "1x40.jpg": bytes(_rgb(1, 40).jpegsave_buffer()),
        "40x1.png": bytes(_rgb(40, 1).pngsave_buffer()),
        "2x2.webp": bytes(_rgb(2, 2).webpsave_buffer()),
        "16bit.png": bytes((_rgb(20, 14).cast("ushort") * 257).copy(
            interpretation="rgb16").pngsave_buffer()),
        "grey-alpha.png": bytes(_rgb(20, 14)[0].bandjoin(128).copy(
            interpretation="b-w").pngsave_buffer()),
        "cmyk.jpg": _cmyk(),
        "one-frame.gif": bytes(_rgb(12, 9).gifsave_buffer()),
        "frames.gif": _gif_frames(3),
        "exif-6.jpg": _exif_rotated(),
        "drawing.svg": SVG,
    }


FAMILIES = {
    "size": ["w-20", "h-20", "w-0.5", "h-0.5", "w-auto", "w-30,ar-16-9", "h-30,ar-1-3",
             "w-10,dpr-2", "w-10,dpr-auto", "w-iw_div_2", "w-1,h-1", "w-3000"],
    "crop": ["w-20,h-20", "w-20,h-5,c-force", "w-20,h-20,c-at_max", "w-200,h-200,c-at_max_enlarge",
             "w-20,h-20,c-at_least", "w-200,h-50,c-maintain_ratio_no_enlarge"],
    "crop-mode": ["w-20,h-20,cm-pad_resize", "w-200,h-200,cm-pad_resize_no_enlarge,bg-red",
                  "w-1,h-1,cm-extract", "w-30,h-30,cm-pad_extract", "w-5,h-5,cm-extract,x-0,y-0",
                  "w-2,h-2,cm-extract,xc-0,yc-0", "w-30,h-30,cm-pad_extract_no_shrink"],
    "focus": ["w-10,h-10,fo-top", "w-10,h-10,fo-bottom_right", "w-10,h-10,fo-auto",
              "w-10,h-10,fo-face", "fo-face", "w-10,h-10,fo-face,z-0.5"],
    "output": ["f-jpg", "f-png", "f-webp", "f-avif", "f-gif", "f-orig", "f-auto", "q-10",
               "pr-true,f-jpg", "pr-true,f-png", "lo-true,f-webp", "md-true", "cp-true",
               "orig-true"],
    "effects": ["bl-5", "o-50", "e-grayscale", "e-contrast", "e-sharpen", "e-sharpen-100",
                "e-usm-2-2-0.8-0.024", "e-shadow", "e-gradient",
                "e-gradient-ld-top_from-00000080_to-FFFFFF00", "cr-00FF00", "cr-00FF00_30_FF0000",
                "t-true", "t-1", "t-99"],
    "orientation": ["rt-90", "rt-N90", "rt-45", "rt-180", "fl-h", "fl-v", "fl-h_v"],
    "corners-border-background": ["r-5", "r-max", "r-1_2_3_4,f-png", "b-1_FF0000",
                                  "b-ih_div_20_red", "w-30,h-30,cm-pad_resize,bg-blurred",
                                  "w-30,h-30,cm-pad_resize,bg-dominant", "bg-00FF0080,f-jpg"],
    "pages": ["pg-1", "pg-2", "pg-2,w-5"],
    "conditions": ["if-iw_gt_10,w-5,if-else,w-20,if-end", "if-ar_lt_1,rt-90,if-end"],
    "chains": ["w-20:rt-45:t-true", "t-true:w-1:b-2_red", "w-1:e-contrast:e-sharpen:bl-3",
               "w-1:t-1", "w-1,h-1:r-max:e-shadow:f-png"],
}
CASES = [(name, tr) for name in sorted(inputs()) for trs in FAMILIES.values() for tr in trs]


@pytest.mark.parametrize(("name", "tr"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_every_family_on_every_shape(name: str, tr: str) -> None:
    steps = registry.parse(tr, {})
    try:
        rendered = engine.render(inputs()[name], steps, OPTIONS)
    except PixelportError as exc:
        assert exc.status == 400, (name, tr, exc.header)
        return
    decoded = pyvips.Image.new_from_buffer(rendered.data, "")
    assert decoded.width >= 1 and decoded.height >= 1


def test_a_fault_of_ours_stays_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    # A libvips failure on an input that decodes whole is not the input's fault: it must
    # propagate (a logged 500), not be disguised as EFORMAT.
    def broken(*args: object) -> object:
        raise pyvips.Error("rank: window too large")

    monkeypatch.setattr(engine.pixels, "grayscale", broken)
    with pytest.raises(pyvips.Error):
        engine.render(inputs()["16bit.png"], registry.parse("e-grayscale", {}), OPTIONS)
