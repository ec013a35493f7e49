"""Pixel operations on sRGB 8-bit pyvips images (3 bands, or 4 with alpha)."""

from __future__ import annotations

import math
from typing import Any

import pyvips

from pixelport.errors import LimitExceeded
from pixelport.transform import budget
from pixelport.transform.colours import BLACK, WHITE, Colour
from pixelport.transform.geometry import Box
from pixelport.transform.step import Background, Border, ColourReplace, Gradient, Radius, Shadow

SHADOW_MAX_PIXELS = 2_000_000


def with_alpha(image: Any) -> Any:
    """The image with an alpha band (opaque where it had none)."""
    return image if image.hasalpha() else image.bandjoin(255)


def fill_for(image: Any, colour: Colour) -> tuple[Any, list[float]]:
    """The image (given alpha when the colour is translucent) and the colour as its bands."""
    if not colour.opaque:
        image = with_alpha(image)
    return image, (colour.rgba if image.hasalpha() else colour.rgb)


def dominant(image: Any) -> Colour:
    """The most common colour, by an 8x8x8 histogram of a small copy."""
    small = image.thumbnail_image(64, height=64)
    if small.hasalpha():
        small = small.flatten(background=[255, 255, 255])
    histogram = small[:3].hist_find_ndim(bins=8)
    best = (-1.0, 0, 0, 0)
    for band in range(histogram.bands):
        count, x, y = _max_with_position(histogram[band])
        if count > best[0]:
            best = (count, x, y, band)
    _, red_bin, green_bin, blue_bin = best
    return Colour(red_bin * 32 + 16, green_bin * 32 + 16, blue_bin * 32 + 16)


def _max_with_position(band: Any) -> tuple[float, int, int]:
    value, options = band.max(x=True, y=True)
    return float(value), int(options["x"]), int(options["y"])


def background_colour(image: Any, background: Background | None, default: Colour) -> Colour:
    """The plain colour a background asks for (dominant computed from the image)."""
    if background is None:
        return default
    if background.dominant:
        return dominant(image)
    return background.colour or default


def place_on_canvas(image: Any, box: Box, background: Background | None, source: Any) -> Any:
    """Put `image` at (left, top) on a box.width x box.height canvas (pad / pad_extract)."""
    if background is not None and background.blurred:
        # The image is read twice (backdrop and foreground): materialise it once.
        image = budget.watch(image.copy_memory())
        backdrop = image.thumbnail_image(box.width, height=box.height, crop="centre",
                                         size="force")
        amount = background.blur_amount
        sigma = max(box.width, box.height) / 40 if amount is None else max(0.3, amount / 2)
        backdrop = backdrop[:3].gaussblur(sigma)
        if background.brightness:
            backdrop = backdrop + background.brightness
        backdrop = backdrop.cast("uchar")
        if image.hasalpha():
            backdrop = backdrop.bandjoin(255)
            return backdrop.composite2(image, "over", x=box.left, y=box.top).cast("uchar")
        return backdrop.insert(image, box.left, box.top)
    colour = background_colour(source, background, WHITE)
    image, bands = fill_for(image, colour)
    return image.embed(box.left, box.top, box.width, box.height, extend="background",
                       background=bands)


TRIM_MIN = 3


def trim(image: Any, threshold: int) -> Any:
    """Cut away borders of the corner colour."""
    if image.width < TRIM_MIN or image.height < TRIM_MIN:
        return image  # find_trim's 3x3 median needs 3 pixels each way; nothing to cut anyway
    flat = image.flatten(background=[255, 255, 255]) if image.hasalpha() else image
    left, top, width, height = flat.find_trim(threshold=threshold)
    if width <= 0 or height <= 0:
        return image
    return image.crop(left, top, width, height)


MAX_SIDE = 10_000_000  # libvips' largest coordinate (VIPS_MAX_COORD)


def check_growth(width: float, height: float, max_pixels: int, what: str) -> None:
    """Refuse (ELIMIT) an operation that would grow the image past `max_pixels`, before any
    pixel work: growth is what lets one URL take a core for hours or memory by gigabytes
    (b-1000000, twenty rt-45 steps), and every operation after it runs on the grown image."""
    if width * height > max_pixels or max(width, height) > MAX_SIDE:
        raise LimitExceeded(f"{what} would make the image {width:.0f}x{height:.0f} pixels, "
                            f"more than the limit of {max_pixels}")


