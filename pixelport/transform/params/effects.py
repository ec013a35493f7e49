"""bl, o, e-*, cr, t, rt, fl, r, bg, b: what happens to the pixels."""

from __future__ import annotations

from collections.abc import Callable

from pixelport.errors import InvalidRequest
from pixelport.transform import colours
from pixelport.transform.grammar import Param
from pixelport.transform.params.values import (
    bounded,
    choice,
    expression,
    integer,
    number,
    options,
)
from pixelport.transform.step import (
    Background,
    Border,
    ColourReplace,
    Gradient,
    Radius,
    Shadow,
    Step,
    Unsharp,
)

# Effects ImageKit offers that need generative or detection models.
AI_EFFECTS = ("bgremove", "removedotbg", "upscale", "retouch", "genvar", "dropshadow",
              "changebg", "edit")
_DIRECTIONS = {"top": 0, "top_right": 45, "right": 90, "bottom_right": 135, "bottom": 180,
               "bottom_left": 225, "left": 270, "top_left": 315}


def blur(param: Param, step: Step) -> None:
    """bl-1..100: Gaussian blur."""
    step.blur = bounded(param, 1, 100)


def opacity(param: Param, step: Step) -> None:
    """o-0..100: opacity in percent."""
    step.opacity = bounded(param, 0, 100)


def effect(param: Param, step: Step) -> None:
    """e-<name>[-<options>]: grayscale, contrast, sharpen, usm, shadow, gradient."""
    name, _, rest = param.value.partition("-")
    handler = EFFECTS.get(name)
    if handler is None:
        if name in AI_EFFECTS:
            raise InvalidRequest(f"{param} is an AI transformation, not supported yet")
        if name in ("distort", "colorize"):
            raise InvalidRequest(f"{param} is not supported yet")
        raise InvalidRequest(f"Unknown effect {name!r} in {param}")
    handler(param, rest, step)


def _grayscale(param: Param, rest: str, step: Step) -> None:
    _no_options(param, rest)
    step.grayscale = True


def _contrast(param: Param, rest: str, step: Step) -> None:
    _no_options(param, rest)
    step.contrast = True


def _sharpen(param: Param, rest: str, step: Step) -> None:
    step.sharpen = bounded(param, 1, 100, rest) if rest else 50.0


def _unsharp(param: Param, rest: str, step: Step) -> None:
    parts = rest.split("-")
    if len(parts) != 4:
        raise InvalidRequest(f"{param} needs radius-sigma-amount-threshold")
    radius, sigma, amount, threshold = (number(param, p) for p in parts)
    if radius < 0 or not 0 < sigma <= 50 or not 0 <= amount <= 20 or not 0 <= threshold <= 1:
        raise InvalidRequest(f"{param}: values out of range")
    step.unsharp = Unsharp(radius, sigma, amount, threshold)


def _shadow(param: Param, rest: str, step: Step) -> None:
    found = options(param, rest) if rest else {}
    unknown = set(found) - {"bl", "st", "x", "y"}
    if unknown:
        raise InvalidRequest(f"Unknown option {sorted(unknown)[0]!r} in {param}")
    step.shadow = Shadow(
        blur=bounded(param, 0, 15, found["bl"]) if "bl" in found else 10,
        saturation=bounded(param, 0, 100, found["st"]) if "st" in found else 30,
        x=bounded(param, -100, 100, found["x"]) if "x" in found else 2,
        y=bounded(param, -100, 100, found["y"]) if "y" in found else 2,
    )


def _gradient(param: Param, rest: str, step: Step) -> None:
    found = options(param, rest) if rest else {}
    unknown = set(found) - {"ld", "from", "to", "sp"}
    if unknown:
        raise InvalidRequest(f"Unknown option {sorted(unknown)[0]!r} in {param}")
    angle = 180.0
    if "ld" in found:
        angle = (float(_DIRECTIONS[found["ld"]]) if found["ld"] in _DIRECTIONS
                 else bounded(param, 0, 359, found["ld"]))
    step.gradient = Gradient(
        angle=angle,
        start=colours.parse(found["from"], str(param)) if "from" in found else colours.WHITE,
        end=colours.parse(found["to"], str(param)) if "to" in found else colours.TRANSPARENT,
        stop=expression(param, found["sp"]) if "sp" in found else None,
    )


