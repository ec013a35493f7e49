"""Cloudinary URLs: `/<endpoint>/image/upload/<component>/<component>/v<version>/<path>`.

`image/upload/` (or `video/upload/`, which switches `q_auto` to the video scale, or
`image/fetch/` before an absolute URL, for a `web_proxy` origin) is optional, as on ImageKit,
where it is the part of the URL one replaces by hand. Each component is one
step of the chain: comma-separated `key_value` parameters, e.g. `w_300,h_200,c_fill,g_north`.
A segment is a component when its first parameter's key is a Cloudinary key; the version
(`v1712345678`) ends the components and is dropped; the last segment is always the file.

Mapped as ImageKit's Cloudinary rewriter documents it, except where Cloudinary's own meaning
differs and pixelport can do it exactly (`c_fit` may enlarge, `c_limit` may not; `w`+`h`
without `c_` is Cloudinary's default `c_scale`); see docs/migration.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from pixelport.delivery.rewriters.base import (
    Rewrite,
    checked,
    colour_name,
    hex_colour,
    number,
    plain,
    signed,
    unsupported,
)
from pixelport.errors import InvalidRequest

VENDOR = "Cloudinary"
# Every Cloudinary transformation key: a segment starting with one is a component; the ones
# not in MAPPED answer 400 rather than being taken for a folder.
KEYS = {"a", "ac", "af", "ar", "b", "bo", "br", "c", "co", "cs", "d", "dl", "dn", "dpr", "du",
        "e", "eo", "f", "fl", "fn", "fps", "g", "h", "if", "ki", "l", "o", "p", "pg", "q", "r",
        "so", "sp", "t", "u", "vc", "vs", "w", "x", "y", "z"}
MAPPED = {"a", "ar", "b", "bo", "c", "dpr", "du", "e", "eo", "f", "fl", "g", "h", "o", "q", "r",
          "so", "t", "w", "x", "y", "z"}
PREFIXES = (("image", "upload"), ("video", "upload"), ("image", "fetch"))
VERSION = re.compile(r"^v\d+$")
_KEY = re.compile(r"^([a-z]{1,3})_")

GRAVITY = {"north": "top", "south": "bottom", "east": "right", "west": "left",
           "north_east": "top_right", "north_west": "top_left", "south_east": "bottom_right",
           "south_west": "bottom_left", "center": "center", "auto": "auto", "face": "face",
           "faces": "face", "custom": "custom"}
FORMATS = {"auto": "auto", "jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp",
           "gif": "gif", "avif": "avif"}
VIDEO_FORMATS = {"mp4": "mp4", "webm": "webm"}
# q_auto[:level], as ImageKit's rewriter maps it.
AUTO_QUALITY = {"low": 50, "eco": 60, "good": 70, "best": 86}
AUTO_QUALITY_VIDEO = {"low": 40, "eco": 45, "good": 50, "best": 60}


def rewrite(segments: list[str], query: str) -> Rewrite:
    """Take the leading Cloudinary components off the path as one chain."""
    video = False
    for prefix in PREFIXES:
        if len(segments) > 2 and tuple(segments[:2]) == prefix:
            video = prefix[0] == "video"
            segments = segments[2:]
            break
    steps: list[str] = []
    while len(segments) > 1:
        text = _decode(segments[0])
        if VERSION.match(text):
            segments = segments[1:]
            break
        key = _KEY.match(text)
        if key is None or key.group(1) not in KEYS:
            break
        step = component(text, video)
        if step:
            steps.append(",".join(step))
        segments = segments[1:]
    return Rewrite(":".join(steps), segments, query)


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("The path is not valid UTF-8 once percent-decoded") from None


def component(text: str, video: bool = False) -> list[str]:
    """One Cloudinary component (`w_300,h_200,c_fill`) as one ImageKit step's parameters."""
    found: dict[str, tuple[str, str]] = {}  # key → (value, the parameter as written)
    for part in text.split(","):
        key, sep, value = part.partition("_")
        if not sep or not value:
            raise InvalidRequest(f"Invalid Cloudinary parameter {part!r} in {text!r}")
        if key not in KEYS:
            raise InvalidRequest(f"Unknown Cloudinary parameter {part!r} in {text!r}")
        if key not in MAPPED:
            raise unsupported(VENDOR, part)
        found[key] = (value, part)
    out: list[str] = []
    for key in ("w", "h"):
        if key in found:
            out += checked(_named(found[key][1]), [f"{key}-{found[key][0]}"])
    if "ar" in found:
        out += checked(_named(found["ar"][1]), [f"ar-{_ratio(*found['ar'])}"])
    out += _crop(found)
    for key, handler in HANDLERS.items():
        if key in found:
            value, source = found[key]
            out += checked(_named(source), handler(value, source, video))
    checked(f"Cloudinary component {text!r}", out)
    # t_<name>: a named transformation (it must exist in [transformations], or 400 later).
    return ([f"n-{found['t'][0]}"] if "t" in found else []) + out


