"""Named transformations: the config's `[transformations]` (read-only), those made through
`/v1/named-transformations`, and the built-in `ik_ml_thumbnail` of the library's thumbnails.

`mapping` is what delivery expands `n-<name>` with: built-ins, then the database's enabled
ones, then the config's (which win). Every worker reloads it when another changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelport.errors import ApiConflict, ApiError, ApiNotFound
from pixelport.library.records import THUMBNAIL, iso
from pixelport.state.db import Database
from pixelport.state.models import NamedTransformation, new_id, now
from pixelport.transform import registry

BUILT_IN = {THUMBNAIL: "w-400,h-300,c-at_max,q-80"}


def named_object(row: NamedTransformation) -> dict[str, Any]:
    """A named transformation as the API shows it."""
    return {"id": row.id, "name": row.name, "transformation": row.transformation,
            "description": row.description, "enabled": row.enabled, "readOnly": False,
            "createdAt": iso(row.created_at), "updatedAt": iso(row.updated_at)}


class NamedTransformations:
    """Named transformations from the config and the database, merged."""

    def __init__(self, db: Database | None, configured: Mapping[str, str]) -> None:
        self.db = db
        self.configured = dict(configured)
        self.mapping: dict[str, str] = {**BUILT_IN, **self.configured}
        self.listeners: list[Callable[[], None]] = []

    async def load(self) -> None:
        """Read the database's named transformations into `mapping`."""
        stored: dict[str, str] = {}
        if self.db is not None:
            async with self.db.read() as session:
                for row in (await session.scalars(select(NamedTransformation).where(
                        NamedTransformation.enabled.is_(True)))).all():
                    stored[row.name] = row.transformation
        self.mapping = {**BUILT_IN, **stored, **self.configured}
        for listener in self.listeners:
            listener()

    def configured_objects(self) -> list[dict[str, Any]]:
        """The config's named transformations, shown read-only."""
        return [{"id": f"config:{name}", "name": name, "transformation": value,
                 "description": "from the config file", "enabled": True, "readOnly": True}
                for name, value in self.configured.items()]

    async def all(self) -> list[NamedTransformation]:
        """The database's named transformations."""
        assert self.db is not None
        async with self.db.read() as session:
            return list((await session.scalars(select(NamedTransformation).order_by(
                NamedTransformation.created_at))).all())

    async def get(self, named_id: str) -> NamedTransformation:
        """One by id (404 when unknown)."""
        assert self.db is not None
        async with self.db.read() as session:
            row = await session.get(NamedTransformation, named_id)
            if row is None:
                raise ApiNotFound("No named transformation with this id.")
            return row

    async def create(self, name: str, transformation: str, description: str | None,
                     enabled: bool) -> NamedTransformation:
        """Make one (409 when the name is taken here or in the config)."""
        assert self.db is not None
        self._check(name, transformation)
        row = NamedTransformation(id=new_id(), name=name, transformation=transformation,
                                  description=description, enabled=enabled,
                                  created_at=now(), updated_at=now())
        try:
            await self.db.transaction(lambda session: session.add(row))
        except IntegrityError:
            raise ApiConflict(f"A named transformation {name} exists already.") from None
        return row

    async def update(self, named_id: str, changes: dict[str, Any]) -> NamedTransformation:
        """Change its transformation, description or enabled flag."""
        assert self.db is not None

        def work(session: Session) -> NamedTransformation:
            row = session.get(NamedTransformation, named_id)
            if row is None:
                raise ApiNotFound("No named transformation with this id.")
            if isinstance(changes.get("transformation"), str):
                self._check(row.name, changes["transformation"], existing=True)
                row.transformation = changes["transformation"]
            if isinstance(changes.get("description"), str):
                row.description = changes["description"]
            if isinstance(changes.get("enabled"), bool):
                row.enabled = changes["enabled"]
            row.updated_at = now()
            return row

        return await self.db.transaction(work)

    async def delete(self, named_id: str) -> None:
        """Delete one."""
        assert self.db is not None

        def work(session: Session) -> None:
            row = session.get(NamedTransformation, named_id)
            if row is None:
                raise ApiNotFound("No named transformation with this id.")
            session.delete(row)

        await self.db.transaction(work)

    def _check(self, name: str, transformation: str, existing: bool = False) -> None:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ApiError("name may hold letters, digits, '_' and '-'.")
        if name in self.configured or (name in BUILT_IN and not existing):
            raise ApiConflict(f"{name} is defined in the config file, which is read-only.")
        try:
            registry.parse(transformation, {})
        except Exception as exc:  # any parse failure is the client's
            raise ApiError(f"transformation is not valid: {exc}") from None
