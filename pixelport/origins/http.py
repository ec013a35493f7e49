"""The HTTP client of web origins (redirects hop by hop, each hop guarded), and what web and
cloud origins share: their aiohttp session settings and the mapping of answers to Originals."""

from __future__ import annotations

import email.utils
import functools
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp.client import DEFAULT_TIMEOUT
from yarl import URL

from pixelport.errors import AddressRefused, OriginFailed, OriginUnreachable
from pixelport.origins import http1
from pixelport.origins.base import Original
from pixelport.origins.failures import provider_error
from pixelport.security.network import BlockedAddressError, check_literal_host

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
    """The web origins' HTTP client (`http1.Client`), made inside the running loop on first use."""

    def __init__(self, *, allow_private_networks: bool, max_redirects: int = 5) -> None:
        self.allow_private = allow_private_networks
        self.max_redirects = max_redirects
        self._client: http1.Client | None = None

    def client(self) -> http1.Client:
        """The pooled client, created on first use."""
        if self._client is None:
            self._client = http1.Client(guard=not self.allow_private, resolver=resolver)
        return self._client

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def get(
        self, url: str, headers: dict[str, str], timeouts: http1.Timeouts, who: str,
        check_hop: Callable[[URL], None] | None = None,
    ) -> http1.Response:
        """GET `url`, following redirects one by one so each hop passes the address guard.

        `check_hop` may raise to refuse a hop (the web proxy's host allow-list).
        """
        try:
            target = URL(url, encoded=True)
        except ValueError:
            raise OriginFailed(f"{who}: {url!r} is not a valid URL") from None
        for _ in range(self.max_redirects + 1):
            if check_hop is not None:
                check_hop(target)
            host = target.raw_host or ""
            try:
                if target.scheme not in ("http", "https") or not host:
                    raise OriginFailed(f"{who}: {str(target)!r} is not an http(s) URL")
                if not self.allow_private:
                    check_literal_host(host)
                response = await self.client().get(target, headers, timeouts)
            except BlockedAddressError as exc:
                raise AddressRefused(f"{who}: {exc}") from None
            except socket.gaierror:
                raise OriginUnreachable(f"{who}: could not resolve {host}") from None
            except TimeoutError:
                raise OriginFailed(f"{who}: timed out waiting for {host}") from None
            except http1.ProtocolError as exc:
                raise OriginFailed(f"{who}: not a valid HTTP answer ({exc})") from None
            except http1.ConnectionBroken:
                raise OriginFailed(f"{who}: {host} closed the connection") from None
            except ssl.SSLError as exc:
                raise OriginUnreachable(f"{who}: TLS with {host} failed "
                                        f"({exc.reason or type(exc).__name__})") from None
            except ValueError as exc:  # a header the request may not carry
                raise OriginFailed(f"{who}: request refused ({exc})") from None
            except OSError:
                raise OriginUnreachable(f"{who}: {host} refused the connection") from None
            if response.status in REDIRECTS and "Location" in response.headers:
                location = response.headers["Location"]
                response.release()
                try:
                    target = target.join(URL(location, encoded=True))
                except ValueError:
                    raise OriginFailed(f"{who}: redirected to an invalid URL") from None
                if target.scheme not in ("http", "https"):
                    raise OriginFailed(f"{who}: redirected to a non-HTTP URL")
                continue
            return response
        raise OriginFailed(f"{who}: more than {self.max_redirects} redirects")


# The name lookup of web origins; None: the system's. Tests set it to give names any address.
resolver: http1.Resolver | None = None


def check_status(response: http1.Response, who: str, path: str,
                 ranged: bool = False) -> None:
    """Map an origin's error status to the error contract (2xx and 304 pass, and 416 when a
    range was asked: the file is there, the range is not)."""
    status = response.status
    if status < 300 or status == 304 or (status == 416 and ranged):
        return
    response.release()
    raise provider_error(who, path, status, None)


def original_from(response: aiohttp.ClientResponse | http1.Response, source: str,
                  who: str) -> Original:
    """Wrap a successful origin response; the body is streamed and timeouts map to OriginFailed."""
    chunks = (response.chunks() if isinstance(response, http1.Response)
              else response.content.iter_chunked(CHUNK))

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise OriginFailed(f"{who}: timed out reading the file") from None
        except (aiohttp.ClientError, http1.ConnectionBroken, http1.ProtocolError):
            raise OriginFailed(f"{who}: the connection broke while reading the file") from None

    async def close() -> None:
        response.release()

    headers = response.headers
    length = headers.get("Content-Length")
    return Original(
        body=body(),
        source=source,
        content_type=headers.get("Content-Type") or None,  # parsed as browsers do (mime.py)
        size=int(length) if length and length.isdigit() else None,
        last_modified=parse_http_date(headers.get("Last-Modified")),
        etag=headers.get("ETag"),
        status=response.status,
        content_range=headers.get("Content-Range"),
        private=(headers.get("Is-Private-File") or "").lower() == "true",
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
