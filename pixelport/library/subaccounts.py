"""Sub-accounts made in the dashboard, stored in the default account's database.

The config's `[[account]]` tables are read-only and not stored. One made here gets a fresh
private and public key (the private one sealed at rest, as origin credentials are), its
library in `[library] accounts_dir`, and its database beside it (or its own PostgreSQL
schema), exactly as a config account with the defaults; pixelport/tenancy.py serves it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelport.config import (
    ACCOUNT_NAME,
    ACCOUNT_PREFIX,
    RESERVED_PREFIXES,
    AccountConfig,
    Config,
    account_database,
)
from pixelport.errors import ApiError
from pixelport.security.secrets import SecretBox
from pixelport.state.db import Database
from pixelport.state.models import SubAccount


class SubAccounts:
    """The sub-accounts of the database (the default account's)."""

    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        key = config.security.secrets_key
        self.box = SecretBox(key) if key else None

    async def specs(self) -> list[AccountConfig]:
        """Every stored sub-account, as the config would describe it."""
        async with self.db.read() as session:
            rows = (await session.scalars(select(SubAccount).order_by(SubAccount.created_at))
                    ).all()
        if rows and self.box is None:
            raise ApiError("The database holds sub-accounts whose keys are sealed with a "
                           "secrets key, and none is set: set [security] secrets_key.")
        return [self._spec(row) for row in rows]

    def _spec(self, row: SubAccount) -> AccountConfig:
        assert self.box is not None and self.config.accounts_dir is not None
        folder = self.config.accounts_dir / row.name
        return AccountConfig(
            name=row.name, prefix=row.prefix,
            private_key=self.box.open(row.private_key)["private_key"],
            public_key=row.public_key, domains=tuple(json.loads(row.domains)),
            library_dir=folder, database=account_database(self.config.database, row.name,
                                                          folder),
            source="database")

    async def create(self, name: str, prefix: str, domains: Collection[str],
                     taken_prefixes: Collection[str], taken_hosts: Collection[str],
                     taken_names: Collection[str]) -> AccountConfig:
        """A new sub-account with fresh keys (ApiError: a bad or taken name, prefix or
        domain, or no secrets key to seal its private key with)."""
        name, prefix = name.strip().lower(), (prefix.strip().strip("/") or name.strip().lower())
        hosts = [d.strip().lower().rstrip(".") for d in domains if d.strip()]
        if self.box is None or self.config.accounts_dir is None:
            raise ApiError("Sub-accounts made here need [security] secrets_key (their keys "
                           "are stored sealed) and the media library ([library] dir).")
        if not ACCOUNT_NAME.fullmatch(name):
            raise ApiError("The name must be 1-40 lower-case letters, digits and '-'.")
        if not ACCOUNT_PREFIX.fullmatch(prefix) or prefix in RESERVED_PREFIXES:
            raise ApiError("The prefix must be one path segment of letters, digits and '-', "
                           "other than " + ", ".join(sorted(RESERVED_PREFIXES)) + ".")
        if name in taken_names:
            raise ApiError(f"There is already an account named {name!r}.")
        if prefix in taken_prefixes:
            raise ApiError(f"The prefix {prefix!r} is already used by an account or endpoint.")
        for host in hosts:
            if host in taken_hosts:
                raise ApiError(f"The domain {host!r} is already bound.")
        private = "private_" + secrets.token_urlsafe(24)
        row = SubAccount(name=name, prefix=prefix, domains=json.dumps(hosts),
                         private_key=self.box.seal({"private_key": private}),
                         public_key="public_" + secrets.token_urlsafe(18))

        def add(session: Session) -> None:
            session.add(row)

        try:
            await self.db.transaction(add)
        except IntegrityError:
            raise ApiError("That name or prefix was taken meanwhile.") from None
        return self._spec(row)
