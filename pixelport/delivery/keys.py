"""Result cache keys: what makes one response differ from another.

Endpoint, file path, the other query parameters (`?v=2`, in a canonical order), the canonical
transformation, and, only where they can change the bytes, the format the client accepts and
the client hints. Signatures (`ik-s`, `ik-t`) never enter: the request's query has already
lost them.
"""

from __future__ import annotations

import hashlib
import hmac
import math

from pixelport.config import ImagesConfig
from pixelport.delivery.inputs import RequestInputs
from pixelport.transform.formats import accepts
from pixelport.transform.step import ChainItem, Conditional, Step


def variant(steps: list[ChainItem], inputs: RequestInputs, images: ImagesConfig) -> str:
    """What the request's headers (inputs.py) add to the key, where they can change the output."""
    uses = _uses(steps, images)
    parts = []
    if "Accept" in uses:
        accept = inputs.accept
        parts.append("a" if images.avif and accepts(accept, "image/avif") else "")
        parts.append("w" if accepts(accept, "image/webp") else "")
    if "Sec-CH-Width" in uses and inputs.client_width:
        # The width is rounded up to 100 px; with a dpr beside w-auto, Content-DPR tells
        # the browser the rounding, so the exact hint makes the answer.
        width = inputs.client_width
        exact = "Sec-CH-Width exactly" in uses
        parts.append(f"cw{width if exact else math.ceil(width / 100) * 100}")
    if "Sec-CH-DPR" in uses and inputs.client_dpr:
        parts.append(f"dpr{inputs.client_dpr:g}")
    return ",".join(parts)


def video_variant(steps: list[ChainItem], inputs: RequestInputs, images: ImagesConfig) -> str:
    """What Accept adds to a video result's key: whether WebM is accepted, where the container
    is negotiated (f-auto, or no f-, vc- or ac- that decides it, with the best format on)."""
    plain = [s for s in steps if isinstance(s, Step)]
    requested = next((s.format for s in reversed(plain) if s.format), None)
    decided = any(s.video_codec not in (None, "none") or s.audio_codec not in (None, "none")
                  for s in plain)
    if requested in ("mp4", "webm") or decided or (requested is None and not images.best_format):
        return ""
    return "webm" if accepts(inputs.accept, "video/webm") else "mp4"


def vary(steps: list[ChainItem], images: ImagesConfig) -> tuple[str, ...]:
    """The request headers the answer to `steps` may depend on (for the `Vary` of errors)."""
    uses = _uses(steps, images)
    names = ["Accept"] if "Accept" in uses else []
    if "Sec-CH-Width" in uses:
        names += ["Sec-CH-Width", "Width"]
    if "Sec-CH-DPR" in uses:
        names += ["Sec-CH-DPR", "DPR"]
    return tuple(names)


def _uses(steps: list[ChainItem], images: ImagesConfig) -> set[str]:
    """Which inputs the output of `steps` may depend on, whichever way conditions turn out.

    Every branch of a conditional counts (`if-…,w-auto,if-end` uses the client width). The
    format is negotiated where `f-auto` is asked anywhere, or where no unconditional step
    names a format and the best format is chosen by default; it is so for any file, whatever
    its name says: an image behind a `.bin` is negotiated too.
    """
    plain = [s for s in steps if isinstance(s, Step)]
    every = plain + [branch for s in steps if isinstance(s, Conditional)
                     for branch in (s.then, s.otherwise) if branch is not None]
    uses = set()
    if any(s.format == "auto" for s in every) or (
            images.best_format and not any(s.format for s in plain)):
        uses.add("Accept")
    if any(s.width_auto for s in every):
        uses.add("Sec-CH-Width")
    if any(s.width_auto and (s.dpr is not None or s.dpr_auto) for s in every):
        uses.add("Sec-CH-Width exactly")  # Content-DPR (geometry._hinted_dpr)
    if any(s.dpr_auto for s in every):
        uses.add("Sec-CH-DPR")
    return uses


def result_key(endpoint: str, path: str, canonical: str, variant_text: str,
               attachment: bool, query: str = "", host: str | None = None,
               version: str | None = None) -> str:
    """A fixed-length key for the result cache (`query`: canonical, see request.py; `host`:
    the Host sent on to the origin, where one is; `version`: `ik-obj-version`, where asked)."""
    parts = [endpoint, path, canonical, variant_text, "attachment" if attachment else "", query]
    if host is not None:
        parts.append(host.lower())
    if version is not None:
        parts.append(f"version\0{version}")
    text = "\0".join(parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def encoded_key(key: str, encoding: str) -> str:
    """The key of result `key`'s form compressed as `encoding` (produce/compress.py)."""
    text = f"{key}\0encoding\0{encoding}"
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def ladder_id(ladder_key: str, secret: str | None) -> str:
    """The name of an adaptive bitrate stream's parts (`ik-abs/<id>/`): a MAC of its key, so
    only whoever was given the manifest can name them (a signed manifest's parts need no
    signature of their own)."""
    return hmac.new((secret or "").encode(), ladder_key.encode(), hashlib.sha256).hexdigest()[:32]

