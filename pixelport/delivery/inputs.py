"""The request headers that can change an answer, declared once.

Besides its target (endpoint, file path, transformation, query), an answer depends on these
headers and on no other part of the request. `RequestInputs` is how planning reads them; the
hot-answer key (`hot.py`) holds each of them by name, and the result key (`keys.py`) holds
what each contributes where it can change the bytes:
  host            the endpoint (custom domains), in the key as its identifier; and where
                  an origin of the endpoint forwards it (`forward_host_header`), the Host
                  itself, in the result key and the saved original's
  accept          the format class (AVIF, WebP) where the format is negotiated
  sec-ch-width    w-auto's client width, and `width`, the older spelling
  sec-ch-dpr      dpr-auto's device pixel ratio, and `dpr`, the older spelling
  accept-encoding the content coding (br, gzip) of a compressible file's answer, whose
                  encoded form has a key of its own (keys.encoded_key)
Headers that change only how an answer is sent, not what it is (Range, conditionals), are
read by `respond.py` and take requests off the hot path (`hot.BYPASS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INPUTS = ("host", "accept", "sec-ch-width", "width", "sec-ch-dpr", "dpr", "accept-encoding")


@dataclass(frozen=True)
class RequestInputs:
    """The values of INPUTS in one request, as planning uses them."""

    host: str | None
    accept: str
    client_width: int | None  # Sec-CH-Width (or Width) within sane bounds
    client_dpr: float | None  # Sec-CH-DPR (or DPR) within sane bounds
    accept_encoding: str = ""  # Accept-Encoding, as sent

    @classmethod
    def read(cls, headers: Mapping[str, str]) -> RequestInputs:
        """Read INPUTS from lower-cased headers (the last of repeated ones counts)."""
        return cls(
            host=headers.get("host"),
            accept=headers.get("accept", ""),
            client_width=_hint(headers, "sec-ch-width", "width", integer=True),
            client_dpr=_hint(headers, "sec-ch-dpr", "dpr", integer=False),
            accept_encoding=headers.get("accept-encoding", ""),
        )


def _hint(headers: Mapping[str, str], name: str, legacy: str, integer: bool) -> Any:
    """A client hint (Sec-CH-Width, Sec-CH-DPR or the older Width/DPR) within sane bounds."""
    text = headers.get(name) or headers.get(legacy)
    if not text:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if integer:
        return int(value) if 1 <= value <= 10_000 else None
    return value if 0.1 <= value <= 5 else None
