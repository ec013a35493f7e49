"""Content types for files served as they are."""

from __future__ import annotations

import mimetypes

_EXTRA = {
    ".avif": "image/avif", ".webp": "image/webp", ".heic": "image/heic", ".svg": "image/svg+xml",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".map": "application/json", ".webmanifest":
    "application/manifest+json", ".m3u8": "application/vnd.apple.mpegurl", ".mpd":
    "application/dash+xml", ".mp4": "video/mp4", ".webm": "video/webm", ".txt": "text/plain",
    ".wasm": "application/wasm",
}
_TEXT = ("text/", "application/json", "application/javascript", "application/manifest+json",
         "image/svg+xml", "application/xml")
GENERIC = ("application/octet-stream", "binary/octet-stream", "application/x-download")


def guess(path: str) -> str | None:
    """The type implied by a file name's extension."""
    dot = path.rfind(".")
    if dot != -1 and (found := _EXTRA.get(path[dot:].lower())):
        return found
    return mimetypes.guess_type(path, strict=False)[0]


def content_type(path: str, declared: str | None, sniffed: str | None) -> str:
    """The Content-Type to answer with: the origin's, else the extension's, else sniffed."""
    kind = declared if declared and declared.lower() not in GENERIC else None
    kind = kind or guess(path) or sniffed or "application/octet-stream"
    if kind.startswith(_TEXT) and "charset" not in kind:
        kind += "; charset=utf-8"
    return kind
