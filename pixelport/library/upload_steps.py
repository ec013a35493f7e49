"""An upload's `transformation` field: `pre` (applied to the file before it is stored) and
`post` (results made right after, so the first visitor finds them cached).

`{"pre": "w-2000,h-2000,c-at_max", "post": [{"type": "transformation", "value": "w-300"},
{"type": "thumbnail", "value": "w-100,h-100"}]}`. Video post-processing (`gif-to-video`,
`abs` streaming) waits for the video issue and is refused with 400 until then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import ApiError, PixelportError
from pixelport.transform import engine, registry
from pixelport.transform.step import ChainItem


@dataclass(frozen=True)
class UploadSteps:
    """The parsed `transformation` field."""

    pre: str | None = None
    post: tuple[str, ...] = field(default=())


def parse(text: str | None, named: dict[str, str]) -> UploadSteps:
    """Check the field (400 on anything malformed or unsupported)."""
    if not text:
        return UploadSteps()
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError("transformation must be a JSON object {pre, post}.") from None
    if not isinstance(value, dict) or set(value) - {"pre", "post"}:
        raise ApiError("transformation may hold only pre and post.")
    pre = value.get("pre")
    if pre is not None and (not isinstance(pre, str) or not pre):
        raise ApiError("transformation.pre must be a transformation string.")
    post: list[str] = []
    for step in value.get("post") or []:
        if not isinstance(step, dict):
            raise ApiError("transformation.post must list {type, value} objects.")
        kind = step.get("type")
        if kind in ("gif-to-video", "abs"):
            raise ApiError(f"transformation.post type {kind} (video) is not supported yet.")
        if kind not in ("transformation", "thumbnail") or not isinstance(step.get("value"),
                                                                          str):
            raise ApiError("transformation.post steps are {type: transformation|thumbnail, "
                           "value: \"w-300,...\"}.")
        post.append(step["value"])
    for chain in ([pre] if pre else []) + post:
        _chain(chain, named)
    return UploadSteps(pre, tuple(post))


def _chain(text: str, named: dict[str, str]) -> list[ChainItem]:
    try:
        return registry.parse(text, named)
    except PixelportError as exc:
        raise ApiError(f"transformation {text!r}: {exc.message}") from None


def apply_pre(source: Path | bytes, chain: str, named: dict[str, str], images: ImagesConfig,
              limits: LimitsConfig) -> Path | bytes:
    """The uploaded file transformed (blocking; in a thread), in its format unless the chain
    names one: a file is rewritten in place, bytes in memory are replaced."""
    steps = _chain(chain, named)
    options = engine.RenderOptions("", replace(images, best_format=False), limits)
    data = source if isinstance(source, bytes) else source.read_bytes()
    try:
        rendered = engine.render(data, steps, options)
    except PixelportError as exc:
        raise ApiError(f"transformation.pre could not be applied: {exc.message}") from None
    if isinstance(source, bytes):
        return rendered.data
    source.write_bytes(rendered.data)
    return source


__all__ = ["Any", "UploadSteps", "apply_pre", "parse"]
