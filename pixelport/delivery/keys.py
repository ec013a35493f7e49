"""Result cache keys: what makes one response differ from another.

Endpoint, file path, the other query parameters (`?v=2`, in a canonical order), the canonical
transformation, and, only where they can change the bytes, the format the client accepts and
the client hints. Signatures (`ik-s`, `ik-t`) never enter: the request's query has already
lost them.
"""

from __future__ import annotations

import hashlib
import math

from pixelport.config import ImagesConfig
from pixelport.delivery.inputs import RequestInputs
from pixelport.transform.formats import accepts
from pixelport.transform.step import ChainItem, Step


def variant(steps: list[ChainItem], inputs: RequestInputs, images: ImagesConfig,
            maybe_image: bool) -> str:
    """What the request's headers (inputs.py) add to the key, where they change the output."""
    plain = [s for s in steps if isinstance(s, Step)]
    explicit = next((s.format for s in reversed(plain) if s.format), None)
    parts = []
    if maybe_image and (explicit in (None, "auto")) and (images.best_format or explicit):
        accept = inputs.accept
        parts.append("a" if images.avif and accepts(accept, "image/avif") else "")
        parts.append("w" if accepts(accept, "image/webp") else "")
    if any(s.width_auto for s in plain) and inputs.client_width:
        parts.append(f"cw{math.ceil(inputs.client_width / 100) * 100}")
    if any(s.dpr_auto for s in plain) and inputs.client_dpr:
        parts.append(f"dpr{inputs.client_dpr:g}")
    return ",".join(parts)


def result_key(endpoint: str, path: str, canonical: str, variant_text: str,
               attachment: bool, query: str = "") -> str:
    """A fixed-length key for the result cache (`query`: canonical, see request.py)."""
    text = "\0".join([endpoint, path, canonical, variant_text,
                      "attachment" if attachment else "", query])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()
