"""The origin chain: the media library first, then an endpoint's origins in order."""

from __future__ import annotations

import logging

from pixelport import metrics
from pixelport.errors import NotFound, PixelportError
from pixelport.origins.base import FetchOptions, Origin, Original

log = logging.getLogger("pixelport.origins")


class OriginChain:
    """Tries each source in order; the first that has the file wins."""

    def __init__(self, sources: list[Origin]) -> None:
        self.sources = sources
        # Whether a source sends the client's Host on (`forward_host_header`): its answers,
        # and so the results and saved originals made from them, then differ per Host.
        self.forwards_host = any(getattr(s, "forwards_host", False) for s in sources)

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """The file from the first source that has it.

        A not-found moves on; an error is remembered and reported if no later source has the
        file, so one broken origin does not hide a file another origin holds.
        """
        first_error: PixelportError | None = None
        for source in self.sources:
            try:
                return await source.fetch(path, options)
            except NotFound as exc:
                if exc.final:
                    raise
                continue
            except PixelportError as exc:
                log.warning("origin %s failed for %r: %s", source.name, path, exc.header)
                metrics.origin_failed(source.name, exc.code)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        names = ", ".join(s.name for s in self.sources) or "no source"
        raise NotFound(f"No file was found at {path!r} (looked in {names})")
