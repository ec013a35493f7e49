"""di, pg, and the parameters pixelport refuses clearly (layers, legacy overlays, AI)."""

from __future__ import annotations

from pixelport.errors import InvalidRequest
from pixelport.security.paths import check_file_path
from pixelport.transform.grammar import Param
from pixelport.transform.params.values import integer
from pixelport.transform.step import Step


def default_image(param: Param, step: Step) -> None:
    """di-<path>: served (with the same transformations) when the file is missing."""
    path = check_file_path(param.value.replace("@@", "/"))
    if not path:
        raise InvalidRequest(f"{param} names no file")
    step.default_image = path


def page(param: Param, step: Step) -> None:
    """pg-<n>: page or frame n (from 1) of a multi-page or animated input."""
    step.page = integer(param, 1, 100_000)


def layer(param: Param, step: Step) -> None:
    """l-…: layers are not supported yet."""
    raise InvalidRequest(f"Layers ({param}) are not supported yet")


def legacy_overlay(param: Param, step: Step) -> None:
    """oi-/ot-: ImageKit's old overlay syntax, refused since November 2023."""
    raise InvalidRequest(f"The legacy overlay syntax ({param}) is not supported; use layers")


HANDLERS = {
    "di": default_image, "pg": page, "l": layer, "oi": legacy_overlay, "ot": legacy_overlay,
}
