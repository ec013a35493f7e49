"""What the cloud storage origins share: common keys, key joining, and an HTTP pool per origin."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pixelport.config import Section
from pixelport.origins.base import FetchOptions, Original
from pixelport.origins.failures import provider_error, transport_error
from pixelport.origins.http import new_session, original_from

# Flags such as x-amz-meta-isprivatefile arrive as text; ImageKit sets them to "true".
PRIVATE_META = "isprivatefile"
_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9.]+)\s*</Code>")
_ERROR_BODY_LIMIT = 16 * 1024


@dataclass(frozen=True)
class CommonSettings:
    """Keys every cloud origin has."""

    prefix: str  # normalised: no leading or trailing slash, "" for none
    connect_timeout: float
    read_timeout: float


def read_common(s: Section) -> CommonSettings:
    """Read `prefix`, `connect_timeout` and `read_timeout`."""
    return CommonSettings(
        prefix=(s.optional_text("prefix") or "").strip("/"),
        connect_timeout=s.number("connect_timeout", 5.0, minimum=0.1),
        read_timeout=s.number("read_timeout", 20.0, minimum=0.1),
    )


def join_key(prefix: str, path: str) -> str:
    """The object key for a file path under a normalised prefix (`a` + `x.jpg` → `a/x.jpg`)."""
    path = path.lstrip("/")
    return f"{prefix}/{path}" if prefix else path


def is_private(value: str | None) -> bool:
    """Whether an isprivatefile metadata value marks the object private."""
    return (value or "").strip().lower() == "true"


def request_headers(options: FetchOptions) -> dict[str, str]:
    """Range and conditional headers passed through to the provider."""
    headers = {"Accept-Encoding": "identity"}
    if options.byte_range:
        headers["Range"] = options.byte_range
    if options.if_none_match:
        headers["If-None-Match"] = options.if_none_match
    if options.if_modified_since:
        headers["If-Modified-Since"] = options.if_modified_since
    return headers


# A DNS name's labels (underscores too: they occur in real bucket and service names).
async def empty_body() -> AsyncIterator[bytes]:
    """The body of an answer that has none (304)."""
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk


class OriginSession:
    """A pooled aiohttp session owned by one origin.

    Each origin has its own pool so origins with different credentials or endpoints never
    share state; the session is created inside the running loop on first use.
    """

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout,
                                             sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session, created on first use."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=128, limit_per_host=64, ttl_dns_cache=60,
                                             enable_cleanup_closed=True)
            self._session = new_session(connector, timeout=self.timeout)
        return self._session

    async def get(self, url: URL, headers: dict[str, str], who: str) -> aiohttp.ClientResponse:
        """GET `url` (already encoded); transport failures become pixelport errors."""
        try:
            return await self.session().get(url, headers=headers, allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(who, url.host or "", exc) from None

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()


async def error_code(response: aiohttp.ClientResponse, header: str | None = None) -> str | None:
    """The provider's error code: from `header` when given, else from an XML `<Code>` body."""
    if header and response.headers.get(header):
        response.release()
        return response.headers[header]
    try:
        body = await response.content.read(_ERROR_BODY_LIMIT)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        response.release()
    match = _XML_CODE.search(body)
    return match.group(1).decode("ascii") if match else None


async def answer(response: aiohttp.ClientResponse, name: str, who: str, path: str,
                 meta_prefix: str, code_header: str | None = None) -> Original:
    """A streamed Original from a provider's response, or the mapped error for a failure."""
    # 416 only answers a Range request: the object is there, the range is not (passed on).
    if response.status >= 300 and response.status not in (304, 416):
        code = await error_code(response, code_header)
        raise provider_error(who, path, response.status, code)
    original = original_from(response, name, who)
    original.private = is_private(response.headers.get(f"{meta_prefix}{PRIVATE_META}"))
    return original
