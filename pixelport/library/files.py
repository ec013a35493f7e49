"""The library's files: upload, details, tags, copy, move, rename, delete, versions.

Every change is one database transaction, retried when it loses a race with another worker or
node (a path taken meanwhile). Bytes are stored before the row that names them commits, and
deleted only after the row that named them is gone: a crash at any moment leaves no row
without its bytes, only unreferenced bytes, which `Storage.sweep` removes. Once a change has
committed, `on_change` gets the paths it touched (caches are purged there, in every worker,
before the API answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pixelport.errors import ApiConflict, ApiError, ApiNotFound
from pixelport.library import names
from pixelport.library.metadata import Probe, probe, quick_probe
from pixelport.library.records import FileRow, TagRow, snapshot
from pixelport.library.storage import BLOBS, FolderStorage, Storage
from pixelport.state import direct
from pixelport.state.db import Database
from pixelport.state.models import File, FileTag, FileVersion, Folder, RetiredPath, new_id, now
from pixelport.state.upsert import insert_ignore

log = logging.getLogger("pixelport.library")
OnChange = Callable[[Sequence[str]], Awaitable[None]]
# What every upload runs, straight on SQLite's connection (pixelport.state.direct).
FILE_PATHS, FOLDER_PATHS = direct.Present(File.path), direct.Present(Folder.path)
INSERT_FILE, INSERT_TAGS, INSERT_VERSION = (direct.Insert(File.__table__),
                                            direct.Insert(FileTag.__table__),
                                            direct.Insert(FileVersion.__table__))
QUICK_PROBE_BYTES = 1024 * 1024
MAX_VERSIONS = 100  # ImageKit's limit; the oldest non-current versions go first


@dataclass
class Upload:
    """One file to store, with the upload's options (names already cleaned)."""

    # The file's bytes (a small upload, held in memory), or a file of the storage's own
    # temporary folder (moved into place).
    source: Path | bytes
    name: str
    folder: str = "/"
    tags: list[str] | None = None
    use_unique_file_name: bool = True
    is_private: bool | None = None
    is_published: bool | None = None
    custom_coordinates: str | None = None
    custom_metadata: dict[str, Any] | None = None
    description: str | None = None
    overwrite_file: bool = True
    overwrite_tags: bool = True
    overwrite_custom_metadata: bool = True
    overwrite_ai_tags: bool = True
    # More to write in the upload's own transaction, first: a client-side upload's token
    # recorded as spent (security/upload_tokens.py); raising rolls the upload back.
    also: Callable[[Session], None] | None = None


@dataclass
class Changes:
    """A details update (`PATCH /v1/files/{id}/details`); None leaves a field as it is."""

    tags: list[str] | None = None
    custom_coordinates: str | None = None
    clear_custom_coordinates: bool = False
    custom_metadata: dict[str, Any] | None = None
    description: str | None = None
    remove_ai_tags: list[str] | None = None
    is_published: bool | None = None
    is_private: bool | None = None


