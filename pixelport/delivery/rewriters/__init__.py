"""URL rewriters: another service's URLs (Cloudinary, imgix, Akamai) in pixelport's terms.

An endpoint with `url_rewriter = "<name>"` hands the request target after its identifier to
that rewriter before anything else is parsed; what comes back (an ImageKit transformation
chain, the file's path, the query left for the origin) is planned, signed, cached and fetched
as any other request. A new rewriter is one module with a `rewrite(segments, query)` function
(see `base.py`) plus an entry in REWRITERS and its name in `config.URL_REWRITERS`.
"""

from __future__ import annotations

from pixelport.delivery.rewriters import akamai, cloudinary, imgix
from pixelport.delivery.rewriters.base import Rewrite, Rewriter

REWRITERS: dict[str, Rewriter] = {
    "cloudinary": cloudinary.rewrite,
    "imgix": imgix.rewrite,
    "akamai": akamai.rewrite,
}

__all__ = ["REWRITERS", "Rewrite", "Rewriter"]
