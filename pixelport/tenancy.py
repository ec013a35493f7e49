"""Sub-accounts: several accounts in one deployment (assembled here, wired by app.App).

The default account is what the config's `[security]`, `[library]`, `[[origin]]` and
`[[endpoint]]` describe; it needs no prefix. Each `[[account]]` is a `Tenant` of its own: its
own keys (the API routes its key reaches, security/api_auth.py; the URLs it signs), media
library (folder and database: an SQLite file of its own, or its own schema on PostgreSQL),
origins and URL endpoints (its accounts API), named transformations, and purge scope. Its
endpoints are served under its prefix (`/<prefix>/<endpoint>/...`) and, without the prefix,
on its own domains (delivery/endpoints.py). A key of one account reaches nothing of another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pixelport.api.purge import PurgeApi
from pixelport.config import AccountConfig, Config, EndpointConfig
from pixelport.delivery.account import Account
from pixelport.delivery.endpoints import Endpoint
from pixelport.library.storage import INTERNAL
from pixelport.origins.base import Origin
from pixelport.origins.chain import OriginChain
from pixelport.origins.cloud import join_key
from pixelport.security.api_auth import ApiRoutes

if TYPE_CHECKING:
    from pixelport.library_app import MediaLibrary


@dataclass(eq=False)
class Tenant:
    """One account's parts in one worker process."""

    account: Account
    media: MediaLibrary
    purges: PurgeApi
    routes: ApiRoutes  # its API routes, reached with its keys
    base: list[Endpoint]  # its endpoints that are not in its database (the config's)
    sources: list[Origin]  # its library, first in every endpoint's chain
    configured: dict[str, Origin] = field(default_factory=dict)  # the config's origins
    source: str = "config"  # or "database": made in the dashboard
    built: dict[str, Origin] = field(default_factory=dict)  # from its accounts API's rows
    serving: list[Endpoint] = field(default_factory=list)  # `endpoints()` as last built

    async def endpoints(self) -> list[Endpoint]:
        """Its endpoints: the config's, then its database's, with their origins built anew
        (`built` holds the new ones; the caller retires the old)."""
        from pixelport.library.accounts import CONFIG_PREFIX

        accounts = self.media.accounts
        self.built = {row.id: accounts.built(row) for row in await accounts.origin_rows()}
        by_id = {**{CONFIG_PREFIX + name: o for name, o in self.configured.items()},
                 **self.built}
        account = self.account
        return self.base + [
            Endpoint(EndpointConfig(account.identifier(e.url_prefix), e.origins, e.domains,
                                    url_rewriter=e.url_rewriter),
                     OriginChain(self.sources + [by_id[i] for i in e.origins if i in by_id]),
                     account)
            for e in await accounts.endpoint_rows()
        ]


def account_config(config: Config, spec: AccountConfig) -> Config:
    """A sub-account's configuration: the deployment's, with its own keys, library folder and
    database, no origins of the config and one default endpoint (its prefix)."""
    security = dataclasses.replace(config.security, private_key=spec.private_key,
                                   private_keys=spec.private_keys, public_key=spec.public_key)
    # With a bucket, its files are under the default library's internal prefix (never served
    # by path there): `<prefix>/.pixelport/accounts/<name>/`.
    bucket = config.library_bucket
    if bucket is not None:
        bucket = dataclasses.replace(bucket, prefix=join_key(
            bucket.prefix, f"{INTERNAL}/accounts/{spec.name}"))
    return dataclasses.replace(config, security=security, library_dir=spec.library_dir,
                               library_bucket=bucket,
                               database=spec.database, transformations={}, origins=(),
                               endpoints=(EndpointConfig("", ()),), accounts=())


def account_of(spec: AccountConfig, config: Config) -> Account:
    """Delivery's view of a sub-account (named transformations filled in once loaded)."""
    return Account(spec.name, spec.prefix, spec.domains, security=config.security, named={})


def elsewhere(me: Account, tenants: Iterable[Tenant],
              endpoints: Iterable[Endpoint]) -> tuple[set[str], set[str]]:
    """What accounts other than `me` hold: their prefixes (which the default account's
    endpoints may not begin with) and every host they answer on."""
    others = [t.account for t in tenants if t.account is not me]
    prefixes = {a.prefix for a in others if a.prefix} if not me.prefix else set()
    hosts = {d for a in others for d in a.domains} | {
        d for e in endpoints if e.account is not me for d in e.config.domains}
    return prefixes, hosts
