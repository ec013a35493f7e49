"""The media library page: folders (browse, create, delete), a grid of thumbnails, uploads,
and a file's page (details, tags, privacy, versions and restore, delete), through the
library's own methods as the management API calls them, so caches are purged the same way
(Library.on_change, in every worker)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pixelport.dashboard.board import Dashboard, Page, already_applied
from pixelport.errors import PixelportError
from pixelport.library.files import Changes
from pixelport.library.records import Urls, file_object, version_object
from pixelport.security.signing import sign_url

LIBRARY = "/dashboard/library"
UPLOAD_SIGNATURE_SECONDS = 600
VIEW_SECONDS = 3600  # a private file's signed link on its page
PURGE_AGAIN = ("The change was saved, but not every worker process answered: purge the "
               "file's URL again.")


def folder_of(path: str) -> str:
    """The folder a library path is in (`/a/b.jpg` → `/a`)."""
    return "/" + path.strip("/").rpartition("/")[0]


def library_link(folder: str) -> str:
    """The library page of a folder."""
    return f"{LIBRARY}?path={quote(folder, safe='/')}"


class FilePages:
    """The media library: folders, files, uploads."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def routes(self) -> list[Route]:
        """This group's routes."""
        return [
            Route(LIBRARY, self.library, methods=["GET"]),
            Route(LIBRARY + "/signature", self.upload_signature, methods=["GET"]),
            Route(LIBRARY + "/folders", self.create_folder, methods=["POST"]),
            Route(LIBRARY + "/folders/delete", self.delete_folder, methods=["POST"]),
            Route(LIBRARY + "/files/{file_id}", self.details, methods=["GET"]),
            Route(LIBRARY + "/files/{file_id}/tags", self.set_tags, methods=["POST"]),
            Route(LIBRARY + "/files/{file_id}/privacy", self.set_privacy, methods=["POST"]),
            Route(LIBRARY + "/files/{file_id}/versions/{version_id}/restore",
                  self.restore_version, methods=["POST"]),
            Route(LIBRARY + "/files/{file_id}/delete", self.delete_file, methods=["POST"]),
        ]

    def urls(self, request: Request) -> Urls:
        """Delivery URLs as this request's host sees the library."""
        return self.board.media_of(request).urls_for(request.headers.get("host"),
                                                      request.url.scheme)

    # --- folders ----------------------------------------------------------------------------

    async def library(self, request: Request, error: str | None = None,
                      status: int = 200) -> Response:
        """GET /dashboard/library?path=/folder: folders, a grid of thumbnails, uploads."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        path = "/" + request.query_params.get("path", "/").strip("/")
        uploads = bool(board.security_of(request).public_key)
        try:
            items = await board.media_of(request).listing(path, request.headers.get("host"),
                                                          request.url.scheme)
        except PixelportError as failure:
            return board.page(request, "library.html", 400, items=[], path="/", parent=None,
                              error=failure.message, uploads=uploads)
        parent = None if path == "/" else folder_of(path)
        return board.page(request, "library.html", status, items=items, path=path,
                          parent=parent, uploads=uploads, error=error)

    async def create_folder(self, request: Request) -> Response:
        """POST /dashboard/library/folders: `name` inside `parent` (the API's POST /v1/folder)."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        parent = str(form.get("parent", "/")) or "/"
        folders = self.board.media_of(request).folders
        work = folders.create(str(form.get("name", "")).strip(), parent)
        return await self.done(request, work, library_link(parent), self.library)

    async def delete_folder(self, request: Request) -> Response:
        """POST /dashboard/library/folders/delete: a folder with everything in it (the API's
        DELETE /v1/folder), once its confirmation box is ticked."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        folder = str(form.get("folderPath", ""))
        if form.get("confirm") != "on":
            return await self.library(request, status=400, error="Tick the box to confirm "
                                      "that the folder and everything in it go.")
        work = self.board.media_of(request).folders.delete(folder)
        return await self.done(request, work, library_link(folder_of(folder)), self.library)

    async def done(self, request: Request, work: Awaitable[object], back: str,
                   page: Page) -> Response:
        """Run a library change and go to `back`, as `Dashboard.change` does; caches were
        purged in every worker by the library itself."""
        return await self.board.change(request, work, page, back, already_applied,
                                       unreachable=PURGE_AGAIN)

    # --- a file -----------------------------------------------------------------------------

    async def details(self, request: Request, error: str | None = None,
                      status: int = 200) -> Response:
        """GET /dashboard/library/files/{id}: a file's details, tags, privacy, versions."""
        board = self.board
        if (denied := await board.denied(request)) is not None:
            return denied
        library = board.media_of(request).library
        try:
            row, versions = await library.versions(request.path_params["file_id"])
        except PixelportError as failure:
            return await self.library(request, error=failure.message, status=400)
        urls = self.urls(request)
        shown = file_object(row, urls)
        view = shown["url"]
        if shown["isPrivateFile"]:  # a link that opens it: signed, for an hour
            view = sign_url(view, urls.base + "/", board.security_of(request).keys[0],
                            int(time.time()) + VIEW_SECONDS)
        listed = [version_object(row, v, urls) for v in reversed(versions)]
        return board.page(request, "file.html", status, file=shown, view=view,
                          versions=listed, folder=folder_of(row.path), error=error,
                          library=library_link(folder_of(row.path)))

    async def set_tags(self, request: Request) -> Response:
        """POST …/tags: the file's tags, comma-separated (the API's PATCH of `tags`)."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        tags = [t.strip() for t in str(form.get("tags", "")).split(",") if t.strip()]
        return await self.update(request, Changes(tags=tags))

    async def set_privacy(self, request: Request) -> Response:
        """POST …/privacy: make the file private (signed URLs only) or public."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        return await self.update(request, Changes(is_private=form.get("private") == "on"))

    async def update(self, request: Request, changes: Changes) -> Response:
        """Library.update, as the API's PATCH /v1/files/{id}/details calls it."""
        file_id = request.path_params["file_id"]
        work = self.board.media_of(request).library.update(file_id, changes)
        return await self.done(request, work, f"{LIBRARY}/files/{file_id}", self.details)

    async def restore_version(self, request: Request) -> Response:
        """POST …/versions/{version_id}/restore: make an older version current again."""
        if (denied := await self.board.denied(request)) is not None:
            return denied
        file_id = request.path_params["file_id"]
        work = self.board.media_of(request).library.restore_version(
            file_id, request.path_params["version_id"])
        return await self.done(request, work, f"{LIBRARY}/files/{file_id}", self.details)

    async def delete_file(self, request: Request) -> Response:
        """POST …/delete: the file and every version, once its confirmation box is ticked."""
        form = await request.form()
        if (denied := await self.board.denied(request, form)) is not None:
            return denied
        if form.get("confirm") != "on":
            return await self.details(request, status=400, error="Tick the box to confirm "
                                      "that the file and all its versions go.")
        library = self.board.media_of(request).library
        file_id = request.path_params["file_id"]
        try:
            row = await library.get(file_id)
        except PixelportError as failure:
            return await self.library(request, error=failure.message, status=400)
        return await self.done(request, library.delete([file_id]),
                               library_link(folder_of(row.path)), self.details)

    # --- uploads ----------------------------------------------------------------------------

    async def upload_signature(self, request: Request) -> Response:
        """GET /dashboard/library/signature: ImageKit's client-side upload parameters (a
        single-use token, its expiry, their signature), for the page's uploads."""
        if (denied := await self.board.denied(request)) is not None:
            return denied
        security = self.board.security_of(request)
        if not security.public_key:
            return JSONResponse({"message": "Set [security] public_key to upload from the "
                                            "dashboard."}, status_code=400)
        token = secrets.token_hex(16)
        expire = str(int(time.time()) + UPLOAD_SIGNATURE_SECONDS)
        signature = hmac.new(security.keys[0].encode(), (token + expire).encode(),
                             hashlib.sha1).hexdigest()
        return JSONResponse({"token": token, "expire": expire, "signature": signature,
                             "publicKey": security.public_key},
                            headers={"cache-control": "no-store"})
