"""The tables of the media library (SQLAlchemy 2 declarative models).

One row per file (its current version's facts copied in, so delivery reads one row), one per
version (the bytes' storage key and a snapshot of the file's fields then), folders, tags in a
table of their own (searchable with plain SQL on both SQLite and PostgreSQL), and the API's
own records: custom metadata fields, named transformations, single-use upload tokens, bulk jobs.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them on both engines.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
PATH_LENGTH = 1024


def new_id() -> str:
    """A file, version or folder id: 24 lower-case hex characters, as ImageKit's."""
    return secrets.token_hex(12)


def now() -> datetime:
    """The current time in UTC, to the millisecond (what the API shows)."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC, without the zone on SQLite (so stored text compares in order)."""
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as an aware UTC time."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Folder(Base):
    """A folder: made by its API, or on the way to an uploaded file."""

    __tablename__ = "folders"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)  # "/a/b/"
    parent: Mapped[str] = mapped_column(String(PATH_LENGTH), index=True)  # "/a/"
    name: Mapped[str] = mapped_column(String(255))
    custom_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class File(Base):
    """A file in the library, with its current version's facts."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_folder_created_at", "folder", "created_at"),
        Index("ix_files_folder_name", "folder", "name"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)  # "/a/b/c.jpg"
    folder: Mapped[str] = mapped_column(String(PATH_LENGTH))  # "/a/b/"
    name: Mapped[str] = mapped_column(String(255), index=True)
    version_id: Mapped[str] = mapped_column(String(24), default="")  # the current version
    version_number: Mapped[int] = mapped_column(Integer, default=1)  # "Version <number>"
    storage_key: Mapped[str] = mapped_column(String(PATH_LENGTH))  # the current bytes
    file_type: Mapped[str] = mapped_column(String(16), index=True)  # image | non-image
    mime: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(16), index=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    width: Mapped[int | None] = mapped_column(Integer, index=True)
    height: Mapped[int | None] = mapped_column(Integer, index=True)
    has_alpha: Mapped[bool] = mapped_column(Boolean, default=False)
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=True)
    custom_coordinates: Mapped[str | None] = mapped_column(String(64))
    custom_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    embedded_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=now, index=True)
    # A video's facts (probed with PyAV at upload or scan); None for every other file.
    duration: Mapped[float | None] = mapped_column(Float, index=True)  # seconds
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    bit_rate: Mapped[int | None] = mapped_column(BigInteger)  # bits per second

    tags: Mapped[list[FileTag]] = relationship(
        cascade="all, delete-orphan", order_by="FileTag.position", lazy="selectin")


class FileTag(Base):
    """One tag of a file; `ai` marks AITags (removable by removeAITags)."""

    __tablename__ = "file_tags"
    __table_args__ = (Index("ix_file_tags_tag", "tag"),)

    file_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    ai: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


class FileVersion(Base):
    """One version of a file: its bytes and the file's fields when it was made."""

    __tablename__ = "file_versions"
    __table_args__ = (UniqueConstraint("file_id", "number"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    file_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("files.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # "Version <number>"
    storage_key: Mapped[str] = mapped_column(String(PATH_LENGTH), index=True)
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the file's fields then
    created_at: Mapped[datetime] = mapped_column(default=now)


class CustomMetadataField(Base):
    """A custom metadata field definition (`/v1/customMetadataFields`)."""

    __tablename__ = "custom_metadata_fields"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    label: Mapped[str] = mapped_column(String(255))
    schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)


class NamedTransformation(Base):
    """A named transformation made through the API (the config's are read-only)."""

    __tablename__ = "named_transformations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    transformation: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class UploadToken(Base):
    """A client-side upload token already used: single use, across workers and nodes."""

    __tablename__ = "upload_tokens"

    token: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class BulkJob(Base):
    """A folder copy, move or rename (`/v1/bulkJobs/...`)."""

    __tablename__ = "bulk_jobs"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(32))  # COPY_FOLDER | MOVE_FOLDER | RENAME_FOLDER
    status: Mapped[str] = mapped_column(String(16), default="Pending")  # Pending | Completed
    purge_request_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)


class RetiredPath(Base):
    """A path whose file in the library folder the API has deleted, moved or renamed.

    Files found in the folder without a row (put there before the database existed) are
    served by path until `pixelport library scan` indexes them; a retired path never is, so a
    crash between a deletion's commit and its unlink cannot bring the file back.
    """

    __tablename__ = "retired_paths"

    path: Mapped[str] = mapped_column(String(PATH_LENGTH), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(default=now)


class AccountOrigin(Base):
    """An origin made through the accounts API (the config's are read-only, not stored).

    `settings` holds ImageKit's non-secret fields as JSON; `secrets` the secret ones
    (`secretKey`, `sasToken`, `privateKey`), sealed by security/secrets.py.
    """

    __tablename__ = "account_origins"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))  # ImageKit's: S3, S3_COMPATIBLE, WEB_FOLDER…
    settings: Mapped[str] = mapped_column(Text)
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class AccountEndpoint(Base):
    """A URL endpoint made through the accounts API: a prefix (or domains) and its origins."""

    __tablename__ = "account_url_endpoints"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    description: Mapped[str] = mapped_column(Text)
    url_prefix: Mapped[str] = mapped_column(String(255), unique=True)
    origins: Mapped[str] = mapped_column(Text)  # JSON: origin ids, in order
    url_rewriter: Mapped[str | None] = mapped_column(String(32))  # CLOUDINARY | IMGIX | AKAMAI
    domains: Mapped[str] = mapped_column(Text, default="[]")  # JSON: custom domains
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class SubAccount(Base):
    """A sub-account made in the dashboard (the config's `[[account]]` are not stored): its
    private key sealed by security/secrets.py; its library lives in `[library] accounts_dir`."""

    __tablename__ = "sub_accounts"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    prefix: Mapped[str] = mapped_column(String(255), unique=True)
    domains: Mapped[str] = mapped_column(Text, default="[]")  # JSON: host names
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # sealed
    public_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=now)