def _named(source: str) -> str:
    return f"Cloudinary parameter {source!r}"


def _ratio(value: str, source: str) -> str:
    width, colon, height = value.partition(":")
    if colon:
        if number(width) is None or number(height) is None:
            raise InvalidRequest(f"Invalid Cloudinary aspect ratio {source!r}")
        return f"{width}-{height}"
    if number(value) is None:
        raise InvalidRequest(f"Invalid Cloudinary aspect ratio {source!r}")
    return f"{value}-1"


def _focus(found: dict[str, tuple[str, str]]) -> list[str]:
    if "g" not in found:
        return []
    value, source = found["g"]
    if value not in GRAVITY:
        raise unsupported(VENDOR, source)
    return [f"fo-{GRAVITY[value]}"]


def _crop(found: dict[str, tuple[str, str]]) -> list[str]:
    """c_, g_, x_ and y_ together: they decide the crop strategy, mode and focus."""
    mode, source = found.get("c", ("scale", ""))
    if ("x" in found or "y" in found) and mode != "crop":
        where = found.get("x", found.get("y"))
        assert where is not None
        raise unsupported(VENDOR, where[1], "x_ and y_ are mapped with c_crop only")
    boxed = ("w" in found and "h" in found) or ("ar" in found and ("w" in found or "h" in found))
    if mode == "scale":  # Cloudinary's default: the exact size, aspect ratio not kept
        return ["c-force"] if boxed else []
    if mode in ("fill", "thumb"):  # cover the box, cut where g_ says (thumb: g_face)
        return _focus(found)
    if mode == "fit":
        return ["c-at_max_enlarge"]
    if mode == "limit":
        return ["c-at_max"]
    if mode in ("pad", "lpad"):
        return ["cm-pad_resize" if mode == "pad" else "cm-pad_resize_no_enlarge",
                *_focus(found)]
    if mode == "crop":
        if "x" in found or "y" in found:
            gravity = found.get("g", ("north_west", ""))
            if gravity[0] != "north_west":
                raise unsupported(VENDOR, gravity[1],
                                  "x_/y_ with c_crop are mapped from the top-left corner "
                                  "(no g_, or g_north_west) only")
            return ["cm-extract", *(f"{axis}-{found[axis][0] if axis in found else '0'}"
                                    for axis in ("x", "y"))]
        return ["cm-extract", *_focus(found)]
    raise unsupported(VENDOR, source)


def _colour(value: str, source: str) -> str:
    found = hex_colour(value[4:]) if value.startswith("rgb:") else colour_name(value)
    if found is None:
        raise InvalidRequest(f"Invalid Cloudinary colour in {source!r}")
    return found


def _quality(value: str, source: str, video: bool) -> list[str]:
    if value == "auto" or value.startswith("auto:"):
        levels = AUTO_QUALITY_VIDEO if video else AUTO_QUALITY
        level = value[5:] or "good"
        if level not in levels:
            raise unsupported(VENDOR, source)
        return [f"q-{levels[level]}"]
    return [f"q-{value}"]


def _format(value: str, source: str, video: bool) -> list[str]:
    formats = {**FORMATS, **VIDEO_FORMATS} if video else FORMATS
    if value not in formats:
        raise unsupported(VENDOR, source)
    return [f"f-{formats[value]}"]


