"""`type = "web_server"`: any HTTP(S) server; the file path is appended to `base_url`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pixelport.config import OriginConfig, http_url
from pixelport.origins import http1
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import request_headers
from pixelport.origins.http import HttpClient, check_status, original_from

# RFC 3986 pchars stay as they are; everything else (space, %, ?, #, unicode) is encoded.
PATH_SAFE = "/:@!$&'()*+,;=-._~"
QUERY_SAFE = PATH_SAFE + "?%"  # a query as the client sent it: its escapes stay escapes


def with_query_safe(query: str) -> str:
    """A client's query, as sent, made safe for a request line (no space, no control)."""
    return quote(query, safe=QUERY_SAFE)


@dataclass(frozen=True)
class WebServerSettings:
    """Settings of one web server origin."""

    base_url: str
    forward_host_header: bool
    canonical_base_url: str | None
    connect_timeout: float
    read_timeout: float
    forward_query: bool = True


def read_settings(cfg: OriginConfig) -> WebServerSettings:
    """Read and validate the origin's keys."""
    s = cfg.section
    settings = WebServerSettings(
        base_url=http_url(s, "base_url", example="https://images.example.com"),
        forward_host_header=s.flag("forward_host_header", False),
        canonical_base_url=(http_url(s, "canonical_base_url")
                            if s.optional_text("canonical_base_url") else None),
        connect_timeout=s.number("connect_timeout", 5.0, minimum=0.1),
        read_timeout=s.number("read_timeout", 20.0, minimum=0.1),
        forward_query=s.flag("forward_query", True),
    )
    s.finish()
    return settings


class WebServerOrigin:
    """Fetches `base_url + "/" + path` with pooled connections and streamed bodies."""

    def __init__(self, name: str, settings: WebServerSettings, client: HttpClient,
                 origin_header: tuple[str, str]) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.origin_header = origin_header
        self.timeout = http1.Timeouts(settings.connect_timeout, settings.read_timeout)
        self.forwards_host = settings.forward_host_header  # answers may differ per Host

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """GET the file; 404 → NotFound, 401/403 → AccessDenied, 5xx/timeout → OriginFailed."""
        encoded = quote(path, safe=PATH_SAFE)
        headers = {self.origin_header[0]: self.origin_header[1], **request_headers(options)}
        if self.settings.forward_host_header and options.host:
            headers["Host"] = options.host
        who = f"web server origin {self.name!r}"
        url = f"{self.settings.base_url}/{encoded}"
        if self.settings.forward_query and options.query:
            url += "?" + with_query_safe(options.query)
        response = await self.client.get(url, headers, self.timeout, who)
        check_status(response, who, path, ranged=options.byte_range is not None)
        original = original_from(response, self.name, who)
        if self.settings.canonical_base_url:
            original.canonical_url = f"{self.settings.canonical_base_url}/{encoded}"
        return original

    async def aclose(self) -> None:
        """The shared client is closed by the app."""


def build(cfg: OriginConfig, shared: Shared) -> WebServerOrigin:
    """Registry entry."""
    return WebServerOrigin(cfg.name, read_settings(cfg), shared.http,
                           shared.config.server.origin_header)
