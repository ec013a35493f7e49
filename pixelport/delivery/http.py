"""Conditional requests (If-None-Match, If-Modified-Since) for the delivery path."""

from __future__ import annotations

import email.utils
from datetime import datetime


def not_modified(headers: dict[str, str], etag: str | None, last_modified: datetime | None) -> bool:
    """Whether If-None-Match / If-Modified-Since let us answer 304 (RFC 9110 §13.2.2)."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if etag is None:
            return False
        wanted = _opaque(etag)
        return any(tag.strip() == "*" or _opaque(tag) == wanted for tag in inm.split(","))
    ims = headers.get("if-modified-since")
    if ims and last_modified is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return last_modified.replace(microsecond=0) <= since
    return False


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag  # weak comparison for If-None-Match
