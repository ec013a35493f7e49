"""Origins and URL endpoints as data: ImageKit's accounts API over the database.

The config's `[[origin]]` and `[[endpoint]]` tables still work and are listed read-only
(ids `config:<name>`; the default endpoint is `default`). Those made through the API live in
`account_origins` / `account_url_endpoints`, their secret fields sealed (security/secrets.py).
Each origin is built by the same code as the config's (origins/registry.py), so a bad field is
refused with the message the config would give. Applying a change to delivery is the app's
(`App.rebuild_endpoints`), in every worker.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pixelport.config import URL_REWRITERS, Config, ConfigError, OriginConfig, Section
from pixelport.errors import ApiError, ApiNotFound, PixelportError
from pixelport.origins import imagekit_fields as fields_of
from pixelport.origins.base import FetchOptions, Origin, Shared
from pixelport.origins.registry import build_origin
from pixelport.security.paths import check_file_path
from pixelport.security.secrets import SecretBox
from pixelport.state.db import Database
from pixelport.state.models import AccountEndpoint, AccountOrigin, new_id, now

CONFIG_PREFIX = "config:"
DEFAULT_ENDPOINT = "default"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9-]+(/[A-Za-z0-9-]+)*$")
RESERVED_PREFIXES = ("v1", "api", "dashboard", "healthz", "readyz", "metrics")
REWRITERS = {"CLOUDINARY": "cloudinary", "IMGIX": "imgix", "AKAMAI": "akamai"}


@dataclass(frozen=True)
class StoredEndpoint:
    """An endpoint made through the API, as delivery needs it."""

    id: str
    description: str
    url_prefix: str
    origins: tuple[str, ...]  # origin ids
    domains: tuple[str, ...]
    url_rewriter: str | None  # pixelport's name (cloudinary, imgix, akamai)


class Accounts:
    """The origins and URL endpoints of the config and of the database."""

    def __init__(self, db: Database, config: Config, shared: Shared) -> None:
        self.db = db
        self.config = config
        self.shared = shared
        key = config.security.secrets_key
        self.box = SecretBox(key) if key else None
        # What the other accounts hold (pixelport/tenancy.py): the first URL segments of their
        # prefixes and every domain they answer on; an endpoint here may take neither.
        self.elsewhere: Callable[[], tuple[set[str], set[str]]] = lambda: (set(), set())

    # --- origins ----------------------------------------------------------------------------

    def configured_origins(self) -> list[dict[str, Any]]:
        """The config's origins, read-only (their settings are the config file's)."""
        return [{"id": CONFIG_PREFIX + o.name, "name": o.name, "type": _imagekit_type(o.type),
                 "includeCanonicalHeader": False, "readOnly": True,
                 "description": "from the config file"} for o in self.config.origins]

    async def origin_rows(self) -> list[AccountOrigin]:
        """The database's origins, oldest first."""
        async with self.db.read() as session:
            return list((await session.scalars(
                select(AccountOrigin).order_by(AccountOrigin.created_at))).all())

    async def origins(self) -> list[dict[str, Any]]:
        """Every origin as the API answers it."""
        return self.configured_origins() + [self.answer(r) for r in await self.origin_rows()]

    async def origin(self, origin_id: str) -> dict[str, Any]:
        """One origin as the API answers it (404 when unknown)."""
        for shown in self.configured_origins():
            if shown["id"] == origin_id:
                return shown
        return self.answer(await self._row(origin_id))

    def answer(self, row: AccountOrigin) -> dict[str, Any]:
        """A stored origin as the API answers it: no secret field."""
        return fields_of.answer_of(row.id, row.type, json.loads(row.settings))

    async def create_origin(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check, build once, and store an origin (400 naming the field that is wrong)."""
        kind, public, secret = self._split(body)
        self.build(new_id(), kind, public, secret)  # refused here, as the config would be
        row = AccountOrigin(name=public["name"], type=kind, settings=json.dumps(public),
                            secrets=self._seal(secret))

        def add(session: Session) -> AccountOrigin:
            session.add(row)
            return row
        return self.answer(await self.db.transaction(add))

    async def update_origin(self, origin_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace an origin's fields; secret fields left out keep their stored values."""
        self._writable(origin_id, "origin")
        old = await self._row(origin_id)
        kept = self._open(old)
        kind, public, secret = self._split(body, kept if body.get("type") == old.type else {})
        self.build(origin_id, kind, public, secret)

        def change(session: Session) -> AccountOrigin:
            row = session.get(AccountOrigin, origin_id)
            if row is None:
                raise ApiNotFound("No origin with this id.")
            row.name, row.type, row.settings = public["name"], kind, json.dumps(public)
            row.secrets, row.updated_at = self._seal(secret), now()
            return row
        return self.answer(await self.db.transaction(change))

    async def delete_origin(self, origin_id: str) -> None:
        """Delete an origin no endpoint uses (400 naming the endpoints that do)."""
        self._writable(origin_id, "origin")
        users = [e.url_prefix or DEFAULT_ENDPOINT for e in await self.endpoint_rows()
                 if origin_id in e.origins]
        if users:
            raise ApiError(f"The origin is used by the URL endpoint(s) {', '.join(users)}: "
                           "take it out of them first.")

        def remove(session: Session) -> None:
            row = session.get(AccountOrigin, origin_id)
            if row is None:
                raise ApiNotFound("No origin with this id.")
            session.delete(row)
        await self.db.transaction(remove)

    def build(self, origin_id: str, kind: str, public: dict[str, Any],
              secret: dict[str, str]) -> Origin:
        """The origin object, built by the config's own code (400 with its message)."""
        settings = fields_of.settings_of(kind, {**public, **secret})
        section = Section(settings,
                          f"origin {public['name']!r}", "accounts API", Path.cwd())
        try:
            return build_origin(OriginConfig(origin_id, fields_of.TYPES[kind], section),
                                self.shared)
        except ConfigError as error:
            raise ApiError(str(error).replace("accounts API: ", "")) from None

    def built(self, row: AccountOrigin) -> Origin:
        """A stored origin's object, its secrets opened."""
        public = json.loads(row.settings)
        return self.build(row.id, row.type, public, self._open(row))

    async def try_origin(self, origin_id: str, path: str,
                         configured: dict[str, Origin]) -> dict[str, Any]:
        """"Test this origin": fetch `path` through it alone and report what happened, with
        the ik-error code a delivery would answer (the body is not read past its start)."""
        checked = check_file_path(path)  # 400 for `..` and the like, before any fetch
        if not checked:
            raise ApiError("path is required: a file the origin should have.")
        if origin_id.startswith(CONFIG_PREFIX):
            origin = configured.get(origin_id.removeprefix(CONFIG_PREFIX))
            if origin is None:
                raise ApiNotFound("No origin with this id.")
            owned = False
        else:
            origin, owned = self.built(await self._row(origin_id)), True
        began = time.perf_counter()
        try:
            got = await origin.fetch(checked, FetchOptions())
            try:
                report: dict[str, Any] = {"ok": True, "contentType": got.content_type,
                                          "size": got.size}
            finally:
                await got.close()
        except PixelportError as error:
            report = {"ok": False, "status": error.status, "ikError": error.header}
        finally:
            if owned:
                await origin.aclose()
        report["path"] = path
        report["milliseconds"] = round((time.perf_counter() - began) * 1000, 1)
        return report

    def _split(self, body: dict[str, Any], kept: dict[str, str] | None = None
               ) -> tuple[str, dict[str, Any], dict[str, str]]:
        kind = body.get("type")
        try:
            checked = fields_of.check(str(kind), {**(kept or {}), **body})
        except fields_of.FieldError as error:
            raise ApiError(str(error)) from None
        secret = {k: str(v) for k, v in checked.items() if k in fields_of.SECRET}
        public = {k: v for k, v in checked.items() if k not in fields_of.SECRET}
        if secret and self.box is None:
            raise ApiError("Origin credentials are stored encrypted, and this server has no "
                           "key for that: set [security] secrets_key (or the environment "
                           "variable PIXELPORT_SECRETS_KEY) and restart.")
        return str(kind), public, secret

    def _seal(self, secret: dict[str, str]) -> bytes | None:
        if not secret:
            return None
        assert self.box is not None
        return self.box.seal(secret)

    def _open(self, row: AccountOrigin) -> dict[str, str]:
        if row.secrets is None:
            return {}
        if self.box is None:
            raise ConfigError("The database holds origin credentials sealed with a secrets "
                              "key, and none is set: set [security] secrets_key (or "
                              "PIXELPORT_SECRETS_KEY) to the key they were stored with")
        return self.box.open(row.secrets)

    async def _row(self, origin_id: str) -> AccountOrigin:
        async with self.db.read() as session:
            row = await session.get(AccountOrigin, origin_id)
        if row is None:
            raise ApiNotFound("No origin with this id.")
        return row

    @staticmethod
    def _writable(item_id: str, what: str) -> None:
        if item_id.startswith(CONFIG_PREFIX) or item_id == DEFAULT_ENDPOINT:
            raise ApiError(f"This {what} comes from the config file: change it there.")

    # --- URL endpoints ----------------------------------------------------------------------

    def configured_endpoints(self) -> list[dict[str, Any]]:
        """The config's endpoints, read-only."""
        return [{"id": CONFIG_PREFIX + e.identifier if e.identifier else DEFAULT_ENDPOINT,
                 "description": "from the config file", "urlPrefix": e.identifier,
                 "origins": [CONFIG_PREFIX + name for name in e.origins],
                 "domains": list(e.domains), "readOnly": True,
                 **({"urlRewriter": {"type": e.url_rewriter.upper()}} if e.url_rewriter
                    else {})}
                for e in self.config.endpoints]

    async def endpoint_rows(self) -> list[StoredEndpoint]:
        """The database's endpoints, oldest first."""
        async with self.db.read() as session:
            rows = (await session.scalars(
                select(AccountEndpoint).order_by(AccountEndpoint.created_at))).all()
        return [StoredEndpoint(r.id, r.description, r.url_prefix, tuple(json.loads(r.origins)),
                               tuple(json.loads(r.domains)),
                               REWRITERS.get(r.url_rewriter or "")) for r in rows]

    async def endpoints(self) -> list[dict[str, Any]]:
        """Every URL endpoint as the API answers it."""
        return self.configured_endpoints() + [_endpoint_answer(e)
                                              for e in await self.endpoint_rows()]

    async def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """One URL endpoint (404 when unknown)."""
        for shown in await self.endpoints():
            if shown["id"] == endpoint_id:
                return shown
        raise ApiNotFound("No URL endpoint with this id.")

    async def save_endpoint(self, body: dict[str, Any],
                            endpoint_id: str | None = None) -> dict[str, Any]:
        """Create (no id) or replace an endpoint, checked against every other one."""
        if endpoint_id is not None:
            self._writable(endpoint_id, "URL endpoint")
        description, prefix, origins, domains, rewriter = await self._endpoint_fields(
            body, endpoint_id)

        def write(session: Session) -> StoredEndpoint:
            row = (session.get(AccountEndpoint, endpoint_id) if endpoint_id
                   else AccountEndpoint())
            if row is None:
                raise ApiNotFound("No URL endpoint with this id.")
            row.description, row.url_prefix = description, prefix
            row.origins, row.domains = json.dumps(origins), json.dumps(domains)
            row.url_rewriter, row.updated_at = rewriter, now()
            if endpoint_id is None:
                session.add(row)
                session.flush()
            return StoredEndpoint(row.id, description, prefix, tuple(origins), tuple(domains),
                                  REWRITERS.get(rewriter or ""))
        return _endpoint_answer(await self.db.transaction(write))

    async def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint made through the API."""
        self._writable(endpoint_id, "URL endpoint")

        def remove(session: Session) -> None:
            row = session.get(AccountEndpoint, endpoint_id)
            if row is None:
                raise ApiNotFound("No URL endpoint with this id.")
            session.delete(row)
        await self.db.transaction(remove)

    async def _endpoint_fields(self, body: dict[str, Any], endpoint_id: str | None
                               ) -> tuple[str, str, list[str], list[str], str | None]:
        description = body.get("description")
        if not isinstance(description, str):
            raise ApiError("description is required (a string).")
        prefix = body.get("urlPrefix", "")
        if not isinstance(prefix, str):
            raise ApiError("urlPrefix must be a string.")
        prefix = prefix.strip("/")
        if not prefix or not _PREFIX_RE.fullmatch(prefix):
            raise ApiError("urlPrefix must hold letters, digits and '-' (segments joined by "
                           "'/'); the default endpoint (an empty prefix) is the config's.")
        if prefix.split("/")[0] in RESERVED_PREFIXES:
            raise ApiError(f"urlPrefix {prefix!r} is reserved (/v1, /api, /dashboard …).")
        origins = body.get("origins", [])
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ApiError("origins must be a list of origin ids.")
        known = {o["id"] for o in self.configured_origins()} | {
            r.id for r in await self.origin_rows()}
        for origin_id in origins:
            if origin_id not in known:
                raise ApiError(f"No origin with the id {origin_id!r}: create it first.")
        domains = body.get("domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise ApiError("domains must be a list of host names.")
        domains = [d.strip().lower().rstrip(".") for d in domains]
        rewriter = body.get("urlRewriter")
        kind = None
        if rewriter is not None:
            if not isinstance(rewriter, dict) or rewriter.get("type") not in REWRITERS:
                raise ApiError("urlRewriter must be {\"type\": \"CLOUDINARY\" | \"IMGIX\" | "
                               "\"AKAMAI\"}.")
            kind = str(rewriter["type"])
            assert REWRITERS[kind] in URL_REWRITERS
        taken = {e.identifier: "the config file" for e in self.config.endpoints}
        bound = {d: "the config file" for e in self.config.endpoints for d in e.domains}
        for other in await self.endpoint_rows():
            if other.id != endpoint_id:
                taken[other.url_prefix] = other.id
                bound.update({d: other.id for d in other.domains})
        prefixes, hosts = self.elsewhere()
        if prefix in taken or prefix.split("/")[0] in prefixes:
            raise ApiError(f"urlPrefix {prefix!r} is already used by "
                           f"{taken.get(prefix, 'another account')}.")
        for domain in domains:
            if domain in bound or domain in hosts:
                raise ApiError(f"The domain {domain!r} is already bound to "
                               f"{bound.get(domain, 'another account')}.")
        return description, prefix, origins, domains, kind


def _endpoint_answer(endpoint: StoredEndpoint) -> dict[str, Any]:
    out: dict[str, Any] = {"id": endpoint.id, "description": endpoint.description, "urlPrefix":
                           endpoint.url_prefix, "origins": list(endpoint.origins),
                           "domains": list(endpoint.domains)}
    if endpoint.url_rewriter:
        kind = endpoint.url_rewriter.upper()
        out["urlRewriter"] = ({"type": kind, "preserveAssetDeliveryTypes": False}
                              if kind == "CLOUDINARY" else {"type": kind})
    return out


def _imagekit_type(pixelport_type: str) -> str:
    found = [k for k, v in fields_of.TYPES.items() if v == pixelport_type]
    return found[0] if found else pixelport_type.upper()
