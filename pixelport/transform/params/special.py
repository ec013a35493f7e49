"""di and pg. (Layers are layer.py's; the retired oi-/ot- overlay syntax is refused by the
grammar, which names its position.)"""

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


HANDLERS = {"di": default_image, "pg": page}
