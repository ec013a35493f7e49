"""URL endpoint resolution: an endpoint's custom domain by Host; an account's domain, then its
endpoints by their identifiers within it; else the longest identifier prefix."""

from __future__ import annotations

from dataclasses import dataclass

from pixelport.config import EndpointConfig
from pixelport.delivery.account import DEFAULT, Account
from pixelport.origins.chain import OriginChain


@dataclass(frozen=True)
class Endpoint:
    """A configured endpoint with its origin chain, in an account."""

    config: EndpointConfig
    chain: OriginChain
    account: Account = DEFAULT

    @property
    def identifier(self) -> str:
        """The URL prefix ("" for the default endpoint)."""
        return self.config.identifier


Routes = list[tuple[tuple[str, ...], Endpoint]]
# Endpoint domains; account domains (each with its endpoints by local identifier); prefixes.
Index = tuple[dict[str, Endpoint], dict[str, Routes], Routes]


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
        return self.index[2]

    def resolve(self, host: str | None, segments: list[str]) -> tuple[Endpoint, int] | None:
        """The endpoint and how many leading path segments its identifier used."""
        by_domain, by_account, by_prefix = self.index
        if host and (by_domain or by_account):
            name = _host_name(host)
            endpoint = by_domain.get(name)
            if endpoint is not None:
                return endpoint, 0
            routes = by_account.get(name)
            if routes is not None:  # an account's own host serves only its endpoints
                by_prefix = routes
        for prefix, endpoint in by_prefix:
            if tuple(segments[: len(prefix)]) == prefix:
                return endpoint, len(prefix)
        return None


def _index(endpoints: list[Endpoint]) -> Index:
    by_domain = {d: e for e in endpoints for d in e.config.domains}
    by_account: dict[str, Routes] = {}
    for e in endpoints:
        for domain in e.account.domains:
            by_account.setdefault(domain, []).append((_segments(e.account.local(e.identifier)),
                                                      e))
    for routes in by_account.values():
        routes.sort(key=lambda item: -len(item[0]))
    # Longest identifier first, counted in segments, so `a/b` wins over `a`.
    by_prefix = sorted(((_segments(e.identifier), e) for e in endpoints),
                       key=lambda item: -len(item[0]))
    return by_domain, by_account, by_prefix


def _segments(identifier: str) -> tuple[str, ...]:
    return tuple(identifier.split("/")) if identifier else ()


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")