class Library:
    """The media library's files, over a database and a storage."""

    def __init__(self, db: Database, storage: Storage,
                 on_change: OnChange | None = None) -> None:
        self.db = db
        self.storage = storage
        self.on_change = on_change

    async def changed(self, paths: Iterable[str]) -> None:
        """Tell the caches (every worker's) that these paths' bytes or rules changed."""
        unique = sorted(set(paths))
        if unique and self.on_change is not None:
            await self.on_change(unique)

    # -- reading ------------------------------------------------------------------------

    async def get(self, file_id: str) -> File:
        """A file by id (404 when there is none)."""
        async with self.db.read() as session:
            row = await session.get(File, file_id)
            if row is None:
                raise ApiNotFound("The requested file does not exist.")
            return row

    async def by_path(self, path: str) -> File | None:
        """A file by its stored path (`/a/b.jpg`)."""
        async with self.db.read() as session:
            found: File | None = await session.scalar(select(File).where(File.path == path))
            return found

    async def file_version(self, file_id: str, version_id: str) -> FileVersion | None:
        """One version of a file, or None (`ik-obj-version` on delivery)."""
        async with self.db.read() as session:
            version = await session.get(FileVersion, version_id)
            return version if version is not None and version.file_id == file_id else None

    async def is_retired(self, path: str) -> bool:
        """Whether the API has deleted, moved or renamed the folder file at `path`."""
        async with self.db.read() as session:
            return await session.get(RetiredPath, path) is not None

    # -- upload ---------------------------------------------------------------------------

    async def upload(self, upload: Upload) -> File | FileRow:
        """Store a new file, or a new version of the file at its path."""
        source = upload.source
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        if size == 0:
            raise ApiError("The file is empty.")
        # A small JPEG's header is read here (a few KB of at most 1 MB; less time than the
        # thread hop it saves); anything else is libvips' to probe, in a thread, from a file.
        facts = quick_probe(source) if size <= QUICK_PROBE_BYTES else None
        if facts is None:
            facts = await asyncio.to_thread(self._probe, source, upload.name)
        if facts.file_type == "image" and not facts.width:
            facts = Probe(None, None, False, facts.format, facts.mime, "non-image")
        key = self.storage.new_key(upload.name)
        store = self.storage
        try:
            if isinstance(store, FolderStorage):
                # The bytes are made durable first, in the same thread hop as the transaction.
                row = await self.db.retrying(lambda s: self._store(s, upload, facts, size, key),
                                             first=lambda: store.write(source, key))
            else:  # a bucket's PUT, awaited before the database's write thread is asked
                await store.put(source, key)
                row = await self.db.retrying(lambda s: self._store(s, upload, facts, size, key))
        except asyncio.CancelledError:
            raise  # it may have committed: the sweep keeps the bytes if a row names them
        except BaseException:
            await self.storage.delete(key)  # its row never committed
            raise
        await self.changed([row.path])
        return row

    def _probe(self, source: Path | bytes, name: str) -> Probe:
        """`probe` of a file, or of bytes through a temporary file (libvips reads names)."""
        if not isinstance(source, bytes):
            return probe(source, name)
        scratch = self.storage.temporary()
        try:
            scratch.write_bytes(source)
            return probe(scratch, name)
        finally:
            scratch.unlink(missing_ok=True)

    def _store(self, session: Session, upload: Upload, facts: Probe, size: int,
               key: str) -> File | FileRow:
        if upload.also is not None:
            upload.also(session)
        name = upload.name
        if upload.use_unique_file_name:
            name = names.unique_name(name)
        path = names.file_path(upload.folder, name)
        # A plain read first: most uploads are new files, stored without the ORM's unit of
        # work (`_insert_new`); only an overwrite loads and locks the existing row.
        connection = session.connection()  # once: each call costs ~30 us
        existing = None
        if FILE_PATHS.run(connection, [path]):
            existing = _locked(session, path)
        if existing is not None and not upload.overwrite_file:
            raise ApiConflict(f"A file already exists at {path}; set overwriteFile to replace it.")
        ensure_folders(session, upload.folder)
        if existing is None:
            return _insert_new(connection, upload, path, name, facts, size, key)
        row = existing
        row.storage_key, row.size, row.updated_at = key, size, now()
        row.file_type, row.mime, row.format = facts.file_type, facts.mime, facts.format
        row.width, row.height, row.has_alpha = facts.width, facts.height, facts.has_alpha
        row.duration, row.bit_rate = facts.duration, facts.bit_rate
        row.video_codec, row.audio_codec = facts.video_codec, facts.audio_codec
        if upload.is_private is not None:
            row.is_private = upload.is_private
        if upload.is_published is not None:
            row.is_published = upload.is_published
        if upload.custom_coordinates is not None:
            row.custom_coordinates = upload.custom_coordinates or None
        if upload.description is not None:
            row.description = upload.description
        if upload.custom_metadata is not None:
            row.custom_metadata = upload.custom_metadata
        elif upload.overwrite_custom_metadata:
            row.custom_metadata = {}
        keep_user = upload.tags is None and not upload.overwrite_tags
        user = ([t.tag for t in row.tags if not t.ai] if keep_user else (upload.tags or []))
        ai = [] if upload.overwrite_ai_tags else [t.tag for t in row.tags if t.ai]
        set_tags(row, user, ai)
        self.new_version(session, row, key)
        return row

    def new_version(self, session: Session, row: File, key: str) -> None:
        """Make `key` the file's current bytes, as its next version (a new file's first
        version is `_insert_new`'s)."""
        with session.no_autoflush:  # a new row is flushed below, complete
            number = (session.scalar(select(func.max(FileVersion.number))
                                     .where(FileVersion.file_id == row.id)) or 0) + 1
        # The first version's id is the file's, as on ImageKit.
        version = FileVersion(id=row.id if number == 1 else new_id(), file_id=row.id,
                              number=number, storage_key=key, created_at=row.updated_at)
        row.version_id, row.version_number = version.id, number
        session.flush()
        version.snapshot = snapshot(row)
        session.add(version)
        session.flush()
        self._prune_versions(session, row)

    def _prune_versions(self, session: Session, row: File) -> None:
        count = session.scalar(select(func.count()).select_from(FileVersion)
                                     .where(FileVersion.file_id == row.id)) or 0
        if count <= MAX_VERSIONS:
            return
        oldest = (session.scalars(
            select(FileVersion).where(FileVersion.file_id == row.id,
                                      FileVersion.id != row.version_id)
            .order_by(FileVersion.number).limit(count - MAX_VERSIONS))).all()
        for version in oldest:
            session.delete(version)
        # Their bytes go with the next sweep, once nothing references them.

    # -- details and tags -----------------------------------------------------------------

    async def update(self, file_id: str, changes: Changes) -> File:
        """Change a file's details; caches follow when privacy or coordinates change."""
        def work(session: Session) -> tuple[File, bool]:
            row = _locked_id(session, file_id)
            affects_delivery = False
            if changes.tags is not None:
                set_tags(row, changes.tags, [t.tag for t in row.tags if t.ai])
            if changes.remove_ai_tags is not None:
                drop = set(changes.remove_ai_tags)
                set_tags(row, [t.tag for t in row.tags if not t.ai],
                         [t.tag for t in row.tags if t.ai and t.tag not in drop])
            if changes.clear_custom_coordinates or changes.custom_coordinates is not None:
                new = None if changes.clear_custom_coordinates else changes.custom_coordinates
                affects_delivery |= new != row.custom_coordinates
                row.custom_coordinates = new
            if changes.custom_metadata is not None:
                row.custom_metadata = {**row.custom_metadata, **changes.custom_metadata}
            if changes.description is not None:
                row.description = changes.description
            if changes.is_published is not None:
                affects_delivery |= changes.is_published != row.is_published
                row.is_published = changes.is_published
            if changes.is_private is not None:
                affects_delivery |= changes.is_private != row.is_private
                row.is_private = changes.is_private
            row.updated_at = now()
            return row, affects_delivery

        row, affects = await self.db.retrying(work)
        if affects:
            await self.changed([row.path])
        return row

    async def tag(self, file_ids: Sequence[str], tags: Sequence[str], how: str) -> list[str]:
        """Add (`add`), remove (`remove`) or remove AI tags (`remove_ai`) on many files at
        once; 404 listing the missing ids when any does not exist (and nothing changes)."""
        def work(session: Session) -> list[str]:
            rows = {r.id: r for r in (session.scalars(
                select(File).where(File.id.in_(list(file_ids))).with_for_update())).all()}
            missing = [i for i in file_ids if i not in rows]
            if missing:
                raise ApiNotFound("The requested file(s) do not exist.",
                                  {"missingFileIds": missing})
            for row in rows.values():
                user = [t.tag for t in row.tags if not t.ai]
                ai = [t.tag for t in row.tags if t.ai]
                if how == "add":
                    user += [t for t in tags if t not in user]
                elif how == "remove":
                    user = [t for t in user if t not in tags]
                else:
                    ai = [t for t in ai if t not in tags]
                set_tags(row, user, ai)
                row.updated_at = now()
            return list(dict.fromkeys(file_ids))

        return await self.db.retrying(work)

    # -- delete ---------------------------------------------------------------------------

    async def delete(self, file_ids: Sequence[str]) -> list[str]:
        """Delete files with every version (all or nothing: 404 naming the missing ids)."""
        def work(session: Session) -> tuple[list[str], list[str]]:
            rows = (session.scalars(
                select(File).where(File.id.in_(list(file_ids))).with_for_update())).all()
            found = {r.id for r in rows}
            missing = [i for i in file_ids if i not in found]
            if missing:
                raise ApiNotFound("The requested file(s) do not exist.",
                                  {"missingFileIds": missing})
            keys = list((session.scalars(
                select(FileVersion.storage_key).where(FileVersion.file_id.in_(found)))).all())
            session.execute(delete(FileVersion).where(FileVersion.file_id.in_(found)))
            session.execute(delete(FileTag).where(FileTag.file_id.in_(found)))
            session.execute(delete(File).where(File.id.in_(found)))
            retire(session, [r.path for r in rows])
            retire(session, ["/" + k for k in keys if not k.startswith(BLOBS)])
            return [r.path for r in rows], unreferenced(session, keys)

        paths, garbage = await self.db.retrying(work)
        await self.changed(paths)
        await self.drop_bytes(garbage)
        return list(dict.fromkeys(file_ids))

    async def drop_bytes(self, keys: Iterable[str]) -> None:
        """Delete bytes no row names any more (after that has committed)."""
        for key in keys:
            try:
                await self.storage.delete(key)
            except OSError as exc:  # the sweep will try again
                log.warning("could not delete stored bytes %s: %s", key, exc)

    # -- copy, move, rename -----------------------------------------------------------------

    async def copy(self, source_path: str, destination: str, include_versions: bool) -> None:
        """Copy a file into a folder; onto a file of the same name, as new versions of it."""
        source = "/" + source_path.strip().lstrip("/")
        folder = names.clean_folder(destination)

        def work(session: Session) -> str:
            row = _file_at(session, source)
            return self.place(session, row, folder, row.name,
                                     include_versions=include_versions, keep_source=True)

        await self.changed([await self.db.retrying(work)])

    async def move(self, source_path: str, destination: str) -> None:
        """Move a file into a folder; onto a file of the same name, as new versions of it."""
        source = "/" + source_path.strip().lstrip("/")
        folder = names.clean_folder(destination)

        def work(session: Session) -> list[str]:
            row = _file_at(session, source)
            if row.folder == folder:
                return []
            target = self.place(session, row, folder, row.name, include_versions=True,
                                       keep_source=False)
            return [source, target]

        await self.changed(await self.db.retrying(work))

    async def rename(self, file_path: str, new_name: str) -> str:
        """Rename a file in its folder (409 when the name is taken); the new path."""
        source = "/" + file_path.strip().lstrip("/")
        cleaned = names.clean_name(new_name)

        def work(session: Session) -> str:
            row = _file_at(session, source)
            target = names.file_path(row.folder, cleaned)
            if target == row.path:
                return target
            if _locked(session, target) is not None:
                raise ApiConflict(f"A file named {cleaned} already exists in {row.folder}.")
            retire(session, [row.path])
            row.path, row.name, row.updated_at = target, cleaned, now()
            return target

        target = await self.db.retrying(work)
        await self.changed([source, target])
        return target

    def place(self, session: Session, row: File, folder: str, name: str, *,
                     include_versions: bool, keep_source: bool) -> str:
        """Copy or move `row` to `folder/name`; the target path."""
        target = names.file_path(folder, name)
        ensure_folders(session, folder)
        versions = list((session.scalars(
            select(FileVersion).where(FileVersion.file_id == row.id)
            .order_by(FileVersion.number))).all())
        if not include_versions:
            versions = [v for v in versions if v.id == row.version_id]
        # The current version last: it stays current where the file lands.
        versions.sort(key=lambda v: (v.id == row.version_id, v.number))
        existing = _locked(session, target)
        if existing is None and not keep_source:
            retire(session, [row.path])
            row.path, row.folder, row.updated_at = target, folder, now()
            return target
        if existing is None:
            existing = File(id=new_id(), path=target, folder=folder, name=name, tags=[],
                            created_at=now(), custom_metadata={}, embedded_metadata={})
            copy_facts(row, existing)
            set_tags(existing, [t.tag for t in row.tags if not t.ai],
                     [t.tag for t in row.tags if t.ai])
            session.add(existing)
        # Appended as versions of the target, oldest first; the last becomes current.
        for version in versions:
            copy_facts(row, existing)
            self.new_version(session, existing, version.storage_key)
        if not keep_source:
            session.execute(delete(FileVersion).where(FileVersion.file_id == row.id))
            session.delete(row)
            retire(session, [row.path])
        return target

    # -- versions -------------------------------------------------------------------------

    async def versions(self, file_id: str) -> tuple[File, list[FileVersion]]:
        """A file and its versions, oldest first."""
        async with self.db.read() as session:
            row = await session.get(File, file_id)
            if row is None:
                raise ApiNotFound("The requested file does not exist.")
            found = (await session.scalars(select(FileVersion).where(
                FileVersion.file_id == file_id).order_by(FileVersion.number))).all()
            return row, list(found)

    async def version(self, file_id: str, version_id: str) -> tuple[File, FileVersion]:
        """One version of a file (404 when either is unknown)."""
        row, found = await self.versions(file_id)
        for version in found:
            if version.id == version_id:
                return row, version
        raise ApiNotFound("The requested file version does not exist.")

    async def delete_version(self, file_id: str, version_id: str) -> None:
        """Delete a version that is not the current one (400 for the current one); results
        made from it (`ik-obj-version`) are purged."""
        def work(session: Session) -> tuple[list[str], str]:
            row = _locked_id(session, file_id)
            version = session.get(FileVersion, version_id)
            if version is None or version.file_id != file_id:
                raise ApiNotFound("The requested file version does not exist.")
            if version.id == row.version_id:
                raise ApiError("The current version of a file cannot be deleted.")
            session.delete(version)
            session.flush()
            return unreferenced(session, [version.storage_key]), row.path

        keys, path = await self.db.retrying(work)
        await self.changed([path])
        await self.drop_bytes(keys)

    async def restore_version(self, file_id: str, version_id: str) -> File:
        """Make an older version current again (its bytes and its fields)."""
        def work(session: Session) -> File:
            row = _locked_id(session, file_id)
            version = session.get(FileVersion, version_id)
            if version is None or version.file_id != file_id:
                raise ApiNotFound("The requested file version does not exist.")
            kept = version.snapshot
            row.storage_key, row.version_id = version.storage_key, version.id
            row.version_number = version.number
            for column in ("file_type", "mime", "format", "size", "width", "height",
                           "has_alpha", "is_private", "is_published", "custom_coordinates",
                           "description"):
                if column in kept:
                    setattr(row, column, kept[column])
            set_video(row, kept.get("video") or {})
            row.custom_metadata = kept.get("custom_metadata") or {}
            set_tags(row, kept.get("tags") or [], kept.get("ai_tags") or [])
            row.updated_at = now()
            return row

        row = await self.db.retrying(work)
        await self.changed([row.path])
        return row


