"""Shared value parsers for parameter handlers."""

from __future__ import annotations

import re

from pixelport.errors import InvalidRequest
from pixelport.transform import expr
from pixelport.transform.grammar import Param

_NUMBER_RE = re.compile(r"^N?\d+(\.\d+)?$|^N?\.\d+$")


def number(param: Param, text: str | None = None) -> float:
    """A decimal number; a leading `N` makes it negative (ImageKit's spelling of minus)."""
    text = param.value if text is None else text
    if not _NUMBER_RE.match(text):
        raise InvalidRequest(f"Invalid value for {param.key!r}: {param}")
    return -float(text[1:]) if text.startswith("N") else float(text)


def integer(param: Param, low: int, high: int, text: str | None = None) -> int:
    """An integer within [low, high]."""
    value = number(param, text)
    if value != int(value) or not low <= value <= high:
        raise InvalidRequest(f"{param} must be a whole number from {low} to {high}")
    return int(value)


def bounded(param: Param, low: float, high: float, text: str | None = None) -> float:
    """A number within [low, high]."""
    value = number(param, text)
    if not low <= value <= high:
        raise InvalidRequest(f"{param} must be between {low:g} and {high:g}")
    return value


def boolean(param: Param) -> bool:
    """`true` or `false`."""
    if param.value not in ("true", "false"):
        raise InvalidRequest(f"{param} must be {param.key}-true or {param.key}-false")
    return param.value == "true"


def choice(param: Param, choices: tuple[str, ...]) -> str:
    """One of `choices`."""
    if param.value not in choices:
        raise InvalidRequest(f"Invalid value in {param}: expected one of {', '.join(choices)}")
    return param.value


def expression(param: Param, text: str | None = None) -> expr.Expr:
    """A number or an arithmetic expression (`iw_div_2`)."""
    return expr.parse(param.value if text is None else text, str(param))


def options(param: Param, text: str) -> dict[str, str]:
    """`bl-10_st-30_x-2` → {"bl": "10", "st": "30", "x": "2"} for effect sub-options."""
    found: dict[str, str] = {}
    for part in text.split("_"):
        key, sep, value = part.partition("-")
        if not sep or not value:
            raise InvalidRequest(f"Invalid option {part!r} in {param}")
        found[key] = value
    return found
