"""What every URL rewriter shares: its result, the query's parts, checked ImageKit parameters.

A rewriter is a function of the request target after the endpoint's identifier (the raw,
percent-encoded path segments and the raw query string, `ik-s`/`ik-t` already split off) to a
`Rewrite`: pixelport's own transformation chain (ImageKit syntax), the file's path segments,
and the query left for the origin. Whatever it cannot map is `400 EINVALID` naming the
vendor's parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from pixelport.errors import InvalidRequest
from pixelport.transform import registry
from pixelport.transform.colour_names import NAMED
from pixelport.transform.grammar import parse_param


@dataclass(frozen=True)
class Rewrite:
    """A request target in pixelport's own terms."""

    chain: str  # ImageKit transformation string ("" for none), applied before any `tr`
    segments: list[str]  # the raw path segments after the endpoint (a `tr:` one may lead)
    query: str  # the raw query string, less the parameters the rewriter consumed


Rewriter = Callable[[list[str], str], Rewrite]


@dataclass(frozen=True)
class QueryPart:
    """One `name=value` of a query string: decoded, and as sent."""

    name: str
    value: str
    raw: str


def query_parts(query: str) -> list[QueryPart]:
    """The query's parameters in order (blank pieces skipped)."""
    parts: list[QueryPart] = []
    for raw in query.split("&"):
        if not raw:
            continue
        name, _, value = raw.partition("=")
        try:
            parts.append(QueryPart(_unquote(name), _unquote(value), raw))
        except UnicodeDecodeError:
            raise InvalidRequest("The query string is not valid UTF-8") from None
    return parts


def _unquote(text: str) -> str:
    return unquote_plus(text, errors="strict")


def checked(source: str, params: list[str]) -> list[str]:
    """`params` (ImageKit `key-value` strings) if they make a valid step, else 400 naming
    `source`, the vendor's parameter they were made from."""
    try:
        registry.build_step(tuple(parse_param(p) for p in params))
    except InvalidRequest as exc:
        raise InvalidRequest(f"{source}: {exc.message}") from None
    return params


def unsupported(vendor: str, source: str, why: str = "") -> InvalidRequest:
    """The error for a vendor parameter the rewriter does not map."""
    return InvalidRequest(f"{vendor} parameter {source!r} is not supported by pixelport's "
                          f"{vendor} URL rewriter" + (f": {why}" if why else ""))


def signed(text: str) -> str:
    """A number in ImageKit's spelling: `-5` becomes `N5`."""
    return "N" + text[1:] if text.startswith("-") else text


_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")


def number(text: str) -> float | None:
    """A plain decimal number, or None."""
    return float(text) if _NUMBER.match(text) else None


def plain(value: float) -> str:
    """A number without a needless `.0` (`2.0` → `2`, `2.5` → `2.5`)."""
    return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def hex_colour(digits: str, alpha_first: bool = False) -> str | None:
    """`RGB`, `RGBA`, `RRGGBB` or `RRGGBBAA` (alpha 00-FF; `alpha_first`: `ARGB`/`AARRGGBB`,
    imgix's order) → ImageKit's `RRGGBB[AA]` with AA an opacity 00-99 (FF is 99, full
    opacity); None if not hex."""
    if not re.fullmatch(r"[0-9A-Fa-f]+", digits) or len(digits) not in (3, 4, 6, 8):
        return None
    if len(digits) in (3, 4):
        digits = "".join(c * 2 for c in digits)
    if len(digits) == 8 and alpha_first:
        digits = digits[2:] + digits[:2]
    rgb = digits[:6].upper()
    if len(digits) == 6:
        return rgb
    # As ImageKit's rewriters do (rgb:B4F9 → BB44FF60): the alpha as a percentage, capped.
    opacity = min(99, round(int(digits[6:], 16) * 100 / 255))
    return f"{rgb}{opacity:02d}"


def colour_name(text: str) -> str | None:
    """A CSS colour name (any case) as ImageKit spells it, or None."""
    lower = text.lower()
    return lower if lower in NAMED else None
