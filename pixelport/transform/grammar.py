"""The `tr` string grammar: `:` chains steps, `,` separates parameters, `key-value` pairs.

The key is everything before the first `-`; the value may itself hold `-` (`ar-4-3`). This
module only splits; the meaning of each key lives in `transform/params/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelport.errors import InvalidRequest

MAX_LENGTH = 4096
_KEY_RE = re.compile(r"^[a-z][a-z0-9]*$")


@dataclass(frozen=True)
class Param:
    """One `key-value` parameter as written."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}-{self.value}"


RawStep = tuple[Param, ...]


def split_chain(text: str) -> list[RawStep]:
    """Split a transformation string into steps of parameters; empty pieces are skipped."""
    if len(text) > MAX_LENGTH:
        raise InvalidRequest(f"The transformation string is longer than {MAX_LENGTH} characters")
    steps: list[RawStep] = []
    for step_text in text.split(":"):
        params = tuple(parse_param(p) for p in step_text.split(",") if p.strip())
        if params:
            steps.append(params)
    return steps


def parse_param(text: str) -> Param:
    """`w-300` → Param("w", "300"); refuses a piece with no key or no value."""
    text = text.strip()
    key, sep, value = text.partition("-")
    if not sep or not value:
        raise InvalidRequest(f"Invalid transformation parameter {text!r}: expected key-value")
    if not _KEY_RE.match(key):
        raise InvalidRequest(f"Invalid transformation parameter key {key!r} in {text!r}")
    return Param(key, value)
