"""`/v1/customMetadataFields` and `/v1/named-transformations`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from pixelport.api.common import answer, flag, json_body, route, text
from pixelport.errors import ApiError
from pixelport.library.fields import MetadataFields, field_object
from pixelport.library.named import NamedTransformations, named_object


class SettingRoutes:
    """Custom metadata fields and named transformations."""

    def __init__(self, fields: MetadataFields, named: NamedTransformations,
                 named_changed: Callable[[], Awaitable[None]]) -> None:
        self.fields = fields
        self.named = named
        self.named_changed = named_changed  # reloads every worker's named transformations

    @route
    async def list_fields(self, request: Request) -> Response:
        """GET /v1/customMetadataFields[?includeDeleted=true]."""
        deleted = request.query_params.get("includeDeleted", "false").lower() == "true"
        return answer(200, [field_object(f) for f in await self.fields.all(deleted)])

    @route
    async def create_field(self, request: Request) -> Response:
        """POST /v1/customMetadataFields."""
        body = await json_body(request)
        row = await self.fields.create(str(text(body, "name")), str(text(body, "label")),
                                       body.get("schema"))
        return answer(201, field_object(row))

    @route
    async def update_field(self, request: Request) -> Response:
        """PATCH /v1/customMetadataFields/{id}."""
        body = await json_body(request)
        row = await self.fields.update(request.path_params["field_id"],
                                       text(body, "label", required=False), body.get("schema"))
        return answer(200, field_object(row))

    @route
    async def delete_field(self, request: Request) -> Response:
        """DELETE /v1/customMetadataFields/{id} → 200 {}."""
        await self.fields.delete(request.path_params["field_id"])
        return answer(200, {})

    @route
    async def list_named(self, request: Request) -> Response:
        """GET /v1/named-transformations: the database's, then the config's (read-only)."""
        rows = [named_object(r) for r in await self.named.all()]
        return answer(200, rows + self.named.configured_objects())

    @route
    async def get_named(self, request: Request) -> Response:
        """GET /v1/named-transformations/{id}."""
        return answer(200, named_object(await self.named.get(request.path_params["named_id"])))

    @route
    async def create_named(self, request: Request) -> Response:
        """POST /v1/named-transformations."""
        body = await json_body(request)
        row = await self.named.create(str(text(body, "name")), str(text(body, "transformation")),
                                      text(body, "description", required=False),
                                      flag(body, "enabled", True))
        await self.named_changed()
        return answer(201, named_object(row))

    @route
    async def update_named(self, request: Request) -> Response:
        """PATCH (or PUT) /v1/named-transformations/{id}."""
        body = await json_body(request)
        if request.path_params["named_id"].startswith("config:"):
            raise ApiError("Named transformations from the config file are read-only.")
        row = await self.named.update(request.path_params["named_id"], body)
        await self.named_changed()
        return answer(200, named_object(row))

    @route
    async def delete_named(self, request: Request) -> Response:
        """DELETE /v1/named-transformations/{id} → 204."""
        if request.path_params["named_id"].startswith("config:"):
            raise ApiError("Named transformations from the config file are read-only.")
        await self.named.delete(request.path_params["named_id"])
        await self.named_changed()
        return answer(204, None)
