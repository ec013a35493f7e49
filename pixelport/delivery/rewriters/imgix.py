"""imgix URLs: `/<endpoint>/<path>?w=300&h=200&fit=crop&crop=faces&auto=format`.

All of imgix's parameters apply at once, so they make one step. The ones mapped are consumed
(they reach neither the origin nor the cache key as query parameters); imgix parameters that
are not mapped answer 400; any other query parameter (`?v=2`) is left for the origin as on a
plain endpoint. Mapped as ImageKit's imgix rewriter documents it, plus `rot`, `flip`,
`border`, `auto=compress` and `facepad`; see docs/migration.md.
"""

from __future__ import annotations

from pixelport.delivery.rewriters.base import (
    QueryPart,
    Rewrite,
    checked,
    colour_name,
    hex_colour,
    number,
    plain,
    query_parts,
    unsupported,
)
from pixelport.errors import InvalidRequest

VENDOR = "imgix"
MAPPED = ("w", "h", "fit", "crop", "ar", "q", "fm", "auto", "dpr", "blur", "rot", "flip", "bg",
          "fill-color", "fill", "border", "orient", "or", "con", "trim", "facepad")
# Added by imgix's SDKs to every URL (their version): no meaning for the image.
IGNORED = ("ixlib",)
# imgix's other rendering parameters: refused rather than passed to the origin unmapped.
KNOWN = ("bri", "exp", "gam", "high", "hue", "invert", "sat", "shad", "sharp", "usm", "usmrad",
         "vib", "mark", "mark-w", "mark-h", "mark-x", "mark-y", "mark-align", "mark-alpha",
         "mark-pad", "mark-scale", "mark-fit", "mark-tile", "mark-base", "mark-rot", "txt",
         "txt-font", "txt-size", "txt-color", "txt-align", "txt-pad", "txt-width", "txt-fit",
         "txt-shad", "txt-clip", "txt-line", "txt-line-color", "txt-lead", "txt-track",
         "blend", "blend-mode", "blend-alpha", "blend-w", "blend-h", "blend-x", "blend-y",
         "blend-align", "blend-crop", "blend-fit", "blend-pad", "blend-size", "blend-color",
         "mask", "mask-bg", "corner-radius", "pad", "pad-top", "pad-bottom", "pad-left",
         "pad-right", "rect", "sepia", "px", "htn", "mono", "duotone", "duotone-alpha",
         "fp-x", "fp-y", "fp-z", "fp-debug", "faceindex", "palette", "colorquant", "cs",
         "lossless", "chromasub", "dl", "dpi", "page", "frame", "max-w", "max-h", "min-w",
         "min-h", "ch", "trim-color", "trim-md", "trim-sd", "trim-tol", "trim-pad",
         "border-radius", "border-radius-inner", "border-top", "border-bottom", "border-left",
         "border-right", "fill-gen-prompt", "bg-remove", "bg-replace", "upscale", "nr", "nrs",
         "skin", "fill-gradient-type", "fill-gradient-cs", "fill-gradient-linear",
         "fill-gradient-radial")

FORMATS = {"jpg": ["f-jpg"], "jpeg": ["f-jpg"], "pjpg": ["f-jpg", "pr-true"], "jp2": ["f-jpg"],
           "png": ["f-png"], "png8": ["f-png"], "png32": ["f-png"], "webp": ["f-webp"],
           "gif": ["f-gif"], "avif": ["f-avif"], "mp4": ["f-mp4"], "webm": ["f-webm"]}
ORIENT = {"0": 0, "1": 0, "6": 90, "3": 180, "8": 270, "90": 90, "180": 180, "270": 270}
SIDES = ("top", "bottom", "left", "right")


def rewrite(segments: list[str], query: str) -> Rewrite:
    """Take imgix's parameters off the query as one step."""
    found: dict[str, QueryPart] = {}
    kept: list[str] = []
    for part in query_parts(query):
        if part.name in MAPPED:
            found[part.name] = part
        elif part.name in IGNORED:
            continue
        elif part.name in KNOWN:
            raise unsupported(VENDOR, f"{part.name}={part.value}")
        else:
            kept.append(part.raw)
    return Rewrite(",".join(step(found)), segments, "&".join(kept))


def _source(part: QueryPart) -> str:
    return f"imgix parameter {part.name}={part.value!r}"


def step(found: dict[str, QueryPart]) -> list[str]:
    """imgix's parameters (by name) as one ImageKit step's parameters."""
    out: list[str] = []
    for key in ("w", "h"):
        if key in found:
            out += checked(_source(found[key]), [f"{key}-{found[key].value}"])
    if "ar" in found:
        part = found["ar"]
        width, colon, height = part.value.partition(":")
        if not colon or number(width) is None or number(height) is None:
            raise InvalidRequest(f"Invalid {_source(part)}: expected <w>:<h>")
        out += checked(_source(part), [f"ar-{width}-{height}"])
    out += _fit(found)
    for key, handler in HANDLERS.items():
        if key in found:
            out += checked(_source(found[key]), handler(found[key], found))
    return checked("imgix parameters", out)


