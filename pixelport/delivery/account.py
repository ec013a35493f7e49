"""Whose endpoint a request is on: the default account, or a sub-account with its own keys,
named transformations, URL prefix and domains (assembled by pixelport/tenancy.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pixelport.config import SecurityConfig


@dataclass(eq=False)
class Account:
    """An account as delivery sees it. The default account has no name and no prefix, and
    takes its keys and named transformations from the config and the delivery itself."""

    name: str = ""
    prefix: str = ""  # its endpoints' identifiers start with it ("staging/products")
    domains: tuple[str, ...] = ()  # hosts its endpoints answer on without the prefix
    security: SecurityConfig | None = None  # its keys; None: [security]'s
    named: Mapping[str, str] | None = None  # its named transformations; None: delivery's

    def local(self, identifier: str) -> str:
        """An endpoint identifier without this account's prefix (`staging/a` → `a`)."""
        if not self.prefix:
            return identifier
        return identifier[len(self.prefix):].lstrip("/")

    def identifier(self, local: str) -> str:
        """An identifier in this account as delivery knows it (`a` → `staging/a`)."""
        return "/".join(part for part in (self.prefix, local) if part)


DEFAULT = Account()
