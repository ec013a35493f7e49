"""Parsing a delivery request target into endpoint, file path and transformation."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes

from pixelport.delivery.endpoints import Endpoint, EndpointTable
from pixelport.delivery.rewriters import REWRITERS
from pixelport.errors import InvalidRequest, NotFound
from pixelport.security.paths import check_file_path
from pixelport.security.signing import split_query

# ImageKit's suffixes, after a file's path: what to make of the file. They are not part of
# the file's path: `clip.mp4/ik-thumbnail.jpg` is `clip.mp4`'s thumbnail.
DERIVATIVES = {
    "ik-thumbnail.jpg": "thumbnail",  # a video's frame (the first, or at so-)
    "ik-gif-video.mp4": "gif-video",  # an animated GIF as MP4
    "ik-video.mp4": "video",  # marks a file without an extension as a video
    "ik-master.m3u8": "hls",  # adaptive bitrate streaming (sr-)
    "ik-master.mpd": "dash",
}
SEO = "ik-seo"  # `/ik-seo/<path without extension>/<seo name>.<ext>` (ImageKit's SEO names)


@dataclass(frozen=True)
class DeliveryRequest:
    """A parsed delivery URL."""

    endpoint: Endpoint
    file_path: str  # decoded, without leading '/'
    raw_file_path: str  # as received, percent-encoded
    transformation: str  # path `tr:` and query `tr`, joined with ':'
    query: tuple[tuple[str, str], ...]  # never holds ik-s/ik-t, so cache keys cannot either
    # The query as sent less `tr` and `ik-*` (`?v=2`): asked of web origins, and in the keys.
    origin_query: str = ""
    signed_target: str = ""  # raw target after the endpoint prefix, without ik-s/ik-t
    signature: str | None = None  # ik-s
    expiry: str | None = None  # ik-t
    prefix: str = ""  # the raw path before the file's (the endpoint's identifier and '/')
    # What the URL asks to be made of the file, from its suffix (DERIVATIVES), else None.
    derivative: str | None = None
    # `<file>/ik-abs/<ladder id>/<name>`: a part of an adaptive bitrate stream (then the
    # derivative is "abs-part").
    part: tuple[str, str] | None = None
    # `/ik-seo/<path without extension>/<seo name>.<ext>`: the SEO name (decoded), which a
    # download (`ik-attachment=true`) is named after; the file is `<path>.<ext>`.
    seo_name: str | None = None

    @property
    def version(self) -> str | None:
        """`ik-obj-version`: the media library file's version asked for, else None."""
        return self.flag("ik-obj-version") or None

    def flag(self, name: str) -> str | None:
        """The last value of an `ik-*` (or other) query parameter."""
        value = None
        for key, item in self.query:
            if key == name:
                value = item
        return value


def parse_target(table: EndpointTable, host: str | None, raw_path: str,
                 query_string: str) -> DeliveryRequest:
    """Split `/<identifier>/tr:<chain>/<file path>?tr=<chain>` into its parts.

    On an endpoint with a URL rewriter, the target after the identifier is first rewritten
    (another service's syntax → a chain, the file's path, the query left); the signature
    still covers the target as sent.
    """
    segments = raw_path.lstrip("/").split("/")
    found = table.resolve(host, segments)
    if found is None:
        raise NotFound("No URL endpoint matches this path")
    endpoint, used = found
    rest = segments[used:]
    signed = split_query(query_string)
    signed_target = "/".join(rest) + (f"?{signed.query}" if signed.query else "")
    chains: list[str] = []
    rest_query = signed.query
    if endpoint.config.url_rewriter is not None:
        rewritten = REWRITERS[endpoint.config.url_rewriter](rest, signed.query)
        rest, rest_query = rewritten.segments, rewritten.query
        if rewritten.chain:
            chains.append(rewritten.chain)
    # ik-seo comes before the path, on either side of a path `tr:` (the SDKs put `tr:` right
    # after the endpoint and the path after it; ImageKit's docs show `ik-seo/tr:…/`).
    seo = bool(rest) and rest[0] == SEO
    if seo:
        rest = rest[1:]
    if rest and rest[0][:3].lower() == "tr:":
        chains.append(_decode(rest[0][3:], "transformation"))
        rest = rest[1:]
    if not seo and rest and rest[0] == SEO:
        seo, rest = True, rest[1:]
    try:
        query = tuple(parse_qsl(rest_query, keep_blank_values=True, strict_parsing=False,
                                errors="strict"))
    except UnicodeDecodeError:
        raise InvalidRequest("The query string is not valid UTF-8") from None
    chains.extend(value for key, value in query if key == "tr" and value)
    derivative = DERIVATIVES.get(rest[-1]) if len(rest) > 1 else None
    part = None
    if derivative is not None:
        rest = rest[:-1]
    elif len(rest) > 3 and rest[-3] == "ik-abs":
        derivative, part, rest = "abs-part", (rest[-2], rest[-1]), rest[:-3]
    seo_name = None
    if seo:
        rest, seo_name = _without_seo_name(rest)
    raw_file = "/".join(rest)
    file_path = check_file_path(_decode(raw_file, "file path"))
    if not file_path:
        raise NotFound("No file path was given")
    prefix = "".join(f"{segment}/" for segment in segments[:used])
    return DeliveryRequest(endpoint, file_path, raw_file, ":".join(chains), query,
                           origin_query(rest_query), signed_target, signed.signature,
                           signed.expiry, prefix, derivative, part, seo_name)


def _without_seo_name(rest: list[str]) -> tuple[list[str], str]:
    """`[<path without extension>..., <seo name>.<ext>]` → (`<path>.<ext>` segments, the
    decoded SEO name): ImageKit serves the file at the path, with the SEO name's extension."""
    if len(rest) < 2 or not rest[-2]:
        raise NotFound("An ik-seo URL names the file's path without its extension, then an "
                       "SEO name: /ik-seo/<path>/<seo name>.<ext>")
    name = rest[-1]
    dot = name.rfind(".")
    extension = name[dot:] if dot > 0 else ""
    return [*rest[:-2], rest[-2] + extension], _decode(name, "SEO name")


def origin_query(query_string: str) -> str:
    """The query as sent, less pixelport's own parameters (`tr`, `ik-*`).

    ImageKit caches per URL and its SDKs version URLs with extra parameters (`?v=2`), and a
    signed origin URL needs its query: these parameters reach web origins as they were sent.
    """
    return "&".join(part for part in query_string.split("&") if part and not _ours(part))


def canonical_query(query: str) -> str:
    """`origin_query` in a stable order (by name; a repeated name keeps its values' order)."""
    return "&".join(sorted(query.split("&"), key=lambda part: part.split("=", 1)[0]))


def _ours(part: str) -> bool:
    name = unquote_to_bytes(part.split("=", 1)[0].replace("+", " ")).decode("utf-8", "replace")
    return name == "tr" or name.lower().startswith("ik-")


def _decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"The {what} is not valid UTF-8 once percent-decoded") from None