def _no_options(param: Param, rest: str) -> None:
    if rest:
        raise InvalidRequest(f"{param} takes no options")


EFFECTS: dict[str, Callable[[Param, str, Step], None]] = {
    "grayscale": _grayscale, "contrast": _contrast, "sharpen": _sharpen, "usm": _unsharp,
    "shadow": _shadow, "gradient": _gradient,
}


def colour_replace(param: Param, step: Step) -> None:
    """cr-<to>[_<tolerance>[_<from>]]."""
    parts = param.value.split("_")
    if not 1 <= len(parts) <= 3:
        raise InvalidRequest(f"Invalid {param}: expected cr-<to>[_<tolerance>[_<from>]]")
    step.colour_replace = ColourReplace(
        target=colours.parse(parts[0], str(param)),
        tolerance=integer(param, 0, 100, parts[1]) if len(parts) > 1 else 35,
        source=colours.parse(parts[2], str(param)) if len(parts) > 2 else None,
    )


def trim(param: Param, step: Step) -> None:
    """t-true (threshold 10) or t-1..99; t-false turns trimming off."""
    if param.value == "true":
        step.trim = 10
    elif param.value == "false":
        step.trim = None
    else:
        step.trim = integer(param, 1, 99)


def rotate(param: Param, step: Step) -> None:
    """rt-<degrees> clockwise, rt-N<degrees> counter-clockwise, rt-auto (EXIF, always on)."""
    if param.value == "auto":
        step.rotate = None
        return
    step.rotate = bounded(param, -360, 360) % 360


def flip(param: Param, step: Step) -> None:
    """fl-h | v | h_v | v_h."""
    value = choice(param, ("h", "v", "h_v", "v_h"))
    step.flip = "h_v" if value == "v_h" else value


def radius(param: Param, step: Step) -> None:
    """r-<px>, r-max, or r-<tl>_<tr>_<br>_<bl>."""
    if param.value == "max":
        step.radius = Radius(None, maximum=True)
        return
    parts = param.value.split("_")
    if len(parts) == 1:
        value = expression(param)
        step.radius = Radius((value, value, value, value))
    elif len(parts) == 4:
        tl, tr, br, bl = (expression(param, p) for p in parts)
        step.radius = Radius((tl, tr, br, bl))
    else:
        raise InvalidRequest(f"Invalid {param}: expected r-<px>, r-max or four corners")


def background(param: Param, step: Step) -> None:
    """bg-<colour> | blurred[_<amount>|_auto][_N<brightness>] | dominant."""
    value = param.value
    if value == "dominant":
        step.background = Background(dominant=True)
        return
    if value.startswith("blurred"):
        parts = value.split("_")[1:]
        amount: int | None = None
        brightness = 0
        if parts and parts[0] not in ("auto",) and not parts[0].startswith("N"):
            amount = integer(param, 0, 100, parts.pop(0))
        elif parts and parts[0] == "auto":
            parts.pop(0)
        if parts:
            brightness = integer(param, -255, 255, parts.pop(0))
        if parts or value.split("_")[0] != "blurred":
            raise InvalidRequest(f"Invalid {param}")
        step.background = Background(blurred=True, blur_amount=amount, brightness=brightness)
        return
    if value.startswith(("gradient_dominant", "genfill")):
        raise InvalidRequest(f"{param} is not supported yet")
    step.background = Background(colour=colours.parse(value, str(param)))


def border(param: Param, step: Step) -> None:
    """b-<width>_<colour> (width may be an expression) or the older b-<width>-<colour>."""
    value = param.value
    if "-" in value and "_" not in value:
        width_text, colour_text = value.split("-", 1)
    else:
        width_text, _, colour_text = value.rpartition("_")
    if not width_text or not colour_text:
        raise InvalidRequest(f"Invalid {param}: expected b-<width>_<colour>")
    step.border = Border(expression(param, width_text), colours.parse(colour_text, str(param)))


HANDLERS = {
    "bl": blur, "o": opacity, "e": effect, "cr": colour_replace, "t": trim, "rt": rotate,
    "fl": flip, "r": radius, "bg": background, "b": border,
}