def _effect(value: str, source: str, video: bool) -> list[str]:
    name, _, argument = value.partition(":")
    strength = number(argument) if argument else None
    if argument and name != "trim" and strength is None:
        raise InvalidRequest(f"Invalid Cloudinary effect strength in {source!r}")
    if name == "grayscale" and not argument:
        return ["e-grayscale"]
    if name == "blur":  # Cloudinary 1-2000 (default 100) → ImageKit's bl (÷100)
        return [f"bl-{max(1, round((strength or 100) / 100))}"]
    if name == "contrast":
        return ["e-contrast"]
    if name == "sharpen":
        return [f"e-sharpen-{max(1, round((strength or 100) / 100))}"]
    if name == "unsharp_mask":
        return [f"e-usm-0-{plain((strength or 100) / 100)}-1-0.05"]
    if name == "trim":
        tolerance = argument.split(":", 1)[0]
        if not tolerance:
            return ["t-true"]
        if number(tolerance) is None:
            raise InvalidRequest(f"Invalid Cloudinary trim tolerance in {source!r}")
        return [f"t-{tolerance}"]
    raise unsupported(VENDOR, source)


def _radius(value: str, source: str, video: bool) -> list[str]:
    if value == "max":
        return ["r-max"]
    corners = value.split(":")
    # Cloudinary's 1-4 values run like CSS's: tl, tr, br, bl with the missing ones mirrored.
    spread = {1: (0, 0, 0, 0), 2: (0, 1, 0, 1), 3: (0, 1, 2, 1), 4: (0, 1, 2, 3)}
    if len(corners) not in spread:
        raise InvalidRequest(f"Invalid Cloudinary radius {source!r}")
    if len(corners) == 1:
        return [f"r-{value}"]
    return ["r-" + "_".join(corners[i] for i in spread[len(corners)])]


def _border(value: str, source: str, video: bool) -> list[str]:
    match = re.fullmatch(r"(\d+)px_solid_(.+)", value)
    if match is None:
        raise unsupported(VENDOR, source, "only bo_<width>px_solid_<colour> is mapped")
    return [f"b-{match.group(1)}_{_colour(match.group(2), source)}"]


def _angle(value: str, source: str, video: bool) -> list[str]:
    if value == "hflip":
        return ["fl-h"]
    if value == "vflip":
        return ["fl-v"]
    if number(value) is None:
        raise unsupported(VENDOR, source)
    return [f"rt-{signed(value)}"]


def _flag(value: str, source: str, video: bool) -> list[str]:
    name, _, mode = value.partition(":")
    if name != "progressive" or mode not in ("", "steep", "semi", "none"):
        raise unsupported(VENDOR, source)
    return ["pr-false" if mode == "none" else "pr-true"]


Handler = Callable[[str, str, bool], list[str]]


def _seconds(key: str) -> Handler:
    def handler(value: str, source: str, video: bool) -> list[str]:
        seconds = number(value)
        if seconds is None:
            raise unsupported(VENDOR, source)
        return [f"{key}-{plain(round(seconds, 2))}"]
    return handler


def _same(key: str) -> Handler:
    """A parameter whose value ImageKit spells the same way (checked when mapped)."""
    def handler(value: str, source: str, video: bool) -> list[str]:
        return [f"{key}-{value}"]
    return handler


def _background(value: str, source: str, video: bool) -> list[str]:
    return [f"bg-{_colour(value, source)}"]


# Cloudinary key → its ImageKit parameters (w, h, ar, c, g, x, y and t are handled apart).
HANDLERS: dict[str, Handler] = {
    "q": _quality,
    "f": _format,
    "e": _effect,
    "r": _radius,
    "bo": _border,
    "b": _background,
    "dpr": _same("dpr"),
    "a": _angle,
    "fl": _flag,
    "z": _same("z"),
    "o": _same("o"),
    "so": _seconds("so"),
    "eo": _seconds("eo"),
    "du": _seconds("du"),
}
