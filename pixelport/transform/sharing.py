"""What the loader may ask of decoded copies shared between the renders of one original.

The pipeline stays pure (bytes in, bytes out): whoever runs it may hand it a `Sharing`, and the
loader then asks it for a decoded, reduced copy of a large JPEG instead of decoding the file
again. The production layer's `produce/mezzanine.py` is the one implementation: it keeps the
copies, shares them between threads and worker processes, and may raise its own exception to
put a render off while another job builds the copy (the pipeline lets it through).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

MIN_SIDE = 1600  # a copy at least this large; smaller targets are resized from it
ELIGIBLE_SIDE = 2 * MIN_SIDE  # originals at least this large (a shrink of 2 or more)


class Sharing(Protocol):
    """Decoded copies of an original, shared by the variants asked of it."""

    def copy(self, data: bytes, build: Callable[[], Any]) -> Any | None:
        """The shared copy of `data` (`build()` makes it, once for all); None: decode directly."""
        ...

    def resized(self, data: bytes, size: tuple[object, ...], make: Callable[[], Any]) -> Any:
        """`make()`, a resize of `data`'s copy to `size`, shared with a request for the same."""
        ...
