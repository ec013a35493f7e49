"""Akamai Image & Video Manager URLs: `?imwidth=300`, `?imheight=200` and IMQuery's resize,
`?im=Resize,width=300,height=200` or `?im=Resize=(300,200)`.

ImageKit's Akamai rewriter documents `imwidth` and `imheight`; pixelport adds IMQuery's
`Resize` (with Akamai's `aspect` and `type` options). Each `;`-separated IMQuery
transformation is a step; `imwidth`/`imheight` make a last one. Other IMQuery
transformations (`Crop`, `Rotate`, ...) answer 400. Other query parameters stay for the
origin.
"""

from __future__ import annotations

import re

from pixelport.delivery.rewriters.base import Rewrite, checked, query_parts, unsupported
from pixelport.errors import InvalidRequest

VENDOR = "Akamai"
_NAME = re.compile(r"^([A-Za-z]+)(.*)$")
_PAIR = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
# aspect (fit: inside the box; fill: cover it; ignore: squeeze) and type (normal: up or down;
# downsize: never enlarge; upsize: never shrink, not mapped) → ImageKit's crop strategy.
STRATEGIES = {("fit", "normal"): "at_max_enlarge", ("fit", "downsize"): "at_max",
              ("fill", "normal"): "at_least", ("ignore", "normal"): "force"}


def rewrite(segments: list[str], query: str) -> Rewrite:
    """Take `im`, `imwidth` and `imheight` off the query as steps."""
    steps: list[str] = []
    size: list[str] = []
    kept: list[str] = []
    for part in query_parts(query):
        if part.name == "im":
            steps += [",".join(transformation(text.strip()))
                      for text in part.value.split(";") if text.strip()]
        elif part.name in ("imwidth", "imheight"):
            key = "w" if part.name == "imwidth" else "h"
            size = [p for p in size if not p.startswith(f"{key}-")]
            size += checked(f"Akamai parameter {part.name}={part.value!r}",
                            [f"{key}-{part.value}"])
        else:
            kept.append(part.raw)
    if size:
        steps.append(",".join(size))
    return Rewrite(":".join(steps), segments, "&".join(kept))


def transformation(text: str) -> list[str]:
    """One IMQuery transformation as one ImageKit step's parameters."""
    match = _NAME.match(text)
    if match is None:
        raise InvalidRequest(f"Invalid Akamai IMQuery transformation {text!r}")
    name, rest = match.groups()
    if name != "Resize":
        raise unsupported(VENDOR, f"im={text}", "only Resize is mapped")
    options = _options(rest, text)
    width, height = options.pop("width", None), options.pop("height", None)
    if "size" in options:
        pair = _PAIR.match(options.pop("size"))
        if pair is None:
            raise InvalidRequest(f"Invalid Akamai Resize size in {text!r}: expected (w,h)")
        width, height = pair.groups()
    aspect, kind = options.pop("aspect", "fit"), options.pop("type", "normal")
    if options:
        raise unsupported(VENDOR, f"im={text}", f"option {sorted(options)[0]!r}")
    if width is None and height is None:
        raise InvalidRequest(f"Akamai parameter 'im={text}' needs a width or a height")
    out = [f"w-{width}"] if width is not None else []
    out += [f"h-{height}"] if height is not None else []
    if width is not None and height is not None:
        strategy = STRATEGIES.get((aspect, kind))
        if strategy is None:
            raise unsupported(VENDOR, f"im={text}", f"aspect={aspect} with type={kind}")
        out.append(f"c-{strategy}")
    elif kind == "downsize":
        out.append("c-at_max")
    elif kind != "normal":
        raise unsupported(VENDOR, f"im={text}", f"type={kind}")
    return checked(f"Akamai parameter im={text!r}", out)


def _options(rest: str, text: str) -> dict[str, str]:
    """`=(300,200)` → size; `,width=300,height=200` → each option (commas inside
    parentheses belong to the value)."""
    if rest.startswith("="):
        return {"size": rest[1:].strip()}
    if not rest:
        return {}
    if not rest.startswith(","):
        raise InvalidRequest(f"Invalid Akamai IMQuery transformation {text!r}")
    found: dict[str, str] = {}
    depth, start = 0, 1
    pieces: list[str] = []
    for index, char in enumerate(rest[1:] + ",", start=1):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(rest[start:index])
            start = index + 1
    for piece in pieces:
        key, sep, value = piece.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidRequest(f"Invalid Akamai option {piece!r} in {text!r}")
        found[key.strip()] = value.strip()
    return found
