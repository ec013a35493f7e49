"""Colour values: `RRGGBB`, `RRGGBBAA` (AA is opacity 00-99 per ImageKit), `RGB`, CSS names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelport.errors import InvalidRequest
from pixelport.transform.colour_names import NAMED

_HEX = re.compile(r"^[0-9A-Fa-f]{3}$|^[0-9A-Fa-f]{6}$|^[0-9A-Fa-f]{6}[0-9]{2}$")


@dataclass(frozen=True)
class Colour:
    """An sRGB colour with alpha 0-255."""

    red: int
    green: int
    blue: int
    alpha: int = 255

    @property
    def rgb(self) -> list[float]:
        """The three colour bands."""
        return [float(self.red), float(self.green), float(self.blue)]

    @property
    def rgba(self) -> list[float]:
        """The four bands, alpha last."""
        return [*self.rgb, float(self.alpha)]

    @property
    def opaque(self) -> bool:
        """Whether alpha is full."""
        return self.alpha == 255


BLACK = Colour(0, 0, 0)
WHITE = Colour(255, 255, 255)
TRANSPARENT = Colour(0, 0, 0, 0)



def parse(text: str, what: str) -> Colour:
    """Parse a colour; `what` names the parameter for error messages."""
    if text in NAMED:
        text = NAMED[text]
    if not _HEX.match(text):
        raise InvalidRequest(f"Invalid colour {text!r} in {what}")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    red, green, blue = (int(text[i:i + 2], 16) for i in (0, 2, 4))
    alpha = 255
    if len(text) == 8:
        alpha = round(int(text[6:]) * 255 / 99)
    return Colour(red, green, blue, alpha)
