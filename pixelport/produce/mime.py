"""Content types for files served as they are."""

from __future__ import annotations

import functools
import mimetypes
import re

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
    name = path[path.rfind("/") + 1:]
    dot = name.find(".")
    return _guess_suffixes(name[dot:]) if dot != -1 else None


@functools.lru_cache(maxsize=1024)
def _guess_suffixes(suffixes: str) -> str | None:
    # By the name's suffixes (".tar.gz" too), memoised: mimetypes parses the path as a URL
    # first, which costs the event loop more than the rest of a cache hit's headers.
    if found := _EXTRA.get(suffixes[suffixes.rfind("."):].lower()):
        return found
    return mimetypes.guess_type("f" + suffixes, strict=False)[0]


_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_ESSENCE = re.compile(rf"\s*({_TCHARS})/({_TCHARS})\s*(?:;|$)")


def essence(declared: str | None) -> str | None:
    """The media type an origin's Content-Type means to a browser, lower-cased, or None.

    As the Fetch standard extracts it: the value is split on commas outside quoted strings
    (repeated headers arrive joined by commas), each part is parsed, and the last valid one
    that is not `*/*` counts. `text/plain, text/html` is HTML to a browser, so it is to us.
    """
    if not declared:
        return None
    found = None
    for part in _split_outside_quotes(declared):
        match = _ESSENCE.match(part)
        if match and (match[1], match[2]) != ("*", "*"):
            found = f"{match[1]}/{match[2]}".lower()
    return found


def _split_outside_quotes(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def content_type(path: str, declared: str | None, sniffed: str | None) -> str:
    """The Content-Type to answer with: the origin's, else the extension's, else sniffed."""
    kind = essence(declared)
    kind = kind if kind and kind not in GENERIC else None
    kind = kind or guess(path) or sniffed or "application/octet-stream"
    if kind.startswith(_TEXT) and "charset" not in kind:
        kind += "; charset=utf-8"
    return kind
