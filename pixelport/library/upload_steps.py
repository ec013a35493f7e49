"""An upload's `transformation` field: `pre` (applied to the file before it is stored) and
`post` (results made right after, so the first visitor finds them cached).

`{"pre": "w-2000,h-2000,c-at_max", "post": [{"type": "transformation", "value": "w-300"},
{"type": "thumbnail", "value": "w-100,h-100"}, {"type": "gif-to-video"},
{"type": "abs", "value": "sr-240_360_480", "protocol": "hls"}]}`: each post step is the
delivery target it names (`PostStep.target`), made in the background after the upload.
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
from pixelport.video import ladder


@dataclass(frozen=True)
class PostStep:
    """One `post` step: what is made of the file once it is stored."""

    kind: str  # transformation | thumbnail | gif-to-video | abs
    value: str = ""  # its transformation string (sr-… for abs)
    protocol: str = ""  # abs: hls | dash

    def target(self, path: str, video: bool) -> str:
        """The delivery target that makes it, for the file at `path` ("/a/b.mp4")."""
        chain = f"/tr:{self.value}" if self.value else ""
        if self.kind == "gif-to-video":
            return f"{chain}{path}/ik-gif-video.mp4"
        if self.kind == "abs":
            return f"{chain}{path}/ik-master.{'mpd' if self.protocol == 'dash' else 'm3u8'}"
        if self.kind == "thumbnail" and video:
            return f"{chain}{path}/ik-thumbnail.jpg"
        return f"{chain}{path}"


@dataclass(frozen=True)
class UploadSteps:
    """The parsed `transformation` field."""

    pre: str | None = None
    post: tuple[PostStep, ...] = field(default=())


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
    post: list[PostStep] = []
    for step in value.get("post") or []:
        if not isinstance(step, dict):
            raise ApiError("transformation.post must list {type, value} objects.")
        post.append(_post_step(step))
    for chain in ([pre] if pre else []) + [s.value for s in post if s.value]:
        _chain(chain, named)
    for step in post:
        if step.kind == "abs":
            try:
                ladder.resolutions(_chain(step.value, named))
            except PixelportError as exc:
                raise ApiError(f"transformation.post abs: {exc.message}") from None
    return UploadSteps(pre, tuple(post))


def _post_step(step: dict[str, Any]) -> PostStep:
    """One post step, checked."""
    kind, value = step.get("type"), step.get("value", "")
    if kind not in ("transformation", "thumbnail", "gif-to-video", "abs"):
        raise ApiError("transformation.post steps are {type: transformation|thumbnail|"
                       "gif-to-video|abs, value: \"w-300,...\"}.")
    if not isinstance(value, str) or (kind == "transformation" and not value):
        raise ApiError(f"transformation.post {kind}: value must be a transformation string.")
    protocol = step.get("protocol", "")
    if kind == "abs" and protocol not in ("hls", "dash"):
        raise ApiError("transformation.post abs needs protocol hls or dash.")
    return PostStep(kind, value, protocol if kind == "abs" else "")


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
