"""Folders: create, delete with everything inside, and the bulk jobs that copy, move or rename
one. A job runs as one transaction before its id is returned, so `GET /v1/bulkJobs/{id}`
always finds it Completed (or failed, with nothing changed)."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from pixelport.errors import ApiConflict, ApiError, ApiNotFound
from pixelport.library import names
from pixelport.library.files import (
    Library,
    copy_facts,
    ensure_folders,
    retire,
    set_tags,
    unreferenced,
)
from pixelport.library.storage import BLOBS
from pixelport.state.models import BulkJob, File, FileTag, FileVersion, Folder, new_id, now


class Folders:
    """The library's folders, over its files."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.db = library.db

    async def create(self, name: str, parent: str | None) -> None:
        """Make `parent/name` (and the folders on the way); no error when it exists."""
        folder = names.clean_folder(f"{parent or '/'}/{name}")
        if folder == "/":
            raise ApiError("folderName is required.")

        def work(session: Session) -> None:
            ensure_folders(session, folder)

        await self.db.retrying(work)

    async def delete(self, folder_path: str) -> None:
        """Delete a folder, its subfolders and every file in them (404 when it does not exist)."""
        folder = names.clean_folder(folder_path)

        def work(session: Session) -> tuple[list[str], list[str]]:
            if session.scalar(select(Folder.id).where(Folder.path == folder)) is None:
                raise ApiNotFound(f"No folder exists at {folder_path}.")
            rows = (session.scalars(select(File).where(_inside(folder)))).all()
            ids = [r.id for r in rows]
            keys = list((session.scalars(select(FileVersion.storage_key).where(
                FileVersion.file_id.in_(ids)))).all())
            session.execute(delete(FileVersion).where(FileVersion.file_id.in_(ids)))
            session.execute(delete(FileTag).where(FileTag.file_id.in_(ids)))
            session.execute(delete(File).where(File.id.in_(ids)))
            session.execute(delete(Folder).where(
                or_(Folder.path == folder, Folder.path.startswith(folder, autoescape=True))))
            retire(session, [r.path for r in rows])
            retire(session, ["/" + k for k in keys if not k.startswith(BLOBS)])
            return [r.path for r in rows], unreferenced(session, keys)

        paths, garbage = await self.db.retrying(work)
        await self.library.changed(paths)
        await self.library.drop_bytes(garbage)

    async def copy(self, source: str, destination: str, include_versions: bool) -> str:
        """Copy a folder into another (as `destination/<name>/`); the job id."""
        return await self._job("COPY_FOLDER", source, destination, None, include_versions, True)

    async def move(self, source: str, destination: str) -> str:
        """Move a folder into another; the job id."""
        return await self._job("MOVE_FOLDER", source, destination, None, True, False)

    async def rename(self, folder_path: str, new_name: str) -> str:
        """Rename a folder in its parent; the job id."""
        return await self._job("RENAME_FOLDER", folder_path, None, new_name, True, False)

    async def job(self, job_id: str) -> BulkJob:
        """A bulk job by id (404 when unknown)."""
        async with self.db.read() as session:
            found = await session.get(BulkJob, job_id)
            if found is None:
                raise ApiNotFound("The requested job does not exist.")
            return found

    async def _job(self, kind: str, source_path: str, destination: str | None,
                   new_name: str | None, include_versions: bool, keep: bool) -> str:
        source = names.clean_folder(source_path)
        if source == "/":
            raise ApiConflict("The root folder cannot be copied, moved or renamed.")
        parent, name = source[:-1].rsplit("/", 1)
        if new_name is not None:
            target = names.clean_folder(f"{parent}/{names.clean_name(new_name)}")
        else:
            target = names.clean_folder(f"{destination or '/'}/{name}")
        if target.startswith(source):
            raise ApiConflict("A folder cannot be copied or moved into itself.")
        job_id = new_id()

        def work(session: Session) -> list[str]:
            if session.scalar(select(Folder.id).where(Folder.path == source)) is None:
                raise ApiNotFound(f"No folder exists at {source_path}.")
            if new_name is not None and session.scalar(
                    select(Folder.id).where(Folder.path == target)) is not None:
                raise ApiConflict(f"A folder already exists at {target}.")
            touched = self._transfer(session, source, target, include_versions, keep)
            session.add(BulkJob(id=job_id, type=kind, status="Completed", created_at=now()))
            return touched

        await self.library.changed(await self.db.retrying(work))
        return job_id

    def _transfer(self, session: Session, source: str, target: str,
                        include_versions: bool, keep: bool) -> list[str]:
        """Copy or move every folder and file under `source` to `target`; paths touched."""
        folders = (session.scalars(select(Folder).where(
            or_(Folder.path == source, Folder.path.startswith(source, autoescape=True))))).all()
        for row_folder in folders:
            ensure_folders(session, target + row_folder.path[len(source):])
            if not keep:
                session.delete(row_folder)
        touched: list[str] = []
        rows = (session.scalars(select(File).where(_inside(source)).with_for_update())).all()
        for row in rows:
            folder = target + row.folder[len(source):]
            destination = names.file_path(folder, row.name)
            if session.scalar(select(File.id).where(File.path == destination)):
                # Onto an existing file: appended as its versions (as files.copy/move do).
                self.library.place(session, row, folder, row.name,
                                          include_versions=include_versions, keep_source=keep)
            elif keep:
                copy = File(id=new_id(), path=destination, folder=folder, name=row.name,
                            tags=[], created_at=now(), custom_metadata={},
                            embedded_metadata={})
                copy_facts(row, copy)
                set_tags(copy, [t.tag for t in row.tags if not t.ai],
                         [t.tag for t in row.tags if t.ai])
                session.add(copy)
                versions = (session.scalars(select(FileVersion).where(
                    FileVersion.file_id == row.id).order_by(FileVersion.number))).all()
                if not include_versions:
                    versions = [v for v in versions if v.id == row.version_id]
                for version in sorted(versions, key=lambda v: (v.id == row.version_id,
                                                                v.number)):
                    self.library.new_version(session, copy, version.storage_key)
            else:
                touched.append(row.path)
                retire(session, [row.path])
                row.path, row.folder, row.updated_at = destination, folder, now()
            touched += [row.path, destination]
        session.flush()
        return touched


def _inside(folder: str) -> ColumnElement[bool]:
    """Files in `folder` or any folder below it."""
    return or_(File.folder == folder, File.folder.startswith(folder, autoescape=True))
