"""Origin types by their config name: adding a type is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from pixelport.config import OriginConfig
from pixelport.origins import web_server
from pixelport.origins.base import Origin, Shared

Builder = Callable[[OriginConfig, Shared], Origin]

BUILDERS: dict[str, Builder] = {
    "web_server": web_server.build,
}


def build_origin(cfg: OriginConfig, shared: Shared) -> Origin:
    """Build one configured origin, validating its type-specific keys."""
    builder = BUILDERS.get(cfg.type)
    if builder is None:
        raise cfg.section.error("type", f"origin type {cfg.type!r} is not supported yet")
    return builder(cfg, shared)


def build_all(shared: Shared) -> dict[str, Origin]:
    """Every configured origin by name."""
    return {cfg.name: build_origin(cfg, shared) for cfg in shared.config.origins}