def _fit(found: dict[str, QueryPart]) -> list[str]:
    """fit (default clip), crop, fill, fill-color/bg and facepad together."""
    part = found.get("fit")
    fit = part.value if part is not None else "clip"
    boxed = ("w" in found and "h" in found) or ("ar" in found and ("w" in found or "h" in found))
    if fit == "clip":  # fit inside, enlarging if need be
        return ["c-at_max_enlarge"] if boxed or part is not None else []
    if fit == "max":
        return ["c-at_max"]
    if fit == "scale":
        return ["c-force"]
    if fit == "crop":
        return _crop_focus(found)
    if fit == "min":  # crop to the ratio, never beyond the original's size
        return ["c-maintain_ratio_no_enlarge", *_crop_focus(found)]
    if fit in ("fill", "fillmax"):
        fill = found.get("fill")
        out = ["cm-pad_resize" if fit == "fill" else "cm-pad_resize_no_enlarge"]
        if fill is not None and fill.value == "blur":
            out.append("bg-blurred")
        elif fill is not None and fill.value != "solid":
            raise unsupported(VENDOR, f"fill={fill.value}")
        return out
    if fit == "facearea":
        out = ["fo-face"]
        if "facepad" in found:
            pad = number(found["facepad"].value)
            if pad is None or pad <= 0:
                raise InvalidRequest(f"Invalid {_source(found['facepad'])}")
            out.append(f"z-{plain(round(1 / pad, 4))}")
        return out
    assert part is not None
    raise unsupported(VENDOR, f"fit={fit}")


def _crop_focus(found: dict[str, QueryPart]) -> list[str]:
    part = found.get("crop")
    if part is None:
        return []
    values = [v.strip() for v in part.value.split(",") if v.strip()]
    if "faces" in values:
        return ["fo-face"]
    if "entropy" in values or "edges" in values:
        return ["fo-auto"]
    if values == ["center"]:
        return ["fo-center"]
    vertical = [v for v in values if v in ("top", "bottom")]
    horizontal = [v for v in values if v in ("left", "right")]
    if (not values or len(vertical) > 1 or len(horizontal) > 1
            or len(vertical) + len(horizontal) != len(values)):
        raise unsupported(VENDOR, f"crop={part.value}")
    return ["fo-" + "_".join(vertical + horizontal)]


def _colour(text: str, source: str) -> str:
    found = colour_name(text) or hex_colour(text.lstrip("#"), alpha_first=True)
    if found is None:
        raise InvalidRequest(f"Invalid imgix colour in {source}")
    return found


def _quality(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    return [f"q-{part.value}"]


def _format(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    if part.value not in FORMATS:
        raise unsupported(VENDOR, f"fm={part.value}")
    return FORMATS[part.value]


def _auto(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    out: list[str] = []
    for value in (v.strip() for v in part.value.split(",") if v.strip()):
        if value == "format":
            if "fm" not in found:  # an explicit fm wins, as on imgix
                out.append("f-auto")
        elif value == "compress":
            if "q" not in found:  # imgix's compression default
                out.append("q-45")
        else:
            raise unsupported(VENDOR, f"auto={value}")
    return out


def _blur(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    strength = number(part.value)
    if strength is None or not 0 <= strength <= 2000:
        raise InvalidRequest(f"Invalid {_source(part)}: expected 0-2000")
    # imgix 0-2000 → ImageKit's bl 1-100, as ImageKit maps it (blur=100 → bl-5).
    return [f"bl-{max(1, round(strength / 20))}"] if strength else []


def _rotate(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    angle = number(part.value)
    if angle is None or angle != int(angle) or int(angle) % 90:
        raise unsupported(VENDOR, f"rot={part.value}", "only multiples of 90 are mapped")
    angle = int(angle) % 360
    return [f"rt-N{angle}"] if angle else []  # imgix turns counter-clockwise


def _orient(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    if part.value not in ORIENT:
        raise unsupported(VENDOR, f"{part.name}={part.value}")
    return [f"rt-{ORIENT[part.value]}"] if ORIENT[part.value] else []


def _flip(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    flips = {"h": "h", "v": "v", "hv": "h_v", "vh": "h_v"}
    if part.value not in flips:
        raise unsupported(VENDOR, f"flip={part.value}")
    return [f"fl-{flips[part.value]}"]


def _background(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    if part.name == "bg" and "fill-color" in found:
        return []  # fill-color wins for the padding
    if "fill" in found and found["fill"].value == "blur" and found.get("fit") is not None:
        return []  # the padding is the blurred image
    return [f"bg-{_colour(part.value, _source(part))}"]


def _border(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    size, comma, colour = part.value.partition(",")
    if not comma or number(size) is None:
        raise InvalidRequest(f"Invalid {_source(part)}: expected <size>,<colour>")
    return [f"b-{size}_{_colour(colour, _source(part))}"]


def _contrast(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    return ["e-contrast"] if part.value not in ("", "0") else []


def _trim(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    if part.value not in ("auto", "color"):
        raise unsupported(VENDOR, f"trim={part.value}")
    return ["t-true"]


def _dpr(part: QueryPart, found: dict[str, QueryPart]) -> list[str]:
    return [f"dpr-{part.value}"]


HANDLERS = {
    "q": _quality,
    "fm": _format,
    "auto": _auto,
    "dpr": _dpr,
    "blur": _blur,
    "rot": _rotate,
    "orient": _orient,
    "or": _orient,
    "flip": _flip,
    "fill-color": _background,
    "bg": _background,
    "border": _border,
    "con": _contrast,
    "trim": _trim,
}
