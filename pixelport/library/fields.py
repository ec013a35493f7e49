"""Custom metadata fields (`/v1/customMetadataFields`) and the check of values against them.

A file's customMetadata may only name fields defined here (and not deleted), each value of
the field's type and within its bounds; ImageKit answers 400 otherwise.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelport.errors import ApiConflict, ApiError, ApiNotFound
from pixelport.state.db import Database
from pixelport.state.models import CustomMetadataField, new_id, now

TYPES = ("Text", "Textarea", "Number", "Date", "Boolean", "SingleSelect", "MultiSelect")
SCHEMA_KEYS = ("type", "minValue", "maxValue", "minLength", "maxLength", "selectOptions",
               "defaultValue", "isValueRequired")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def field_object(row: CustomMetadataField) -> dict[str, Any]:
    """A field as the API shows it."""
    return {"id": row.id, "name": row.name, "label": row.label, "schema": row.schema}


def check_schema(schema: Any) -> dict[str, Any]:
    """A field's schema, checked (400 on an unknown type or key)."""
    if not isinstance(schema, dict) or schema.get("type") not in TYPES:
        raise ApiError(f"schema.type must be one of {', '.join(TYPES)}.")
    unknown = sorted(set(schema) - set(SCHEMA_KEYS))
    if unknown:
        raise ApiError(f"Unknown schema key {unknown[0]!r}.")
    if schema["type"] in ("SingleSelect", "MultiSelect"):
        options = schema.get("selectOptions")
        if not isinstance(options, list) or not options:
            raise ApiError("selectOptions must list the values a select field allows.")
    return dict(schema)


def check_value(name: str, schema: dict[str, Any], value: Any) -> Any:
    """One custom metadata value against its field's schema (400 when it does not fit)."""
    kind = schema["type"]
    if kind in ("Text", "Textarea"):
        if not isinstance(value, str):
            raise ApiError(f"customMetadata.{name} must be text.")
        if len(value) < int(schema.get("minLength", 0)) or (
                "maxLength" in schema and len(value) > int(schema["maxLength"])):
            raise ApiError(f"customMetadata.{name} is not within the field's length limits.")
    elif kind == "Number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ApiError(f"customMetadata.{name} must be a number.")
        if ("minValue" in schema and value < float(schema["minValue"])) or (
                "maxValue" in schema and value > float(schema["maxValue"])):
            raise ApiError(f"customMetadata.{name} is not within the field's bounds.")
    elif kind == "Boolean":
        if not isinstance(value, bool):
            raise ApiError(f"customMetadata.{name} must be true or false.")
    elif kind == "Date":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(f"customMetadata.{name} must be an ISO 8601 date.") from None
    elif kind == "SingleSelect":
        if value not in schema["selectOptions"]:
            raise ApiError(f"customMetadata.{name} must be one of the field's options.")
    elif kind == "MultiSelect":
        values = value if isinstance(value, list) else [value]
        if any(v not in schema["selectOptions"] for v in values):
            raise ApiError(f"customMetadata.{name} must be among the field's options.")
    return value


class MetadataFields:
    """The custom metadata field definitions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self, include_deleted: bool = False) -> list[CustomMetadataField]:
        """Every field, oldest first."""
        async with self.db.read() as session:
            statement = select(CustomMetadataField).order_by(CustomMetadataField.created_at)
            if not include_deleted:
                statement = statement.where(CustomMetadataField.deleted.is_(False))
            return list((await session.scalars(statement)).all())

    async def create(self, name: str, label: str, schema: Any) -> CustomMetadataField:
        """Define a field (409 when the name is taken)."""
        if not NAME_RE.match(name):
            raise ApiError("name may hold letters, digits, '_' and '-' (at most 100).")
        row = CustomMetadataField(id=new_id(), name=name, label=label,
                                  schema=check_schema(schema), deleted=False, created_at=now())
        try:
            await self.db.transaction(lambda session: session.add(row))
        except IntegrityError:
            raise ApiConflict(f"A custom metadata field named {name} exists already.") from None
        return row

    async def update(self, field_id: str, label: str | None, schema: Any) -> CustomMetadataField:
        """Change a field's label or schema (its type stays)."""
        def work(session: Session) -> CustomMetadataField:
            row = session.get(CustomMetadataField, field_id)
            if row is None or row.deleted:
                raise ApiNotFound("No custom metadata field with this id.")
            if label is not None:
                row.label = label
            if schema is not None:
                merged = check_schema({**row.schema, **(schema if isinstance(schema, dict)
                                                        else {})})
                if merged["type"] != row.schema.get("type"):
                    raise ApiError("A field's type cannot be changed.")
                row.schema = merged
            return row

        return await self.db.transaction(work)

    async def delete(self, field_id: str) -> None:
        """Delete a field (values already stored stay on their files)."""
        def work(session: Session) -> None:
            row = session.get(CustomMetadataField, field_id)
            if row is None or row.deleted:
                raise ApiNotFound("No custom metadata field with this id.")
            row.deleted = True
            row.name = f"{row.name}~deleted~{new_id()}"  # the name may be defined again

        await self.db.transaction(work)

    async def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """A file's customMetadata checked against the fields (400 on any misfit)."""
        fields = {f.name: f.schema for f in await self.all()}
        for name, value in values.items():
            if name not in fields:
                raise ApiError(f"customMetadata.{name} is not a defined custom metadata field.")
            if value is not None:
                check_value(name, fields[name], value)
        return values
