"""External storage (origins) and URL endpoints: list, add, edit, test, delete, over the
accounts API's own code (library/accounts.py), each change applied in every worker as the
API's are (`Dashboard.change`)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pixelport.dashboard.board import Dashboard
from pixelport.errors import PixelportError
from pixelport.library.accounts import REWRITERS, Accounts
from pixelport.origins import imagekit_fields

ORIGINS, ENDPOINTS = "/dashboard/origins", "/dashboard/endpoints"
CANONICAL = ("includeCanonicalHeader", "baseUrlForCanonicalHeader")

# The origin form's fields, in order, with their help (ImageKit's field names).
FORM_FIELDS = [
    ("baseUrl", "Base URL", "WEB_FOLDER", "http(s)://host/folder: the file path is appended"),
    ("forwardHostHeaderToOrigin", "Forward the Host header", "WEB_FOLDER", ""),
    ("includeCanonicalHeader", "Send a canonical Link header", "WEB_FOLDER", ""),
    ("baseUrlForCanonicalHeader", "Canonical base URL", "WEB_FOLDER",
     "the Link header's base; the file path is appended"),
    ("allowedHosts", "Allowed hosts", "WEB_PROXY",
     "comma-separated (images.example.com, *.example.org); empty: any public host"),
    ("bucket", "Bucket", "S3 S3_COMPATIBLE GCS", ""),
    ("prefix", "Prefix", "S3 S3_COMPATIBLE GCS AZURE_BLOB", "a folder inside the bucket"),
    ("region", "Region", "S3 S3_COMPATIBLE", "us-east-1 when empty"),
    ("endpoint", "Endpoint", "S3_COMPATIBLE AZURE_BLOB", "https://s3.example.com"),
    ("s3ForcePathStyle", "Path-style URLs", "S3_COMPATIBLE", "MinIO, bucket names with dots"),
    ("accessKey", "Access key", "S3 S3_COMPATIBLE", "stored encrypted, never shown again"),
    ("secretKey", "Secret key", "S3 S3_COMPATIBLE", "stored encrypted, never shown again"),
    ("clientEmail", "Client e-mail", "GCS", "the service account's"),
    ("privateKey", "Private key (PEM)", "GCS", "stored encrypted, never shown again"),
    ("accountName", "Account name", "AZURE_BLOB", ""),
    ("container", "Container", "AZURE_BLOB", ""),
    ("sasToken", "SAS token", "AZURE_BLOB", "read-only; stored encrypted, never shown again"),
]


def fields_of(kind: str) -> list[str]:
    """The form's fields of an origin type (the canonical Link header: web folders only,
    the one type it applies to)."""
    return [*imagekit_fields.FIELDS.get(kind, {}), *(CANONICAL if kind == "WEB_FOLDER" else ())]


def origin_body(form: FormData, kind: str) -> dict[str, Any]:
    """An origin in ImageKit's fields from the form; empty fields are left out (so a secret
    left blank on the edit form keeps its stored value)."""
    body: dict[str, Any] = {"type": kind, "name": str(form.get("name", "")).strip()}
    for field in fields_of(kind):
        if field in imagekit_fields.BOOLEANS:
            body[field] = form.get(field) == "on"
        elif field == "allowedHosts":
            hosts = [h.strip() for h in str(form.get(field, "")).split(",") if h.strip()]
            if hosts:
                body[field] = hosts
        elif str(form.get(field, "")).strip():
            body[field] = str(form.get(field)).strip()
    return body


def endpoint_body(form: FormData) -> dict[str, Any]:
    """A URL endpoint in ImageKit's fields from the form (origins in the order given)."""
    body: dict[str, Any] = {
        "description": str(form.get("description", "")),
        "urlPrefix": str(form.get("urlPrefix", "")).strip(),
        "origins": list(dict.fromkeys(str(v) for v in form.getlist("origins") if v)),
        "domains": [d.strip() for d in str(form.get("domains", "")).split(",") if d.strip()]}
    if form.get("urlRewriter"):
        body["urlRewriter"] = {"type": str(form.get("urlRewriter"))}
    return body


