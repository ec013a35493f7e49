"""The shared HTTP client behind web origins: one pooled session per process."""

from __future__ import annotations

import email.utils
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp.client import DEFAULT_TIMEOUT
from yarl import URL

from pixelport.errors import OriginFailed, OriginUnreachable
from pixelport.origins.base import Original
from pixelport.origins.failures import provider_error
from pixelport.security.network import BlockedAddressError, check_literal_host, make_connector

CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


def new_session(connector: aiohttp.BaseConnector,
                timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> aiohttp.ClientSession:
    """An aiohttp session as origins use it: bodies as stored, no User-Agent, no cookie jar.

    A cookie that one origin answer sets must not ride on later fetches, which serve other
    visitors; aiohttp's default jar would keep it.
    """
    return aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                 skip_auto_headers=("User-Agent",),
                                 cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout)


class HttpClient:
    """Lazily creates the aiohttp session inside the running loop; shared by all web origins."""

    def __init__(self, *, allow_private_networks: bool, max_redirects: int = 5) -> None:
        self.allow_private = allow_private_networks
        self.max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session, created on first use."""
        if self._session is None or self._session.closed:
            connector = make_connector(self.allow_private, limit=256, limit_per_host=64,
                                       ttl_dns_cache=60, enable_cleanup_closed=True)
            self._session = new_session(connector)
        return self._session

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()

    async def get(
        self, url: str, headers: dict[str, str], timeout: aiohttp.ClientTimeout, who: str,
        check_hop: Callable[[URL], None] | None = None,
    ) -> aiohttp.ClientResponse:
        """GET `url`, following redirects one by one so each hop passes the address guard.

        `check_hop` may raise to refuse a hop (the web proxy's host allow-list).
        """
        target = URL(url, encoded=True)
        for _ in range(self.max_redirects + 1):
            if check_hop is not None:
                check_hop(target)
            try:
                if not self.allow_private:
                    check_literal_host(target.host or "")
                response = await self.session().get(
                    target, headers=headers, timeout=timeout, allow_redirects=False
                )
            except BlockedAddressError as exc:
                raise OriginUnreachable(f"{who}: {exc}") from None
            except aiohttp.ClientConnectorDNSError as exc:
                if isinstance(exc.os_error, BlockedAddressError):
                    raise OriginUnreachable(f"{who}: {exc.os_error}") from None
                raise OriginUnreachable(f"{who}: could not resolve {target.host}") from None
            except aiohttp.ClientConnectorError:
                raise OriginUnreachable(f"{who}: {target.host} refused the connection") from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise OriginFailed(f"{who}: timed out connecting to {target.host}") from None
            except aiohttp.ClientError as exc:
                raise OriginFailed(f"{who}: request failed ({type(exc).__name__})") from None
            if response.status in REDIRECTS and "Location" in response.headers:
                location = response.headers["Location"]
                response.release()
                target = target.join(URL(location, encoded=True))
                if target.scheme not in ("http", "https"):
                    raise OriginFailed(f"{who}: redirected to a non-HTTP URL")
                continue
            return response
        raise OriginFailed(f"{who}: more than {self.max_redirects} redirects")


def check_status(response: aiohttp.ClientResponse, who: str, path: str,
                 ranged: bool = False) -> None:
    """Map an origin's error status to the error contract (2xx and 304 pass, and 416 when a
    range was asked: the file is there, the range is not)."""
    status = response.status
    if status < 300 or status == 304 or (status == 416 and ranged):
        return
    response.release()
    raise provider_error(who, path, status, None)


def original_from(response: aiohttp.ClientResponse, source: str, who: str) -> Original:
    """Wrap a successful origin response; the body is streamed and timeouts map to OriginFailed."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise OriginFailed(f"{who}: timed out reading the file") from None
        except aiohttp.ClientError:
            raise OriginFailed(f"{who}: the connection broke while reading the file") from None

    async def close() -> None:
        response.release()

    headers = response.headers
    length = headers.get("Content-Length")
    return Original(
        body=body(),
        source=source,
        content_type=(headers.get("Content-Type") or "").split(";")[0].strip() or None,
        size=int(length) if length and length.isdigit() else None,
        last_modified=parse_http_date(headers.get("Last-Modified")),
        etag=headers.get("ETag"),
        status=response.status,
        content_range=headers.get("Content-Range"),
        private=headers.get("Is-Private-File", "").lower() == "true",
        close=close,
    )


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date, or None when absent or malformed."""
    if not value:
        return None
    return _parse_http_date(value)


@functools.lru_cache(maxsize=4096)
def _parse_http_date(value: str) -> datetime | None:
    # Memoised: every answer from the cache parses its Last-Modified again, and
    # email.utils takes tens of microseconds of the event loop for it.
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