def rotate(image: Any, degrees: float, background: Background | None,
           max_pixels: int) -> Any:
    """Rotate clockwise; right angles are exact, others grow the canvas."""
    if degrees % 90 == 0:
        turns = int(degrees // 90) % 4
        return [image, image.rot90(), image.rot180(), image.rot270()][turns]
    angle = math.radians(degrees)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    check_growth(image.width * cos + image.height * sin, image.width * sin + image.height * cos,
                 max_pixels, f"rt-{degrees:g}")
    colour = background_colour(image, background, Colour(0, 0, 0, 0))
    image, bands = fill_for(image, colour)
    return image.rotate(degrees, background=bands)


def flip(image: Any, how: str) -> Any:
    """fl-h (mirror), fl-v (upside down), fl-h_v (both)."""
    if "h" in how:
        image = image.fliphor()
    if "v" in how:
        image = image.flipver()
    return image


def blur(image: Any, amount: float) -> Any:
    """Gaussian blur; alpha premultiplied so edges do not darken."""
    sigma = max(0.3, amount / 2)
    if image.hasalpha():
        return image.premultiply().gaussblur(sigma).unpremultiply().cast("uchar")
    return image.gaussblur(sigma)


def grayscale(image: Any) -> Any:
    """Grey, kept as three equal bands so later colour steps still apply."""
    alpha = image[3] if image.hasalpha() else None
    grey = image[:3].colourspace("b-w").colourspace("srgb")
    return grey.bandjoin(alpha) if alpha is not None else grey


def contrast(image: Any) -> Any:
    """Stretch levels so the 1st and 99th percentiles span the full range."""
    colour = image[:3]
    low, high = colour.percent(1), colour.percent(99)
    if high <= low:
        return image
    scale = 255 / (high - low)
    stretched = colour.linear([scale] * 3, [-low * scale] * 3).cast("uchar")
    return stretched.bandjoin(image[3]) if image.hasalpha() else stretched


def sharpen(image: Any, amount: float) -> Any:
    """e-sharpen[-N]: libvips sharpen, stronger with N."""
    alpha = image[3] if image.hasalpha() else None
    sharp = image[:3].sharpen(sigma=1.0, m1=0.5, m2=amount / 10).colourspace("srgb")
    return sharp.bandjoin(alpha) if alpha is not None else sharp


def unsharp(image: Any, radius: float, sigma: float, amount: float, threshold: float) -> Any:
    """e-usm: the classic unsharp mask (threshold is a fraction of full scale)."""
    alpha = image[3] if image.hasalpha() else None
    colour = image[:3].cast("float")
    spread = sigma if sigma > 0 else max(0.3, radius / 2)
    detail = colour - colour.gaussblur(spread)
    mask = detail.abs() > threshold * 255
    sharpened = mask.ifthenelse(colour + detail * amount, colour)
    result = sharpened.cast("uchar")
    return result.bandjoin(alpha) if alpha is not None else result


def replace_colour(image: Any, spec: ColourReplace) -> Any:
    """cr-: pixels near `source` (within tolerance %) become `target`."""
    source = spec.source or dominant(image)
    colour = image[:3].cast("float")
    distance = ((colour - source.rgb) ** 2).bandmean() * 3
    limit = (spec.tolerance / 100 * math.sqrt(3 * 255**2)) ** 2
    replaced = (distance <= limit).ifthenelse(spec.target.rgb, image[:3])
    return replaced.bandjoin(image[3]) if image.hasalpha() else replaced


def gradient(image: Any, spec: Gradient, values: dict[str, float]) -> Any:
    """Overlay a linear gradient from `start` to `end` along `angle` (180: top to bottom)."""
    width, height = image.width, image.height
    radians = math.radians(spec.angle)
    dx, dy = math.sin(radians), -math.cos(radians)
    length = abs(width * dx) + abs(height * dy) or 1.0
    xy = pyvips.Image.xyz(width, height)
    position = ((xy[0] - width / 2) * dx + (xy[1] - height / 2) * dy) / length + 0.5
    stop = 1.0
    if spec.stop is not None:
        value = spec.stop.evaluate(values)
        stop = value if value <= 1 else value / length
    t = position / max(stop, 1e-6)
    t = (t > 1).ifthenelse(1, t)
    t = (t < 0).ifthenelse(0, t)
    start, end = spec.start.rgba, spec.end.rgba
    bands = [t * (e - s) + s for s, e in zip(start, end, strict=True)]
    overlay = bands[0].bandjoin(bands[1:])
    overlay = overlay.cast("uchar").copy(interpretation="srgb")
    base = with_alpha(image)
    result = base.composite2(overlay, "over").cast("uchar")
    return result if image.hasalpha() else result.flatten(background=[0, 0, 0]).cast("uchar")


def round_corners(image: Any, spec: Radius, values: dict[str, float]) -> Any:
    """r-: transparent rounded corners (an ellipse for r-max)."""
    width, height = image.width, image.height
    if spec.maximum or spec.corners is None:
        shape = (f'<ellipse cx="{width / 2}" cy="{height / 2}" rx="{width / 2}" '
                 f'ry="{height / 2}" fill="#fff"/>')
    else:
        limit = min(width, height) / 2
        tl, tr, br, bl = (min(limit, max(0.0, c.evaluate(values))) for c in spec.corners)
        shape = (f'<path fill="#fff" d="M{tl},0 H{width - tr} A{tr},{tr} 0 0 1 {width},{tr} '
                 f'V{height - br} A{br},{br} 0 0 1 {width - br},{height} H{bl} '
                 f'A{bl},{bl} 0 0 1 0,{height - bl} V{tl} A{tl},{tl} 0 0 1 {tl},0 Z"/>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
           f"{shape}</svg>")
    mask = pyvips.Image.svgload_buffer(svg.encode())[3]
    base = with_alpha(image)
    alpha = (base[3] * (mask / 255)).cast("uchar")
    return base[:3].bandjoin(alpha)


def add_border(image: Any, spec: Border, values: dict[str, float], max_pixels: int) -> Any:
    """b-: a solid frame around the image."""
    width = round(spec.width.evaluate(values))
    if width <= 0:
        return image
    check_growth(image.width + 2 * width, image.height + 2 * width, max_pixels, f"b-{width}")
    image, bands = fill_for(image, spec.colour)
    return image.embed(width, width, image.width + 2 * width, image.height + 2 * width,
                       extend="background", background=bands)


def drop_shadow(image: Any, spec: Shadow, max_pixels: int) -> Any:
    """e-shadow: a blurred, offset shadow of the image's shape beneath it."""
    if image.width * image.height > SHADOW_MAX_PIXELS:
        raise LimitExceeded("e-shadow works on images of at most 2 megapixels")
    offset_x = round(image.width * spec.x / 100)
    offset_y = round(image.height * spec.y / 100)
    margin = math.ceil(spec.blur * 3) + 1
    grow_left, grow_top = margin + max(0, -offset_x), margin + max(0, -offset_y)
    width = image.width + 2 * margin + abs(offset_x)
    height = image.height + 2 * margin + abs(offset_y)
    check_growth(width, height, max_pixels, "e-shadow")
    base = with_alpha(image)
    silhouette = (base[3] * (spec.saturation / 100)).cast("uchar")
    shadow_alpha = silhouette.embed(grow_left + offset_x, grow_top + offset_y, width, height)
    if spec.blur > 0:
        shadow_alpha = shadow_alpha.gaussblur(max(0.3, spec.blur / 2)).cast("uchar")
    black = shadow_alpha.new_from_image(BLACK.rgb).cast("uchar")
    shadow = black.bandjoin(shadow_alpha).copy(interpretation="srgb")
    return shadow.composite2(base, "over", x=grow_left, y=grow_top).cast("uchar")


def underlay(image: Any, colour: Colour) -> Any:
    """The image laid over a plane of `colour`: its transparent areas take the colour (an
    opaque colour leaves no alpha; a translucent one keeps it where the colour shows)."""
    if not image.hasalpha():
        return image
    if colour.opaque:
        return image.flatten(background=colour.rgb).cast("uchar")
    plane = image[:3].new_from_image(colour.rgba).copy(interpretation="srgb").cast("uchar")
    return plane.composite2(image, "over").cast("uchar")


def set_opacity(image: Any, percent: float) -> Any:
    """o-: scale the alpha band."""
    base = with_alpha(image)
    return base[:3].bandjoin((base[3] * (percent / 100)).cast("uchar"))
