"""The `tr` string grammar: `:` chains steps, `,` separates parameters, `key-value` pairs.

The key is everything before the first `-`; the value may itself hold `-` (`ar-4-3`). A layer,
`l-<type>,…,l-end`, is one parameter of its step whatever it holds (its own `:`-chained steps
and nested layers): Param("l", "<type>,…"). This module only splits; the meaning of each key
lives in `transform/params/` (layers: `transform/layer.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelport.errors import InvalidRequest

MAX_LENGTH = 4096
MAX_LAYER_DEPTH = 3  # ImageKit nests layers at most 3 deep
_KEY_RE = re.compile(r"^[a-z][a-z0-9]*$")
_PIECE = re.compile(r"[^,:]+|[,:]")
# ImageKit retired its first overlay syntax (oi-, ot-, oh-…) in November 2023: 400 since.
RETIRED = ("oi", "ot", "ote", "oit", "oh", "ow", "ox", "oy", "ofo", "otc", "otf", "ots", "otw",
           "obg", "oa", "otp", "oib", "oif", "otb")


@dataclass(frozen=True)
class Param:
    """One `key-value` parameter as written."""

    key: str
    value: str

    def __str__(self) -> str:
        if self.key == "l":
            return f"l-{self.value},l-end"
        return f"{self.key}-{self.value}"


RawStep = tuple[Param, ...]


def split_chain(text: str) -> list[RawStep]:
    """Split a transformation string into steps of parameters; empty pieces are skipped."""
    if len(text) > MAX_LENGTH:
        raise InvalidRequest(f"The transformation string is longer than {MAX_LENGTH} characters")
    if "l-" not in text and not _retired_in(text):  # the common case, without layers
        steps: list[RawStep] = []
        for step_text in text.split(":"):
            params = tuple(parse_param(p) for p in step_text.split(",") if p.strip())
            if params:
                steps.append(params)
        return steps
    return _split_layered(text, 0, 0)


def _retired_in(text: str) -> bool:
    """Whether a retired overlay key may be in `text` (then the slow path names it)."""
    return any(f"{key}-" in text for key in RETIRED)


def _split_layered(text: str, offset: int, depth: int) -> list[RawStep]:
    """Split a chain that holds layers; `offset` places `text` in the whole string, for the
    positions errors name."""
    steps: list[RawStep] = []
    current: list[Param] = []
    pieces = [(m.group(), m.start()) for m in _PIECE.finditer(text)]
    index = 0
    while index < len(pieces):
        piece, start = pieces[index]
        index += 1
        if piece == ":":
            if current:
                steps.append(tuple(current))
            current = []
            continue
        if piece == "," or not piece.strip():
            continue
        position = offset + start + 1
        try:
            param = parse_param(piece)
        except InvalidRequest as error:
            raise InvalidRequest(f"{error} at position {position}") from None
        if param.key in RETIRED:
            raise InvalidRequest(f"{param} at position {position}: the overlay syntax "
                                 "oi-/ot-/o...- was retired; write layers as l-image,i-<path>,"
                                 "...,l-end or l-text,i-<text>,...,l-end")
        if param.key == "l" and param.value == "end":
            raise InvalidRequest(f"l-end at position {position} closes no layer")
        if param.key == "l":
            if depth + 1 > MAX_LAYER_DEPTH:
                raise InvalidRequest(f"l-{param.value} at position {position}: layers nest at most "
                                     f"{MAX_LAYER_DEPTH} deep")
            end = _layer_end(pieces, index)
            if end is None:
                raise InvalidRequest(f"The layer l-{param.value} at position {position} is "
                                     "not closed with l-end")
            body_start = start + len(piece)
            body = text[body_start:pieces[end][1]]
            # Checked here, so a nested layer's errors name their place in the whole string.
            _split_layered(body, offset + body_start, depth + 1)
            param = Param("l", param.value.strip() + "," + body.strip(",:"))
            index = end + 1
        current.append(param)
    if current:
        steps.append(tuple(current))
    return steps


def _layer_end(pieces: list[tuple[str, int]], index: int) -> int | None:
    """The index of the `l-end` piece that closes the layer whose body starts at `index`."""
    depth = 1
    for at in range(index, len(pieces)):
        piece = pieces[at][0].strip()
        if piece == "l-end":
            depth -= 1
            if depth == 0:
                return at
        elif piece.startswith("l-"):
            depth += 1
    return None


def parse_param(text: str) -> Param:
    """`w-300` → Param("w", "300"); refuses a piece with no key or no value."""
    text = text.strip()
    key, sep, value = text.partition("-")
    if not sep or not value:
        raise InvalidRequest(f"Invalid transformation parameter {text!r}: expected key-value")
    if not _KEY_RE.match(key):
        raise InvalidRequest(f"Invalid transformation parameter key {key!r} in {text!r}")
    return Param(key, value)
