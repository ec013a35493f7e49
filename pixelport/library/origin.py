"""The media library as the first origin of every endpoint: database rows first, then files
put in the folder before they were indexed (served by path until `pixelport library scan`).

A row's file is served with its privacy (a private file needs a signed URL) and its custom
coordinates (fo-custom); an unpublished file is not served. `ik-obj-version` asks for one of
a row's versions (its bytes and the facts it had); a folder file has none and is served as
is. A path the API has deleted, moved or renamed is never served from the folder again.
"""

from __future__ import annotations

import logging

from pixelport.errors import DatabaseUnavailable, NotFound, VersionNotFound
from pixelport.library.files import Library
from pixelport.library.storage import INTERNAL
from pixelport.origins.base import FetchOptions, Origin, Original
from pixelport.state.db import is_unreachable
from pixelport.state.models import File

log = logging.getLogger("pixelport.library")


class LibraryFiles:
    """The media library origin, over the library's records and its folder."""

    name = "library"

    def __init__(self, library: Library, folder: Origin) -> None:
        self.library = library
        self.folder = folder

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """The file at `path`: its current version when indexed, else the folder's file;
        DatabaseUnavailable when the records cannot be read (the endpoint's origins are
        tried next)."""
        try:
            return await self._fetch(path, options)
        except Exception as exc:
            if is_unreachable(exc):
                log.warning("media library: the database did not answer: %s", exc)
                raise DatabaseUnavailable() from None
            raise

    async def _fetch(self, path: str, options: FetchOptions) -> Original:
        stored = "/" + path.lstrip("/")
        if path.lstrip("/").split("/", 1)[0] == INTERNAL:
            raise NotFound(f"No file was found in the media library at {path!r}")
        row = await self.library.by_path(stored)
        if row is None:
            if await self.library.is_retired(stored):
                raise NotFound(f"No file was found in the media library at {path!r}")
            return await self.folder.fetch(path, options)
        if not row.is_published:
            raise NotFound(f"The file at {path!r} is not published")
        if options.version and options.version != row.version_id:
            return await self._version(row, path, options.version, options)
        original = await self.folder.fetch(row.storage_key, options)
        original.private = row.is_private
        original.custom_coordinates = row.custom_coordinates
        original.content_type = row.mime or original.content_type
        original.last_modified = row.updated_at
        return original

    async def _version(self, row: File, path: str, version_id: str,
                       options: FetchOptions) -> Original:
        """An older version's bytes, with the custom coordinates and type it had; private if
        the file is private now or was then."""
        version = await self.library.file_version(row.id, version_id)
        if version is None:
            raise VersionNotFound(f"The file at {path!r} has no version {version_id!r}")
        kept = version.snapshot
        original = await self.folder.fetch(version.storage_key, options)
        original.private = row.is_private or bool(kept.get("is_private"))
        original.custom_coordinates = kept.get("custom_coordinates")
        original.content_type = kept.get("mime") or original.content_type
        original.last_modified = version.created_at
        return original

    async def aclose(self) -> None:
        """Nothing pooled here (the database is closed by its owner)."""
