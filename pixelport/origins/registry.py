"""Building the configured origins, each wrapped in retries and a circuit breaker.

Adding an origin type is one module plus one line in `types.py`.

A type's module is imported when an origin of that type is configured: the cloud SDKs cost
start-up time and 15-25 MB of memory in every process that does not use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pixelport.config import OriginConfig
from pixelport.origins import resilience
from pixelport.origins.base import Origin, Shared
from pixelport.origins.types import BUILDERS

Builder = Callable[[OriginConfig, Shared], Origin]


def builder(type_name: str) -> Builder | None:
    """The builder of an origin type, importing its module; None if there is no such type."""
    target = BUILDERS.get(type_name)
    if target is None:
        return None
    module, function = target.split(":")
    built: Builder = getattr(importlib.import_module(f"pixelport.origins.{module}"), function)
    return built


def build_origin(cfg: OriginConfig, shared: Shared) -> Origin:
    """Build one configured origin, validating its type-specific keys."""
    build = builder(cfg.type)
    if build is None:
        raise cfg.section.error("type", f"origin type {cfg.type!r} is not supported yet")
    # Read first: the builder's own check for unknown keys must see these as known.
    settings = resilience.read_settings(cfg)
    return resilience.ResilientOrigin(build(cfg, shared), settings)


def build_all(shared: Shared) -> dict[str, Origin]:
    """Every configured origin by name."""
    return {cfg.name: build_origin(cfg, shared) for cfg in shared.config.origins}
