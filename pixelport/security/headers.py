"""Response headers for files served as they are, so a stored file cannot act as a web page."""

from __future__ import annotations

# Blocks scripts, frames, forms and every fetch; inline styles and inline (data:) images stay,
# since SVG drawings rely on both. Browsers apply it when such a file is opened directly.
DOCUMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

# Types a browser never runs as a page: media it shows or plays, fonts, and what it only
# ever downloads or shows as text (with nosniff). Everything else, any type we do not know
# included, gets the CSP above. PDFs are shown by the browser's own sandboxed viewer, which a
# `sandbox` policy would stop.
_INERT_PREFIXES = ("image/", "video/", "audio/", "font/")
_INERT = frozenset({
    "text/plain", "text/css", "text/javascript", "application/javascript", "text/csv",
    "application/json", "application/manifest+json", "application/wasm", "application/pdf",
    "application/octet-stream", "application/zip", "application/gzip", "application/x-tar",
    "application/vnd.apple.mpegurl", "application/dash+xml", "application/x-mpegurl",
})


def is_svg(content_type: str) -> bool:
    """Whether a Content-Type names SVG."""
    return content_type.split(";", 1)[0].strip().lower() == "image/svg+xml"


def passthrough_headers(content_type: str) -> dict[str, str]:
    """`nosniff` always; a locked-down CSP unless the type is known to be inert."""
    headers = {"x-content-type-options": "nosniff"}
    if not inert(content_type):
        headers["content-security-policy"] = DOCUMENT_CSP
    return headers


def inert(content_type: str) -> bool:
    """Whether a browser never runs a file of this (single, parsed) type as a page."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "image/svg+xml" or kind.endswith("+xml") or "," in kind:
        return False
    return kind in _INERT or kind.startswith(_INERT_PREFIXES)
