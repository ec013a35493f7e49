"""URL endpoint resolution: custom domain by Host, else the longest identifier prefix."""

from __future__ import annotations

from dataclasses import dataclass

from pixelport.config import EndpointConfig
from pixelport.origins.chain import OriginChain


@dataclass(frozen=True)
class Endpoint:
    """A configured endpoint with its origin chain."""

    config: EndpointConfig
    chain: OriginChain

    @property
    def identifier(self) -> str:
        """The URL prefix ("" for the default endpoint)."""
        return self.config.identifier


Index = tuple[dict[str, Endpoint], list[tuple[tuple[str, ...], Endpoint]]]


class EndpointTable:
    """Finds the endpoint of a request; `replace` swaps every endpoint at once (the accounts
    API), while a request already resolved keeps the endpoint it found."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        self.index: Index = _index(self.endpoints)

    def replace(self, endpoints: list[Endpoint]) -> None:
        """Use `endpoints` from now on (one assignment: never half of each)."""
        index = _index(endpoints)
        self.endpoints, self.index = list(endpoints), index

    @property
    def by_prefix(self) -> list[tuple[tuple[str, ...], Endpoint]]:
        """(identifier segments, endpoint), longest first."""
        return self.index[1]

    def resolve(self, host: str | None, segments: list[str]) -> tuple[Endpoint, int] | None:
        """The endpoint and how many leading path segments its identifier used."""
        by_domain, by_prefix = self.index
        if host:
            name = _host_name(host)
            endpoint = by_domain.get(name)
            if endpoint is not None:
                return endpoint, 0
        for prefix, endpoint in by_prefix:
            if tuple(segments[: len(prefix)]) == prefix:
                return endpoint, len(prefix)
        return None


def _index(endpoints: list[Endpoint]) -> Index:
    by_domain = {d: e for e in endpoints for d in e.config.domains}
    # Longest identifier first, counted in segments, so `a/b` wins over `a`.
    by_prefix = sorted(
        ((tuple(e.identifier.split("/")) if e.identifier else (), e) for e in endpoints),
        key=lambda item: -len(item[0]),
    )
    return by_domain, by_prefix


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")
