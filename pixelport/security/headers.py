"""Response headers for files served as they are, so a stored file cannot act as a web page."""

from __future__ import annotations

# Blocks scripts, frames, forms and every fetch; inline styles and inline (data:) images stay,
# since SVG drawings rely on both. Browsers apply it when such a file is opened directly.
DOCUMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

_DOCUMENT_TYPES = ("image/svg+xml", "text/html", "application/xhtml+xml", "text/xml",
                   "application/xml")


def is_svg(content_type: str) -> bool:
    """Whether a Content-Type names SVG."""
    return content_type.split(";", 1)[0].strip().lower() == "image/svg+xml"


def passthrough_headers(content_type: str) -> dict[str, str]:
    """`nosniff` always; a locked-down CSP for types a browser renders as a document."""
    headers = {"x-content-type-options": "nosniff"}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _DOCUMENT_TYPES or kind.endswith("+xml"):
        headers["content-security-policy"] = DOCUMENT_CSP
    return headers
