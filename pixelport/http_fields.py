"""HTTP field values every layer reads or writes: dates (IMF-fixdate) and byte ranges."""

from __future__ import annotations

import email.utils
import functools
from datetime import datetime


@functools.lru_cache(maxsize=4096)
def http_date(moment: datetime) -> str:
    """An IMF-fixdate (memoised: an original's date is formatted for each of its variants)."""
    return email.utils.format_datetime(moment, usegmt=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """A single `bytes=` range as (first, last) inclusive; None: ignore; False: unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, sep, last_text = header[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first_text == "":
            length = int(last_text)
            if length <= 0:
                return False
            return max(0, size - length), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        return False
    if first < 0 or first > last:
        return None
    return first, min(last, size - 1)
