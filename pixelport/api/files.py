"""`/v1/files…` and `/v1/metadata`: ImageKit's file management routes over the library."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from pixelport.api.common import UrlsFor, answer, flag, json_body, route, string_list, text, urls
from pixelport.api.upload import check_coordinates
from pixelport.asgi import Delivered
from pixelport.errors import ApiError, ApiNotFound
from pixelport.library.fields import MetadataFields
from pixelport.library.files import Changes, Library
from pixelport.library.listing import Query, list_assets
from pixelport.library.metadata import read_metadata
from pixelport.library.records import file_object, version_object

UPDATABLE = {"tags", "customCoordinates", "customMetadata", "description", "extensions",
             "removeAITags", "webhookUrl", "publish"}


class Files:
    """The file routes."""

    def __init__(self, library: Library, fields: MetadataFields, urls_for: UrlsFor,
                 purge_id: Callable[[], str], path_of_url: Callable[[str], str | None],
                 delivered: Callable[[str], Awaitable[Delivered]]) -> None:
        self.library = library
        self.delivered = delivered  # a delivery URL → what delivery answers for it
        self.path_of_url = path_of_url  # a delivery URL → the library path it serves
        self.fields = fields
        self.urls_for = urls_for
        self.purge_id = purge_id  # a purge request id the purge API will know

    @route
    async def list(self, request: Request) -> Response:
        """GET /v1/files."""
        query = Query.parse(dict(request.query_params))
        return answer(200, await list_assets(self.library.db, query,
                                             urls(request, self.urls_for)))

    @route
    async def details(self, request: Request) -> Response:
        """GET /v1/files/{id}/details."""
        row = await self.library.get(request.path_params["file_id"])
        return answer(200, file_object(row, urls(request, self.urls_for)))

    @route
    async def update(self, request: Request) -> Response:
        """PATCH /v1/files/{id}/details."""
        body = await json_body(request)
        unknown = sorted(set(body) - UPDATABLE)
        if unknown:
            raise ApiError(f"Unknown field {unknown[0]!r}.")
        changes = Changes()
        if "publish" in body:
            publish = body["publish"]
            if not isinstance(publish, dict) or not isinstance(publish.get("isPublished"), bool):
                raise ApiError("publish must be {\"isPublished\": true|false}.")
            changes.is_published = publish["isPublished"]
        if "tags" in body:
            changes.tags = [] if body["tags"] is None else string_list(body, "tags")
        if "removeAITags" in body:
            changes.remove_ai_tags = ([] if body["removeAITags"] == "all"
                                      else string_list(body, "removeAITags"))
        if "customCoordinates" in body:
            given = body["customCoordinates"]
            if given is None or given == "":
                changes.clear_custom_coordinates = True
            elif isinstance(given, str):
                changes.custom_coordinates = check_coordinates(given)
            else:
                raise ApiError("customCoordinates must read x,y,width,height.")
        if "customMetadata" in body:
            given = body["customMetadata"]
            if not isinstance(given, dict):
                raise ApiError("customMetadata must be a JSON object.")
            changes.custom_metadata = await self.fields.validate(given)
        if "description" in body:
            changes.description = text(body, "description")
        if body.get("removeAITags") == "all":
            row = await self.library.get(request.path_params["file_id"])
            changes.remove_ai_tags = [t.tag for t in row.tags if t.ai]
        row = await self.library.update(request.path_params["file_id"], changes)
        return answer(200, file_object(row, urls(request, self.urls_for)))

    @route
    async def delete(self, request: Request) -> Response:
        """DELETE /v1/files/{id}."""
        await self.library.delete([request.path_params["file_id"]])
        return answer(204, None)

    @route
    async def bulk_delete(self, request: Request) -> Response:
        """POST /v1/files/batch/deleteByFileIds."""
        ids = string_list(await json_body(request), "fileIds")
        deleted = await self.library.delete(ids)
        return answer(200, {"successfullyDeletedFileIds": deleted})

    @route
    async def add_tags(self, request: Request) -> Response:
        """POST /v1/files/addTags."""
        return await self._tag(request, "add")

    @route
    async def remove_tags(self, request: Request) -> Response:
        """POST /v1/files/removeTags."""
        return await self._tag(request, "remove")

    @route
    async def remove_ai_tags(self, request: Request) -> Response:
        """POST /v1/files/removeAITags."""
        return await self._tag(request, "remove_ai")

    async def _tag(self, request: Request, how: str) -> Response:
        body = await json_body(request)
        ids = string_list(body, "fileIds")
        tags = string_list(body, "AITags" if how == "remove_ai" else "tags")
        updated = await self.library.tag(ids, tags, how)
        return answer(200, {"successfullyUpdatedFileIds": updated})

    @route
    async def copy(self, request: Request) -> Response:
        """POST /v1/files/copy."""
        body = await json_body(request)
        await self.library.copy(str(text(body, "sourceFilePath")),
                                str(text(body, "destinationPath")),
                                flag(body, "includeFileVersions", False))
        return answer(204, None)

    @route
    async def move(self, request: Request) -> Response:
        """POST /v1/files/move."""
        body = await json_body(request)
        await self.library.move(str(text(body, "sourceFilePath")),
                                str(text(body, "destinationPath")))
        return answer(204, None)

    @route
    async def rename(self, request: Request) -> Response:
        """PUT /v1/files/rename."""
        body = await json_body(request)
        await self.library.rename(str(text(body, "filePath")), str(text(body, "newFileName")))
        if flag(body, "purgeCache", False):
            return answer(200, {"purgeRequestId": self.purge_id()})
        return answer(200, {})

    @route
    async def versions(self, request: Request) -> Response:
        """GET /v1/files/{id}/versions."""
        row, found = await self.library.versions(request.path_params["file_id"])
        seen = urls(request, self.urls_for)
        return answer(200, [version_object(row, v, seen) for v in found])

    @route
    async def version(self, request: Request) -> Response:
        """GET /v1/files/{id}/versions/{version_id}."""
        row, found = await self.library.version(request.path_params["file_id"],
                                                request.path_params["version_id"])
        return answer(200, version_object(row, found, urls(request, self.urls_for)))

    @route
    async def delete_version(self, request: Request) -> Response:
        """DELETE /v1/files/{id}/versions/{version_id}."""
        await self.library.delete_version(request.path_params["file_id"],
                                          request.path_params["version_id"])
        return answer(204, None)

    @route
    async def restore_version(self, request: Request) -> Response:
        """PUT /v1/files/{id}/versions/{version_id}/restore."""
        row = await self.library.restore_version(request.path_params["file_id"],
                                                 request.path_params["version_id"])
        return answer(200, file_object(row, urls(request, self.urls_for)))

    @route
    async def metadata(self, request: Request) -> Response:
        """GET /v1/files/{id}/metadata."""
        row = await self.library.get(request.path_params["file_id"])
        return answer(200, await self._metadata(row.storage_key))

    @route
    async def metadata_from_url(self, request: Request) -> Response:
        """GET /v1/metadata?url=: the metadata of what a delivery URL serves: a library
        file's stored bytes, else (another origin's file, a transformation, a signed URL)
        the answer delivery gives for the URL, asked in-process."""
        url = request.query_params.get("url")
        if not url:
            raise ApiError("Missing url parameter.")
        if not url.startswith(("http://", "https://")):
            raise ApiError("url must be an absolute http(s) URL on one of this server's "
                           "endpoints.")
        # A library file's stored bytes only for its plain URL: a transformation (`tr:` in
        # the path or a query) describes a result, which delivery makes.
        plain = "?" not in url and "/tr:" not in urlsplit(url).path
        path = self.path_of_url(url) if plain else None
        row = await self.library.by_path(path) if path is not None else None
        if row is not None:  # the stored bytes, private or not (the caller holds the key)
            return answer(200, await self._metadata(row.storage_key))
        got = await self.delivered(url)
        if got.status == 404:
            raise ApiNotFound("Nothing is served at this URL.")
        if got.status != 200:
            raise ApiError(f"The URL could not be fetched (HTTP {got.status}"
                           + (f", {got.headers['ik-error']}" if "ik-error" in got.headers
                              else "") + ").")
        if got.body is None:
            raise ApiError("The file at this URL is too large to read its metadata.")
        # Named with the URL's extension: formats libvips does not read are named by it.
        suffix = PurePosixPath(urlsplit(url).path).suffix[:16]
        scratch = self.library.storage.temporary().with_suffix(suffix or ".part")
        return answer(200, await asyncio.to_thread(_metadata_of_bytes, got.body, scratch))

    async def _metadata(self, key: str) -> dict[str, Any]:
        async with self.library.storage.readable(key) as path:
            if path is None:
                raise ApiNotFound("The file's bytes are missing.")
            return await asyncio.to_thread(read_metadata, path)


def _metadata_of_bytes(data: bytes, scratch: Path) -> dict[str, Any]:
    """`read_metadata` of bytes, through a temporary file (libvips and Pillow read paths)."""
    try:
        scratch.write_bytes(data)
        return read_metadata(scratch)
    finally:
        scratch.unlink(missing_ok=True)
