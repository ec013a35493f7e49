"""Library rows as ImageKit's JSON objects (File, file version, Folder, upload response)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from pixelport.state.models import File, FileVersion, Folder

THUMBNAIL = "ik_ml_thumbnail"  # the built-in named transformation of `thumbnail` URLs


@dataclass(frozen=True)
class Urls:
    """How the request that asked sees the library: its endpoint's base URL."""

    base: str  # "http://host:port" or "http://host:port/identifier", no trailing slash

    def file(self, path: str) -> str:
        """The delivery URL of a stored path."""
        return self.base + quote(path, safe="/:@!$&'()*+,;=-._~")

    def thumbnail(self, path: str, file_type: str, video: bool = False) -> str:
        """The thumbnail URL (`tr:n-ik_ml_thumbnail`) of an image, or of a video's first
        frame (`…/ik-thumbnail.jpg`); empty for other files."""
        if file_type != "image" and not video:
            return ""
        suffix = "/ik-thumbnail.jpg" if video else ""
        return (f"{self.base}/tr:n-{THUMBNAIL}" + quote(path, safe="/:@!$&'()*+,;=-._~")
                + suffix)


def iso(moment: datetime) -> str:
    """ImageKit's timestamp spelling: `2024-01-15T10:00:00.123Z`."""
    # Times are UTC throughout; isoformat is four times faster than strftime.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class TagFacts(Protocol):
    """A tag as file objects show it (a FileTag row, or a listing's TagRow)."""

    @property
    def tag(self) -> str: ...

    @property
    def ai(self) -> bool: ...


class FileFacts(Protocol):
    """What a File object is made of: a File row, or a listing's FileRow (no ORM)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def file_type(self) -> str: ...
    @property
    def mime(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def storage_key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def has_alpha(self) -> bool: ...
    @property
    def is_private(self) -> bool: ...
    @property
    def is_published(self) -> bool: ...
    @property
    def custom_coordinates(self) -> str | None: ...
    @property
    def custom_metadata(self) -> dict[str, Any]: ...
    @property
    def embedded_metadata(self) -> dict[str, Any]: ...
    @property
    def description(self) -> str | None: ...
    @property
    def version_id(self) -> str: ...
    @property
    def version_number(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def tags(self) -> Sequence[TagFacts]: ...
    @property
    def duration(self) -> float | None: ...
    @property
    def video_codec(self) -> str | None: ...
    @property
    def audio_codec(self) -> str | None: ...
    @property
    def bit_rate(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class TagRow:
    """A tag of a FileRow."""

    tag: str
    ai: bool


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file's columns and tags as plain values: what listings read (without the ORM's
    identity map and instrumented instances, three quarters of a 100-file page's time) and
    what a new upload answers with."""

    id: str
    path: str
    folder: str
    name: str
    version_id: str
    version_number: int
    storage_key: str
    file_type: str
    mime: str
    format: str
    size: int
    width: int | None
    height: int | None
    has_alpha: bool
    is_private: bool
    is_published: bool
    custom_coordinates: str | None
    custom_metadata: dict[str, Any]
    embedded_metadata: dict[str, Any]
    description: str | None
    created_at: datetime
    updated_at: datetime
    tags: tuple[TagRow, ...]
    duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bit_rate: int | None = None


def tags_of(row: FileFacts, ai: bool) -> list[str] | None:
    """The file's tags (or AITags) in order; None when there are none, as ImageKit says."""
    found = [tag.tag for tag in row.tags if tag.ai == ai]
    return found or None


def snapshot(row: FileFacts) -> dict[str, Any]:
    """What a version keeps of its file's fields."""
    return {
        "name": row.name, "file_type": row.file_type, "mime": row.mime, "format": row.format,
        "size": row.size, "width": row.width, "height": row.height,
        "has_alpha": row.has_alpha, "is_private": row.is_private,
        "is_published": row.is_published, "custom_coordinates": row.custom_coordinates,
        "custom_metadata": row.custom_metadata, "embedded_metadata": row.embedded_metadata,
        "description": row.description, "tags": tags_of(row, False),
        "ai_tags": tags_of(row, True), "updated_at": iso(row.updated_at),
        **({"video": video_facts(row)} if row.duration is not None else {}),
    }


