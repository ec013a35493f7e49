"""The compute limit: the bare libvips work of a scenario in a tight loop on every core, no HTTP.

Each worker process sets libvips up as pixelport's pool does (one libvips thread per job, no
operation cache) and repeats the work for a fixed time; images/s of all workers are added up.

- `thumbnail` (the default, the issue's "libvips compute limit"): libvips' own thumbnail,
  `thumbnail_buffer` (shrink-on-load with a factor of two left for the resample) + encode
  with pixelport's encoder settings.
- `render`: pixelport's own render of the scenario's URL (`engine.render`): its largest
  shrink-on-load, as Pillow's draft and sharp's fastShrinkOnLoad do, then the same encode.
  Less work than `thumbnail` for the same output size, so it is the bound that shows what the
  server around the render costs (HTTP, the origin fetch, the cache).

    .venv/bin/python bench/limit.py [--seconds 6] [--rounds 2] [--workers N]
                                    [--pipeline thumbnail|render]             (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

MEDIA = Path(__file__).resolve().parent / "media"

# name -> (input file, width, output format)
OPERATIONS: dict[str, tuple[str, int, str]] = {
    "jpeg-12mp": ("photo-4000x3000.jpg", 300, "jpg"),
    "webp-12mp": ("photo-4000x3000.jpg", 300, "webp"),
    "jpeg-1200": ("photo-1200x900.jpg", 300, "jpg"),
}


def _work(name: str, seconds: float, start_at: float,
          pipeline: str = "thumbnail") -> tuple[int, float]:
    from pixelport.transform.pool import configure_vips

    configure_vips()
    filename, width, fmt = OPERATIONS[name]
    data = (MEDIA / filename).read_bytes()

    once = PIPELINES[pipeline](data, width, fmt)
    once()  # warm up: load the codec libraries
    while time.monotonic() < start_at:  # start every worker at the same moment
        time.sleep(0.001)
    count = 0
    began = time.monotonic()
    deadline = began + seconds
    while time.monotonic() < deadline:
        once()
        count += 1
    return count, time.monotonic() - began


def _thumbnailer(data: bytes, width: int, fmt: str) -> Callable[[], object]:
    """libvips' thumbnail of `data` to `width`, encoded with pixelport's settings."""
    import pyvips

    def thumbnail() -> bytes:
        image = pyvips.Image.thumbnail_buffer(data, width)
        if fmt == "webp":
            return bytes(image.webpsave_buffer(Q=80, effort=4, keep="none"))
        # pixelport's JPEG settings (transform/formats.py): optimised Huffman, no subsampling.
        return bytes(image.jpegsave_buffer(Q=80, optimize_coding=True, subsample_mode="off",
                                           keep="none"))

    return thumbnail


def _renderer(data: bytes, width: int, fmt: str) -> Callable[[], object]:
    """pixelport's render of `w-<width>,q-80,f-<fmt>` (libvips already set up by `_work`)."""
    from pixelport.config import Config
    from pixelport.transform import engine, registry

    config = Config()
    chain = registry.parse(f"w-{width},q-80,f-{fmt}", config.transformations)
    options = engine.RenderOptions("", config.images, config.limits)
    return lambda: engine.render(data, chain, options)


# What the loop repeats (see the module's docstring), by --pipeline name.
PIPELINES: dict[str, Callable[[bytes, int, str], Callable[[], object]]] = {
    "thumbnail": _thumbnailer, "render": _renderer}


def measure(name: str, seconds: float, workers: int, rounds: int = 1,
            pipeline: str = "thumbnail") -> dict[str, Any]:
    """Images/s of `workers` processes repeating operation `name` for `seconds`.

    With several rounds the best one counts: on a shared machine other work only ever slows
    a round down, and the limit is what the machine can do.
    """
    rates = []
    with ProcessPoolExecutor(workers) as pool:
        for _ in range(rounds):
            start_at = time.monotonic() + 1.0
            futures = [pool.submit(_work, name, seconds, start_at, pipeline)
                       for _ in range(workers)]
            results = [f.result() for f in futures]
            rates.append(sum(count / elapsed for count, elapsed in results))
    return {"operation": name, "pipeline": pipeline, "workers": workers, "seconds": seconds,
            "images_per_s": round(max(rates), 2), "rounds": [round(r, 2) for r in rates]}


def main() -> None:
    """Measure every operation and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=1, help="best of this many rounds")
    parser.add_argument("--only", choices=sorted(OPERATIONS), action="append")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="thumbnail")
    args = parser.parse_args()
    out = {name: measure(name, args.seconds, args.workers, args.rounds, args.pipeline)
           for name in args.only or OPERATIONS}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
