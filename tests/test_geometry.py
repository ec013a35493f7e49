"""Output sizes per crop strategy, upscale and downscale, without touching pixels."""

from __future__ import annotations

import pytest

from pixelport.transform import registry
from pixelport.transform.geometry import plan


@pytest.mark.parametrize(("size", "tr", "expected"), [
    ((800, 600), "w-400", (400, 300)),
    ((800, 600), "h-300", (400, 300)),
    ((800, 600), "w-1600", (1600, 1200)),          # maintain_ratio enlarges
    ((800, 600), "w-0.5", (400, 300)),
    ((800, 600), "w-0.5,h-0.5", (400, 300)),
    ((800, 600), "w-300,h-300", (300, 300)),        # cover + centre crop
    ((800, 600), "w-300,h-300,c-maintain_ratio", (300, 300)),
    ((800, 600), "w-300,h-300,c-force", (300, 300)),
    ((800, 600), "w-400,h-400,c-at_max", (400, 300)),
    ((800, 600), "w-2000,h-2000,c-at_max", (800, 600)),   # never enlarges
    ((800, 600), "w-2000,c-at_max", (800, 600)),
    ((800, 600), "w-1600,h-1600,c-at_max_enlarge", (1600, 1200)),
    ((800, 600), "w-400,h-400,c-at_least", (533, 400)),
    ((800, 600), "w-1000,h-1000,c-at_least", (1333, 1000)),
    ((800, 600), "w-400,h-200,c-maintain_ratio_no_enlarge", (400, 200)),
    ((800, 600), "w-1000,h-500,c-maintain_ratio_no_enlarge", (800, 400)),
    ((100, 50), "w-200,h-200", (200, 200)),
])
def test_plan(size: tuple[int, int], tr: str, expected: tuple[int, int]) -> None:
    resize = plan(*size, registry.parse(tr)[0])
    assert resize is not None
    assert (resize.out_width, resize.out_height) == expected


def test_no_size_means_no_resize() -> None:
    assert plan(800, 600, registry.parse("q-50")[0]) is None
