"""Origin types by their config name: adding a type is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from pixelport.config import OriginConfig
from pixelport.origins import azure_blob, gcs, resilience, s3, web_proxy, web_server
from pixelport.origins.base import Origin, Shared

Builder = Callable[[OriginConfig, Shared], Origin]

BUILDERS: dict[str, Builder] = {
    "web_server": web_server.build,
    "web_proxy": web_proxy.build,
    "s3": s3.build,
    "s3_compatible": s3.build_compatible,
    "azure_blob": azure_blob.build,
    "gcs": gcs.build,
}


def build_origin(cfg: OriginConfig, shared: Shared) -> Origin:
    """Build one configured origin, validating its type-specific keys."""
    builder = BUILDERS.get(cfg.type)
    if builder is None:
        raise cfg.section.error("type", f"origin type {cfg.type!r} is not supported yet")
    # Read first: the builder's own check for unknown keys must see these as known.
    settings = resilience.read_settings(cfg)
    return resilience.ResilientOrigin(builder(cfg, shared), settings)


def build_all(shared: Shared) -> dict[str, Origin]:
    """Every configured origin by name."""
    return {cfg.name: build_origin(cfg, shared) for cfg in shared.config.origins}
