"""A typed, validated transformation step, built from raw parameters by the handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelport.transform.grammar import Param

CROPS = ("maintain_ratio", "force", "at_max", "at_max_enlarge", "at_least",
         "maintain_ratio_no_enlarge")


@dataclass
class Step:
    """What one chain step asks for. None means 'not given'."""

    width: float | None = None  # pixels (>= 1) or a fraction of the input (0 < w < 1)
    height: float | None = None
    crop: str | None = None  # one of CROPS
    quality: int | None = None
    format: str | None = None  # auto | jpg | png | webp | avif | gif | svg | orig
    original: bool = False  # orig-true: serve the original untouched
    params: list[Param] = field(default_factory=list)

    @property
    def resizes(self) -> bool:
        """Whether the step changes the geometry."""
        return self.width is not None or self.height is not None
