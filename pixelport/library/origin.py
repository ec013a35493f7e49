"""The media library as the first origin of every endpoint: database rows first, then files
put in the folder before they were indexed (served by path until `pixelport library scan`).

A row's file is served with its privacy (a private file needs a signed URL) and its custom
coordinates (fo-custom); an unpublished file is not served. A path the API has deleted, moved
or renamed is never served from the folder again.
"""

from __future__ import annotations

from pixelport.errors import NotFound
from pixelport.library.files import Library
from pixelport.library.storage import INTERNAL
from pixelport.origins.base import FetchOptions, Original
from pixelport.origins.library import LibraryOrigin


class LibraryFiles:
    """The media library origin, over the library's records and its folder."""

    name = "library"

    def __init__(self, library: Library, folder: LibraryOrigin) -> None:
        self.library = library
        self.folder = folder

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """The file at `path`: its current version when indexed, else the folder's file."""
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
        original = await self.folder.fetch(row.storage_key, options)
        original.private = row.is_private
        original.custom_coordinates = row.custom_coordinates
        original.content_type = row.mime or original.content_type
        original.last_modified = row.updated_at
        return original

    async def aclose(self) -> None:
        """Nothing pooled here (the database is closed by its owner)."""
