"""Named transformations (`n-<name>`): the config's, read-only; the database's, with add,
edit and delete through NamedTransformations, each change loaded in every worker as the
API's settings routes do it (MediaLibrary.named_changed)."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pixelport.dashboard.board import Change, Dashboard, Page
from pixelport.errors import PixelportError
from pixelport.library.named import named_object

NAMED = "/dashboard/named"


class NamedPages:
    """Named transformations."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [
            Route(NAMED, self.listing, methods=["GET"]),
            Route(NAMED, self.add, methods=["POST"]),
            Route(NAMED + "/{named_id}/edit", self.edit_form, methods=["GET"]),
            Route(NAMED + "/{named_id}/edit", self.edit, methods=["POST"]),
            Route(NAMED + "/{named_id}/delete", self.delete, methods=["POST"]),
        ]

    async def listing(self, request: Request, error: str | None = None,
                      status: int = 200) -> Response:
        """GET /dashboard/named: the database's and the config's named transformations."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        named = board.media_of(request).named
        return board.page(request, "named.html", status, error=error,
                          stored=[named_object(r) for r in await named.all()],
                          configured=named.configured_objects())

    async def add(self, request: Request) -> Response:
        """POST /dashboard/named (the API's POST /v1/named-transformations)."""
        def create(form: FormData) -> Awaitable[object]:
            return self.board.media_of(request).named.create(
                str(form.get("name", "")).strip(), str(form.get("transformation", "")).strip(),
                str(form.get("description", "")).strip() or None, form.get("enabled") == "on")

        return await self.changed(request, create, self.listing)

    async def edit_form(self, request: Request, error: str | None = None,
                        status: int = 200) -> Response:
        """GET /dashboard/named/{id}/edit."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        try:
            row = await board.media_of(request).named.get(request.path_params["named_id"])
        except PixelportError as failure:
            return await self.listing(request, error=failure.message, status=400)
        return board.page(request, "named_edit.html", status, named=named_object(row),
                          error=error)

    async def edit(self, request: Request) -> Response:
        """POST /dashboard/named/{id}/edit (the API's PATCH)."""
        def update(form: FormData) -> Awaitable[object]:
            return self.board.media_of(request).named.update(request.path_params["named_id"], {
                "transformation": str(form.get("transformation", "")).strip(),
                "description": str(form.get("description", "")).strip(),
                "enabled": form.get("enabled") == "on"})

        return await self.changed(request, update, self.edit_form)

    async def delete(self, request: Request) -> Response:
        """POST /dashboard/named/{id}/delete."""
        return await self.changed(request, lambda _: self.board.media_of(request).named.delete(
            request.path_params["named_id"]), self.listing)

    async def changed(self, request: Request, make: Change, page: Page) -> Response:
        """The form's change (`Dashboard.submit`), then every worker loads the named
        transformations again."""
        async def reload() -> None:
            media = self.board.media_of(request)
            assert media.named_changed is not None  # set by MediaLibrary.mount
            await media.named_changed()

        return await self.board.submit(request, make, page, NAMED, reload)
