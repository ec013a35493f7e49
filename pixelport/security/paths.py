"""Path checks that keep every lookup inside its origin."""

from __future__ import annotations

import os
from pathlib import Path

from pixelport.errors import InvalidRequest


def check_file_path(path: str) -> str:
    """Validate a decoded file path from a URL and return it without leading slashes.

    Refuses what no origin should ever see: NUL and control characters, backslashes (Windows
    separators reach the same files), and `.`/`..` segments in any spelling (the caller has
    already percent-decoded, so `%2e%2e` arrives here as `..`).
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise InvalidRequest("The file path contains control characters")
    if "\\" in path:
        raise InvalidRequest("The file path contains a backslash")
    stripped = path.lstrip("/")
    if any(segment in (".", "..") for segment in stripped.split("/")):
        raise InvalidRequest("The file path contains a '.' or '..' segment")
    return stripped


def resolve_under(root: Path, relative: str) -> Path | None:
    """The real path of `relative` under `root`, or None when it would leave the root.

    Symlinks are followed and the result must still lie inside the (resolved) root.
    """
    checked = check_file_path(relative)
    if not checked or "//" in checked:
        return None
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, checked))
    if os.path.commonpath([real_root, candidate]) != real_root or candidate == real_root:
        return None
    return Path(candidate)