class OriginPages:
    """External storage and URL endpoints."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [
            Route(ORIGINS, self.origins, methods=["GET"]),
            Route(ORIGINS, self.add_origin, methods=["POST"]),
            Route(ORIGINS + "/{origin_id}/edit", self.edit_origin_form, methods=["GET"]),
            Route(ORIGINS + "/{origin_id}/edit", self.edit_origin, methods=["POST"]),
            Route(ORIGINS + "/{origin_id}/delete", self.delete_origin, methods=["POST"]),
            Route(ORIGINS + "/{origin_id}/test", self.test_origin, methods=["POST"]),
            Route(ENDPOINTS, self.endpoints, methods=["GET"]),
            Route(ENDPOINTS, self.add_endpoint, methods=["POST"]),
            Route(ENDPOINTS + "/{endpoint_id}/edit", self.edit_endpoint_form, methods=["GET"]),
            Route(ENDPOINTS + "/{endpoint_id}/edit", self.edit_endpoint, methods=["POST"]),
            Route(ENDPOINTS + "/{endpoint_id}/delete", self.delete_endpoint, methods=["POST"]),
        ]

    # --- origins ----------------------------------------------------------------------------

    async def origins(self, request: Request, error: str | None = None,
                      status: int = 200) -> Response:
        """GET /dashboard/origins: external storage."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        accounts = board.media_of(request).accounts
        return board.page(request, "origins.html", status, origins=await accounts.origins(),
                          types=list(imagekit_fields.TYPES), fields=FORM_FIELDS, error=error)

    def accounts_of(self, request: Request) -> Accounts:
        """The session's account's origins and endpoints (after `denied`)."""
        return self.board.media_of(request).accounts

    async def add_origin(self, request: Request) -> Response:
        """POST /dashboard/origins."""
        def create(form: FormData) -> Awaitable[object]:
            body = origin_body(form, str(form.get("type", "")))
            return self.accounts_of(request).create_origin(body)

        return await self.board.submit(request, create, self.origins, ORIGINS)

    async def edit_origin_form(self, request: Request, error: str | None = None,
                               status: int = 200) -> Response:
        """GET /dashboard/origins/{id}/edit: the form, with the origin's non-secret fields
        (its secrets are never sent to the page)."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        try:
            shown = await board.media_of(request).accounts.origin(
                request.path_params["origin_id"])
        except PixelportError as failure:
            return await self.origins(request, error=failure.message, status=400)
        if shown.get("readOnly"):
            return await self.origins(request, status=400, error="This origin comes from the "
                                      "config file: change it there.")
        kind = shown["type"]
        own = set(fields_of(kind))
        return board.page(request, "origin_edit.html", status, origin=shown, error=error,
                          fields=[f for f in FORM_FIELDS if f[0] in own],
                          secret=imagekit_fields.SECRET)

    async def edit_origin(self, request: Request) -> Response:
        """POST /dashboard/origins/{id}/edit: the API's PUT, secrets left blank kept."""
        async def update(form: FormData) -> None:
            accounts = self.accounts_of(request)
            origin_id = request.path_params["origin_id"]
            # The type is not changed here. An origin not found shows the edit form, which
            # finds it gone too and shows the origins with the reason.
            kind = (await accounts.origin(origin_id))["type"]
            await accounts.update_origin(origin_id, origin_body(form, kind))

        return await self.board.submit(request, update, self.edit_origin_form, ORIGINS)

    async def delete_origin(self, request: Request) -> Response:
        """POST /dashboard/origins/{id}/delete."""
        return await self.board.submit(request, lambda _: self.accounts_of(request)
                                       .delete_origin(request.path_params["origin_id"]),
                                       self.origins, ORIGINS)

    async def test_origin(self, request: Request) -> Response:
        """POST /dashboard/origins/{id}/test (htmx): the outcome, as a fragment."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        accounts = self.board.media_of(request).accounts
        try:
            report = await accounts.try_origin(request.path_params["origin_id"],
                                               str(form.get("path", "")),
                                               self.board.configured_of(request))
        except PixelportError as error:
            report = {"ok": False, "ikError": error.header, "path": form.get("path", "")}
        return self.board.page(request, "origin_test.html", report=report)

    # --- URL endpoints ----------------------------------------------------------------------

    async def endpoints(self, request: Request, error: str | None = None,
                        status: int = 200) -> Response:
        """GET /dashboard/endpoints: URL endpoints."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        accounts = board.media_of(request).accounts
        return board.page(request, "endpoints.html", status,
                          endpoints=await accounts.endpoints(),
                          origins=await accounts.origins(), rewriters=list(REWRITERS),
                          error=error)

    async def add_endpoint(self, request: Request) -> Response:
        """POST /dashboard/endpoints."""
        return await self.board.submit(request, lambda form: self.accounts_of(request)
                                       .save_endpoint(endpoint_body(form)),
                                       self.endpoints, ENDPOINTS)

    async def edit_endpoint_form(self, request: Request, error: str | None = None,
                                 status: int = 200) -> Response:
        """GET /dashboard/endpoints/{id}/edit: the form, prefilled; one "Origin N" choice
        per place, so the order is chosen by keyboard as easily as by mouse."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        accounts = board.media_of(request).accounts
        try:
            shown = await accounts.endpoint(request.path_params["endpoint_id"])
        except PixelportError as failure:
            return await self.endpoints(request, error=failure.message, status=400)
        if shown.get("readOnly"):
            return await self.endpoints(request, status=400, error="This URL endpoint comes "
                                        "from the config file: change it there.")
        origins = await accounts.origins()
        return board.page(request, "endpoint_edit.html", status, endpoint=shown,
                          origins=origins, places=max(len(origins), 1),
                          rewriters=list(REWRITERS), error=error)

    async def edit_endpoint(self, request: Request) -> Response:
        """POST /dashboard/endpoints/{id}/edit: the API's PUT."""
        return await self.board.submit(request, lambda form: self.accounts_of(request)
                                       .save_endpoint(endpoint_body(form),
                                                      request.path_params["endpoint_id"]),
                                       self.edit_endpoint_form, ENDPOINTS)

    async def delete_endpoint(self, request: Request) -> Response:
        """POST /dashboard/endpoints/{id}/delete."""
        return await self.board.submit(request, lambda _: self.accounts_of(request)
                                       .delete_endpoint(request.path_params["endpoint_id"]),
                                       self.endpoints, ENDPOINTS)
