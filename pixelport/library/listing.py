"""`GET /v1/files`: files, file versions and folders, filtered, sorted and paged in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from pixelport.errors import ApiError
from pixelport.library import names, search
from pixelport.library.records import (
    FileRow,
    TagRow,
    Urls,
    file_object,
    folder_object,
    version_object,
)
from pixelport.state.db import Database
from pixelport.state.models import CustomMetadataField, File, FileTag, FileVersion, Folder

SORTS = {"NAME": "name", "CREATED": "created_at", "UPDATED": "updated_at",
         "HEIGHT": "height", "WIDTH": "width", "SIZE": "size", "RELEVANCE": "created_at",
         "DURATION": "created_at"}  # no relevance score or duration yet: by creation
FOLDER_SORTS = {"NAME": "name", "UPDATED": "updated_at"}  # folders have no size


@dataclass(frozen=True)
class Query:
    """The listing's parameters, checked."""

    type: str = "all"  # file | file-version | folder | all
    search_query: str | None = None
    path: str | None = None
    file_type: str = "all"  # all | image | non-image
    tags: tuple[str, ...] = ()
    name: str | None = None
    limit: int = 1000
    skip: int = 0
    sort: str = "ASC_CREATED"

    @classmethod
    def parse(cls, params: dict[str, str]) -> Query:
        """From the request's query parameters (400 on a value out of range)."""
        kind = params.get("type", "all")
        if kind not in ("file", "file-version", "folder", "all"):
            raise ApiError("type must be file, file-version, folder or all.")
        file_type = params.get("fileType", "all")
        if file_type not in ("all", "image", "non-image"):
            raise ApiError("fileType must be all, image or non-image.")
        sort = params.get("sort", "ASC_CREATED").upper()
        direction, _, column = sort.partition("_")
        if direction not in ("ASC", "DESC") or column not in SORTS:
            raise ApiError(f"Invalid sort {params.get('sort')!r}: use ASC_ or DESC_ followed by "
                           "NAME, CREATED, UPDATED, HEIGHT, WIDTH, SIZE or RELEVANCE.")
        limit, skip = _integer(params, "limit", 1000, 1, 1000), _integer(params, "skip", 0, 0)
        tags = tuple(t.strip() for t in params.get("tags", "").split(",") if t.strip())
        path = params.get("path")
        return cls(kind, params.get("searchQuery") or None,
                   names.clean_folder(path) if path else None, file_type, tags,
                   params.get("name") or None, limit, skip, sort)


async def list_assets(db: Database, query: Query, urls: Urls) -> list[dict[str, Any]]:
    """The page of folders and files (folders first) the query asks for."""
    async with db.read() as session:
        found: list[dict[str, Any]] = []
        skip, limit = query.skip, query.limit
        if query.type in ("folder", "all") and query.search_query is None:
            folders = (await session.scalars(_folders(query).offset(skip).limit(limit))).all()
            found += [folder_object(f) for f in folders]
            if query.type == "all":
                # Files come after every folder: skip past what the folders used up.
                total = await session.scalar(select(func.count()).select_from(
                    _folders(query).order_by(None).subquery()))
                skip, limit = max(0, skip - (total or 0)), limit - len(folders)
        if query.type in ("file", "all") and limit > 0:
            where = await _file_filter(session, query)
            found += [file_object(r, urls) for r in await _file_rows(
                session, _sorted(select(*FILE_COLUMNS).where(where), query)
                .offset(skip).limit(limit))]
        elif query.type == "file-version":
            where = await _file_filter(session, query)
            pairs = (await session.execute(
                select(File, FileVersion).join(FileVersion, FileVersion.file_id == File.id)
                .where(where).order_by(File.created_at, FileVersion.number)
                .offset(skip).limit(limit))).all()
            found += [version_object(f, v, urls) for f, v in pairs]
        return found


FILE_COLUMNS = tuple(File.__table__.columns)


async def _file_rows(session: AsyncSession, statement: Select[Any]) -> list[FileRow]:
    """The files a statement over FILE_COLUMNS selects, each with its tags (one query)."""
    rows = (await session.execute(statement)).all()
    tags: dict[str, list[TagRow]] = {}
    if rows:
        found = await session.execute(
            select(FileTag.file_id, FileTag.tag, FileTag.ai)
            .where(FileTag.file_id.in_([r.id for r in rows]))
            .order_by(FileTag.file_id, FileTag.position))
        for file_id, tag, ai in found:
            tags.setdefault(file_id, []).append(TagRow(tag, ai))
    return [FileRow(**row._mapping, tags=tuple(tags.get(row.id, ()))) for row in rows]


def _folders(query: Query) -> Select[Folder]:
    statement = select(Folder)
    if query.path is not None:
        statement = statement.where(Folder.parent == query.path)
    if query.name:
        statement = statement.where(Folder.name == query.name)
    direction, _, column = query.sort.partition("_")
    attribute = getattr(Folder, FOLDER_SORTS.get(column, "created_at"))
    return statement.order_by(attribute.desc() if direction == "DESC" else attribute.asc(),
                              Folder.id)


async def _file_filter(session: AsyncSession, query: Query) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if query.path is not None:
        clauses.append(File.folder == query.path)
    if query.search_query is not None:
        fields = {f.name: str(f.schema.get("type", "Text")) for f in (await session.scalars(
            select(CustomMetadataField).where(CustomMetadataField.deleted.is_(False)))).all()}
        try:
            clauses.append(search.where(query.search_query, fields=fields))
        except search.SearchError as exc:
            raise ApiError(exc.message) from None
    else:  # with a searchQuery, ImageKit ignores these
        if query.file_type != "all":
            clauses.append(File.file_type == query.file_type)
        if query.tags:
            clauses.append(File.tags.any(FileTag.tag.in_(query.tags)))
        if query.name:
            clauses.append(File.name == query.name)
    return and_(True, *clauses)


def _sorted(statement: Select[Any], query: Query) -> Select[Any]:
    direction, _, column = query.sort.partition("_")
    attribute = getattr(File, SORTS[column])
    # Files without a width or height (not images) come last either way, on both engines.
    ordered = attribute.desc() if direction == "DESC" else attribute.asc()
    return statement.order_by(ordered.nulls_last(), File.id)


def _integer(params: dict[str, str], key: str, default: int, low: int,
             high: int | None = None) -> int:
    text = params.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(f"{key} must be an integer.") from None
    if value < low or (high is not None and value > high):
        raise ApiError(f"{key} must be between {low} and {high}." if high is not None
                       else f"{key} must be at least {low}.")
    return value
