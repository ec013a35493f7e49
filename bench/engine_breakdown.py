"""Where pixelport's image CPU goes, next to the bare libvips limit and the cheaper variants
that docs/performance.md recommends. In-process, one thread, no HTTP; CPU time per image.

    .venv/bin/python bench/engine_breakdown.py [--rounds 5]

A  engine.render as pixelport runs it now (w-300,q-80,f-jpg)
L  the limit of bench/limit.py: thumbnail_buffer(300) + encode
B  what engine.render did in libvips before profiling: thumbnail (forced size) +
   icc_transform (also sRGB to sRGB) + copy_memory + encode
B2 B without the icc_transform (the profile is already sRGB)
C  B without the sRGB->sRGB icc_transform and copy_memory
D  C with the largest JPEG shrink-on-load (what PIL's draft and sharp's fastShrinkOnLoad do)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips

from pixelport.config import Config
from pixelport.transform import engine, registry
from pixelport.transform.pool import configure_vips

MEDIA = Path(__file__).resolve().parent / "media"


def cpu_ms(fns: dict[str, Callable[[], object]], count: int,
           rounds: int) -> dict[str, float]:
    """Best-of-`rounds` CPU milliseconds per call of each function, measured round-robin so
    that other work on a shared machine slows every variant alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for label, fn in fns.items():
            began = time.process_time()
            for _ in range(count):
                fn()
            best[label] = min(best[label], (time.process_time() - began) * 1000 / count)
    return best


def encode(image: Any) -> bytes:
    """pixelport's JPEG settings (transform/formats.py)."""
    return bytes(image.jpegsave_buffer(Q=80, optimize_coding=True, subsample_mode="off",
                                       keep="none"))


def variants(data: bytes) -> dict[str, Callable[[], object]]:
    """The measured pipelines for one input."""
    config = Config()
    chain = registry.parse("w-300,q-80,f-jpg", config.transformations)
    options = engine.RenderOptions("", config.images, config.limits)
    header = pyvips.Image.new_from_buffer(data, "")
    height = round(header.height * 300 / header.width)
    shrink = next(s for s in (8, 4, 2, 1) if header.width // s >= 300)

    def thumb() -> Any:
        return pyvips.Image.thumbnail_buffer(data, 300, height=height, size="force")

    return {
        "A engine.render": lambda: engine.render(data, chain, options),
        "L limit (thumbnail_buffer + encode)": lambda: encode(
            pyvips.Image.thumbnail_buffer(data, 300)),
        "B thumbnail + icc_transform + copy_memory + encode": lambda: encode(
            thumb().icc_transform("srgb", embedded=True).copy_memory()),
        "B2 thumbnail + copy_memory + encode (no icc_transform)": lambda: encode(
            thumb().copy_memory()),
        "C thumbnail + encode (no sRGB->sRGB transform, no copy)": lambda: encode(thumb()),
        f"D jpegload shrink={shrink} + thumbnail_image + encode": lambda: encode(
            pyvips.Image.new_from_buffer(data, "", shrink=shrink, access="sequential")
            .thumbnail_image(300, height=height, size="force")),
    }


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    configure_vips()
    for name, count in (("photo-1200x900.jpg", 20), ("photo-4000x3000.jpg", 3)):
        data = (MEDIA / name).read_bytes()
        print(f"{name} -> 300 px JPEG q80 (CPU ms per image, best of {args.rounds})")
        results = cpu_ms(variants(data), count, args.rounds)
        reference = next(iter(results.values()))
        for label, ms in results.items():
            print(f"  {label:58} {ms:7.2f}  ({ms / reference:4.0%} of A)")


if __name__ == "__main__":
    main()