def video_facts(row: FileFacts) -> dict[str, Any]:
    """A video's facts under ImageKit's names (in file objects and metadata); the duration
    in whole seconds, as ImageKit's API gives it (the database keeps the fraction)."""
    duration = round(row.duration) if row.duration is not None else None
    return {"duration": duration, "videoCodec": row.video_codec,
            "audioCodec": row.audio_codec, "bitRate": row.bit_rate}


def file_object(row: FileFacts, urls: Urls) -> dict[str, Any]:
    """The File object of `GET /v1/files/{id}/details` and of listings."""
    return {
        "type": "file",
        "fileId": row.id,
        "name": row.name,
        "filePath": row.path,
        "url": urls.file(row.path),
        "thumbnail": urls.thumbnail(row.path, row.file_type, row.duration is not None),
        "fileType": row.file_type,
        "mime": row.mime,
        "size": row.size,
        "width": row.width,
        "height": row.height,
        "hasAlpha": row.has_alpha,
        "isPrivateFile": row.is_private,
        "isPublished": row.is_published,
        "customCoordinates": row.custom_coordinates,
        "customMetadata": row.custom_metadata,
        "embeddedMetadata": row.embedded_metadata,
        "description": row.description,
        "tags": tags_of(row, False),
        "AITags": tags_of(row, True),
        "versionInfo": {"id": row.version_id, "name": f"Version {row.version_number}"},
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        **(video_facts(row) if row.duration is not None else {}),
    }


def version_object(row: File, version: FileVersion, urls: Urls) -> dict[str, Any]:
    """A file-version object: the file's fields as they were when the version was made."""
    kept = version.snapshot
    current = version.id == row.version_id
    body = file_object(row, urls)
    if not current:
        body.update({
            "name": kept.get("name", row.name), "fileType": kept.get("file_type"),
            "mime": kept.get("mime"), "size": kept.get("size"), "width": kept.get("width"),
            "height": kept.get("height"), "hasAlpha": kept.get("has_alpha", False),
            "isPrivateFile": kept.get("is_private", False),
            "isPublished": kept.get("is_published", True),
            "customCoordinates": kept.get("custom_coordinates"),
            "customMetadata": kept.get("custom_metadata") or {},
            "embeddedMetadata": kept.get("embedded_metadata") or {},
            "description": kept.get("description"), "tags": kept.get("tags"),
            "AITags": kept.get("ai_tags"), "updatedAt": kept.get("updated_at"),
        })
        for name in ("duration", "videoCodec", "audioCodec", "bitRate"):
            body.pop(name, None)
        body.update(kept.get("video") or {})
        body["url"] = f"{body['url']}?ik-obj-version={version.id}"
    body["type"] = "file-version"
    body["versionInfo"] = {"id": version.id, "name": f"Version {version.number}"}
    body["createdAt"] = iso(version.created_at)
    return body


def upload_object(row: FileFacts, urls: Urls) -> dict[str, Any]:
    """The upload response: the File object's facts under the upload's own field names."""
    body = file_object(row, urls)
    for absent in ("type", "mime", "hasAlpha", "createdAt", "updatedAt", "thumbnail"):
        body.pop(absent)
    body["thumbnailUrl"] = urls.thumbnail(row.path, row.file_type, row.duration is not None)
    return body


def folder_object(row: Folder) -> dict[str, Any]:
    """The Folder object of listings."""
    return {
        "type": "folder",
        "folderId": row.id,
        "name": row.name,
        "folderPath": row.path.rstrip("/") or "/",
        "customMetadata": row.custom_metadata,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }
