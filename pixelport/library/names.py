"""File names and folder paths as ImageKit accepts them.

fileName: any character other than a letter (Unicode letters included), a digit, `.` or `-`
becomes `_`. Folders are `/`-separated; each segment is cleaned the same way, and `.`/`..`
segments are refused, so no path can leave the library. Paths are stored with a leading `/`;
folder paths also end with `/` (`/` is the root).
"""

from __future__ import annotations

import secrets
import string

from pixelport.errors import InvalidRequest

MAX_NAME = 255
UNIQUE_ALPHABET = string.ascii_letters + string.digits


def clean_name(name: str) -> str:
    """ImageKit's fileName sanitisation; InvalidRequest when nothing usable is left."""
    name = name.strip()
    if not name:
        raise InvalidRequest("Missing fileName parameter for upload")
    cleaned = "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
    if cleaned in (".", "..") or cleaned.startswith(".pixelport"):
        raise InvalidRequest(f"{name!r} cannot be used as a file name")
    if len(cleaned.encode()) > MAX_NAME:
        raise InvalidRequest(f"fileName is longer than {MAX_NAME} bytes")
    return cleaned


def clean_folder(folder: str | None) -> str:
    """A folder path as stored: `/a/b/`; `/` for the root or when none is given."""
    if folder is None:
        return "/"
    if any(ord(c) < 0x20 for c in folder) or "\\" in folder:
        raise InvalidRequest("The folder path contains control characters or a backslash")
    segments = [s for s in folder.strip().split("/") if s]
    for segment in segments:
        if segment in (".", ".."):
            raise InvalidRequest("The folder path must not contain '.' or '..' segments")
    cleaned = ["".join(c if c.isalnum() or c in ".-_" else "_" for c in s) for s in segments]
    if cleaned and cleaned[0].startswith(".pixelport"):
        raise InvalidRequest("This folder name is reserved")
    return "/" + "".join(f"{s}/" for s in cleaned)


def file_path(folder: str, name: str) -> str:
    """The stored path of `name` in `folder`."""
    return folder + name


def split_path(path: str) -> tuple[str, str]:
    """A stored or given file path as (folder, name); InvalidRequest when it names no file."""
    path = "/" + path.strip().lstrip("/")
    folder, _, name = path.rpartition("/")
    if not name:
        raise InvalidRequest(f"{path!r} names no file")
    return clean_folder(folder), name


def unique_name(name: str) -> str:
    """`name` with `_` and 9 random letters or digits before its extension, as ImageKit does."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    # One draw for all nine characters: secrets.choice per character was nine getrandom
    # calls, the most system calls an upload made.
    number = secrets.randbelow(len(UNIQUE_ALPHABET) ** 9)
    suffix = ""
    for _ in range(9):
        number, digit = divmod(number, len(UNIQUE_ALPHABET))
        suffix += UNIQUE_ALPHABET[digit]
    return f"{stem}_{suffix}" + (f".{extension}" if extension else "")


def parent_folders(folder: str) -> list[str]:
    """Every folder from the top down to `folder` itself, root excluded: `/a/`, `/a/b/`."""
    segments = [s for s in folder.split("/") if s]
    return ["/" + "".join(f"{s}/" for s in segments[: i + 1]) for i in range(len(segments))]