def set_tags(row: File, user: Sequence[str], ai: Sequence[str]) -> None:
    """Replace a file's tags and AITags (duplicates dropped, order kept)."""
    wanted = [(t, False) for t in dict.fromkeys(user)] + [(t, True) for t in dict.fromkeys(ai)]
    current = {(t.tag, t.ai): t for t in row.tags}
    row.tags = [current.get(item) or FileTag(tag=item[0], ai=item[1]) for item in wanted]
    for position, tag in enumerate(row.tags):
        tag.position = position


def _insert_new(connection: Connection, upload: Upload, path: str, name: str, facts: Probe,
                size: int, key: str) -> FileRow:
    """A new file, inserted with its first version by plain INSERTs (the ORM's unit of work,
    instances and attribute events were most of this transaction's time); the version's id
    is the file's, as on ImageKit. Answered as a FileRow (plain values)."""
    file_id, moment = new_id(), now()
    values: dict[str, Any] = {
        "id": file_id, "path": path, "folder": upload.folder, "name": name,
        "version_id": file_id, "version_number": 1, "storage_key": key,
        "file_type": facts.file_type, "mime": facts.mime, "format": facts.format,
        "size": size, "width": facts.width, "height": facts.height,
        "has_alpha": facts.has_alpha, "is_private": bool(upload.is_private),
        "is_published": upload.is_published is not False,
        "custom_coordinates": upload.custom_coordinates or None,
        "custom_metadata": upload.custom_metadata or {}, "embedded_metadata": {},
        "description": upload.description, "created_at": moment, "updated_at": moment,
        "duration": facts.duration, "video_codec": facts.video_codec,
        "audio_codec": facts.audio_codec, "bit_rate": facts.bit_rate}
    tags = list(dict.fromkeys(upload.tags or []))
    row = FileRow(**values, tags=tuple(TagRow(tag, False) for tag in tags))
    INSERT_FILE.run(connection, [values])
    INSERT_TAGS.run(connection, [{"file_id": file_id, "tag": tag, "ai": False,
                                  "position": position} for position, tag in enumerate(tags)])
    INSERT_VERSION.run(connection, [{"id": file_id, "file_id": file_id, "number": 1,
                                     "storage_key": key, "snapshot": snapshot(row),
                                     "created_at": moment}])
    return row


def copy_facts(source: File, target: File) -> None:
    for column in ("storage_key", "file_type", "mime", "format", "size", "width", "height",
                   "has_alpha", "is_private", "is_published", "custom_coordinates",
                   "description", "duration", "video_codec", "audio_codec", "bit_rate"):
        setattr(target, column, getattr(source, column))
    target.custom_metadata = dict(source.custom_metadata)
    target.embedded_metadata = dict(source.embedded_metadata)
    target.updated_at = now()


def set_video(row: File, facts: dict[str, Any]) -> None:
    """A version's video facts (records.video_facts' names) back onto its file."""
    row.duration, row.bit_rate = facts.get("duration"), facts.get("bitRate")
    row.video_codec, row.audio_codec = facts.get("videoCodec"), facts.get("audioCodec")


def ensure_folders(session: Session, folder: str) -> None:
    """Make the folder rows on the way to `folder` (a concurrent insert is no error)."""
    wanted = names.parent_folders(folder)
    if not wanted:
        return
    # Mostly they are all there: one read instead of an insert per level.
    there = FOLDER_PATHS.run(session.connection(), wanted)
    for path in wanted:
        if path in there:
            continue
        parent, name = path[:-1].rsplit("/", 1)
        session.execute(insert_ignore(session, Folder, {
            "id": new_id(), "path": path, "parent": parent + "/", "name": name,
            "custom_metadata": {}, "created_at": now(), "updated_at": now()}, "path"))


def retire(session: Session, paths: Iterable[str]) -> None:
    """Record that the folder files at these paths are no longer the library's."""
    for path in set(paths):
        session.execute(insert_ignore(session, RetiredPath,
                                            {"path": path, "retired_at": now()}, "path"))


def unreferenced(session: Session, keys: Iterable[str]) -> list[str]:
    """Which of these storage keys no version names any more."""
    wanted = set(keys)
    if not wanted:
        return []
    still = set((session.scalars(select(FileVersion.storage_key).where(
        FileVersion.storage_key.in_(wanted)))).all())
    return sorted(wanted - still)


def _locked(session: Session, path: str) -> File | None:
    found: File | None = session.scalar(
        select(File).where(File.path == path).with_for_update())
    return found


def _locked_id(session: Session, file_id: str) -> File:
    found: File | None = session.scalar(
        select(File).where(File.id == file_id).with_for_update())
    if found is None:
        raise ApiNotFound("The requested file does not exist.")
    return found


def _file_at(session: Session, path: str) -> File:
    found = _locked(session, path)
    if found is None:
        raise ApiNotFound(f"No file exists at {path}.")
    return found
