"""Generated test media: images with known pixels, animations, pages, EXIF, ICC, SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyvips

from tests.helpers import make_image, quadrants

DATA = Path(__file__).parent / "data"


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> Any:
    return pyvips.Image.black(width, height).new_from_image(list(rgb)).cast("uchar").copy(
        interpretation="srgb")


def animated_gif(frames: int = 3, width: int = 120, height: int = 80) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    strip = pyvips.Image.arrayjoin([solid(width, height, colours[i % 4]) for i in range(frames)],
                                   across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * frames)
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)
    return bytes(strip.gifsave_buffer())


def animated_webp() -> bytes:
    strip = pyvips.Image.new_from_buffer(animated_gif(4, 90, 60), "", n=-1)
    return bytes(strip.webpsave_buffer())


def multipage_tiff() -> bytes:
    strip = pyvips.Image.arrayjoin([solid(60, 40, (255, 0, 0)), solid(60, 40, (0, 0, 255))],
                                   across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    return bytes(strip.tiffsave_buffer())


def exif_rotated() -> bytes:
    """A 300x100 JPEG whose EXIF orientation (6) says: display rotated 90° clockwise."""
    image = make_image(300, 100)
    loaded = pyvips.Image.new_from_buffer(image, "").copy()
    loaded.set_type(pyvips.GValue.gint_type, "orientation", 6)
    return bytes(loaded.jpegsave_buffer(keep="exif"))


def exif_rotated_halves() -> bytes:
    """400x400, red left half and blue right half, EXIF orientation 6: upright, red on top
    and blue below. Square, so that a decode at the target size cannot hide a missed turn."""
    red = pyvips.Image.black(200, 400).new_from_image([255, 0, 0])
    blue = pyvips.Image.black(200, 400).new_from_image([0, 0, 255])
    image = red.join(blue, "horizontal").cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    return bytes(image.jpegsave_buffer(Q=95, keep="exif"))


def p3_image() -> bytes:
    """Saturated green in the Display P3 space, with the P3 profile embedded."""
    return bytes(solid(64, 64, (0, 255, 0)).icc_transform("p3").jpegsave_buffer(
        Q=95, keep="icc"))


def bordered() -> bytes:
    """A 100x100 red square in a 20-px white border (140x140)."""
    return bytes(solid(100, 100, (255, 0, 0)).embed(20, 20, 140, 140, extend="background",
                                                    background=[255, 255, 255]).pngsave_buffer())


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50">'
       b'<rect width="100" height="50" fill="#0000ff"/></svg>')


def cutout() -> bytes:
    """200x100 PNG: the left half opaque green, the right half fully transparent."""
    left = pyvips.Image.black(100, 100).new_from_image([0, 255, 0, 255])
    right = pyvips.Image.black(100, 100).new_from_image([0, 0, 0, 0])
    image = left.join(right, "horizontal").cast("uchar").copy(interpretation="srgb")
    return bytes(image.pngsave_buffer())


def write_library(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "photo.jpg": make_image(800, 600),
        "alpha.png": make_image(400, 300, ".png", alpha=True),
        "small.png": make_image(100, 50, ".png"),
        "quadrants.png": quadrants(200),
        "anim.gif": animated_gif(),
        "pages.tif": multipage_tiff(),
        "rotated.jpg": exif_rotated(),
        "rotated-halves.jpg": exif_rotated_halves(),
        "p3.jpg": p3_image(),
        "bordered.png": bordered(),
        "cutout.png": cutout(),
        "logo.svg": SVG,
        "default.png": quadrants(100),
        "photo.avif": make_image(400, 300, ".avif"),
        "photo.webp": make_image(400, 300, ".webp"),
        "photo.tif": make_image(400, 300, ".tif"),
        "anim.webp": animated_webp(),
        "face.jpg": (DATA / "astronaut-320.jpg").read_bytes(),
        "noise.jpg": bytes(pyvips.Image.gaussnoise(200, 200, mean=128, sigma=40).cast("uchar")
                           .bandjoin([pyvips.Image.gaussnoise(200, 200).cast("uchar")] * 2)
                           .copy(interpretation="srgb").jpegsave_buffer(Q=95)),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root
