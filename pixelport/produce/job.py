"""What a result is made from (`Job`), and what makes one (`Producer`): the producers' seam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pixelport.cache.entry import Entry
from pixelport.origins.base import FetchOptions
from pixelport.produce.originals import Source
from pixelport.transform.step import ChainItem


@dataclass(frozen=True)
class Job:
    """One result to make: everything of the request that changes it, and no HTTP."""

    key: str  # the result cache key (delivery/keys.py)
    source: Source  # where the original comes from
    path: str  # the file path, decoded
    fetch: FetchOptions  # what the origin is asked with besides the path (Host, query)
    steps: list[ChainItem]
    transforming: bool  # a transformation is asked (not `orig-true` alone)
    original_only: bool  # `orig-true`: the original's bytes, as they are
    rasterise: bool  # an explicit raster `f-`: an SVG is rasterised rather than served
    maybe_image: bool  # the file name says image, or says nothing
    accept: str  # the client's Accept, where the format is negotiated
    client_width: int | None = None  # Sec-CH-Width, for w-auto
    client_dpr: float | None = None  # Sec-CH-DPR, for dpr-auto
    video: bool = False  # made by the video producer (a video, or from one)
    # What is made of the file: None (the file transformed), "thumbnail" (ik-thumbnail.jpg),
    # "gif-video" (ik-gif-video.mp4), "hls"/"dash" (ik-master.m3u8/.mpd: an ABS ladder)
    derivative: str | None = None
    ladder: str | None = None  # "hls"/"dash": the stream's name (keys.ladder_id)
    # "br"/"gzip": the result's encoded form is asked (produce/compress.py), `key` is that
    # form's and `identity_key` the result's own.
    encoding: str | None = None
    identity_key: str = ""


class NotReady(Exception):
    """The result is still being made in the background (a video job): the request is
    answered 302 to the original (`redirect`), else 202 with an empty body."""

    def __init__(self, redirect: bool) -> None:
        super().__init__("still processing")
        self.redirect = redirect


class Producer(Protocol):
    """Makes the results of the jobs it takes, and caches them."""

    def takes(self, job: Job) -> bool:
        """Whether this producer makes `job`'s result."""
        ...

    async def make(self, job: Job) -> Entry | None:
        """The result, cached; None: the original is too large to buffer and is to be
        streamed as it is by the caller. Raises a PixelportError for an answered failure."""
        ...
