"""Shared value parsers for parameter handlers."""

from __future__ import annotations

import re

from pixelport.errors import InvalidRequest
from pixelport.transform.grammar import Param

_NUMBER_RE = re.compile(r"^N?\d+(\.\d+)?$|^N?\.\d+$")


def number(param: Param) -> float:
    """A decimal number; a leading `N` makes it negative (ImageKit's spelling of minus)."""
    text = param.value
    if not _NUMBER_RE.match(text):
        raise InvalidRequest(f"Invalid value for {param.key!r}: {param}")
    return -float(text[1:]) if text.startswith("N") else float(text)


def integer(param: Param, low: int, high: int) -> int:
    """An integer within [low, high]."""
    value = number(param)
    if value != int(value) or not low <= value <= high:
        raise InvalidRequest(f"{param} must be a whole number from {low} to {high}")
    return int(value)


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
