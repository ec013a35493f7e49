"""`type = "web_proxy"`: the file path is itself an absolute URL (`/tr:w-300/https://host/x.jpg`).

Only hosts on the origin's allow-list are fetched, and the shared HTTP client's address guard
still refuses private and loopback addresses unless `[security] allow_private_networks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from yarl import URL

from pixelport.config import OriginConfig
from pixelport.errors import AccessDenied, InvalidRequest, NotFound
from pixelport.origins import http1
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import request_headers
from pixelport.origins.http import HttpClient, check_status, original_from
from pixelport.origins.web_server import PATH_SAFE, with_query_safe

# Proxies and path normalisation often collapse `https://` to `https:/`: accept one slash or two.
_ABSOLUTE = re.compile(r"(?i)^(https?):/{1,2}([^/?#]+)(/.*)?$", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a name, or an IP address
_ALLOWED = re.compile(
    r"^(?P<wild>\*\.)?(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>\d{1,5}))?$")


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: `host`, `*.domain` (subdomains only), either with `:port`."""

    host: str  # "example.org" for "*.example.org"; "" for "*"
    subdomains: bool
    port: int | None

    def matches(self, host: str, port: int | None) -> bool:
        """Whether a URL's host and explicit port fall under this entry."""
        if self.port is not None and port != self.port:
            return False
        if not self.host:
            return True
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


@dataclass(frozen=True)
class WebProxySettings:
    """Settings of one web proxy origin."""

    allowed_hosts: tuple[HostRule, ...]
    connect_timeout: float
    read_timeout: float
    forward_query: bool = True


def parse_rule(text: str) -> HostRule | None:
    """An allow-list entry from config text, or None when it is malformed."""
    text = text.strip().lower().rstrip(".")
    if text == "*":
        return HostRule("", subdomains=False, port=None)
    match = _ALLOWED.match(text)
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    return HostRule(match["host"].strip("[]"), subdomains=bool(match["wild"]), port=port)


def read_settings(cfg: OriginConfig) -> WebProxySettings:
    """Read and validate the origin's keys."""
    s = cfg.section
    rules: list[HostRule] = []
    for text in s.strings("allowed_hosts"):
        rule = parse_rule(text)
        if rule is None:
            raise s.error("allowed_hosts", f"{text!r} is not a host name, '*.domain' or '*' "
                                           "(optionally with ':port')")
        rules.append(rule)
    if not rules:
        raise s.error("allowed_hosts", 'is required: the hosts this proxy may fetch from, such '
                                       'as ["images.example.com", "*.example.org"] ("*" for any)')
    settings = WebProxySettings(
        allowed_hosts=tuple(rules),
        connect_timeout=s.number("connect_timeout", 5.0, minimum=0.1),
        read_timeout=s.number("read_timeout", 20.0, minimum=0.1),
        forward_query=s.flag("forward_query", True),
    )
    s.finish()
    return settings


def parse_target(path: str) -> URL | None:
    """The URL a file path names, or None when the path is not an absolute http(s) URL."""
    match = _ABSOLUTE.match(path.lstrip("/"))
    if match is None:
        return None
    scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3) or "/"
    if "@" in authority:
        return None  # credentials in the URL are never forwarded
    if not authority.isascii():
        # An international name goes out in its ASCII form (IDNA), which is also what the
        # allow-list is matched against; one that has none is no host.
        try:
            authority = authority.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidRequest(f"{authority!r} is not a valid host name") from None
    try:
        url = URL(f"{scheme}://{authority}{quote(rest, safe=PATH_SAFE)}", encoded=True)
    except ValueError:
        return None
    if not url.raw_host:
        return None
    if not _HOST.fullmatch(url.raw_host):
        raise InvalidRequest(f"{url.raw_host!r} is not a valid host name")
    return url


class WebProxyOrigin:
    """Fetches an absolute URL from the file path, when its host is allowed."""

    def __init__(self, name: str, settings: WebProxySettings, client: HttpClient,
                 origin_header: tuple[str, str]) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.origin_header = origin_header
        self.who = f"web proxy origin {name!r}"
        self.timeout = http1.Timeouts(settings.connect_timeout, settings.read_timeout)

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """GET the URL; a path that is no URL is not found, a host off the list is denied."""
        target = parse_target(path)
        if target is None:
            raise NotFound(f"{path!r} is not an absolute http(s) URL for {self.who}")
        if self.settings.forward_query and options.query:
            target = URL(f"{target}?{with_query_safe(options.query)}", encoded=True)
        self.check_host(target)
        headers = request_headers(options)
        headers[self.origin_header[0]] = self.origin_header[1]
        response = await self.client.get(str(target), headers, self.timeout, self.who,
                                         check_hop=self.check_host)
        check_status(response, self.who, path, ranged=options.byte_range is not None)
        return original_from(response, self.name, self.who)

    def breaker_key(self, path: str) -> str:
        """The upstream a fetch of `path` reaches, host and port (each has a circuit of its
        own: failures at hosts a requester picks must not close the proxy to the others)."""
        try:
            target = parse_target(path)
        except InvalidRequest:
            return ""
        if target is None:
            return ""
        return f"{(target.raw_host or '').lower()}:{target.port}"

    def check_host(self, url: URL) -> None:
        """Refuse a URL (the first or a redirect's) whose host is not on the allow-list."""
        host = (url.host or "").lower().rstrip(".")
        if not any(rule.matches(host, url.explicit_port) for rule in self.settings.allowed_hosts):
            raise AccessDenied(f"{self.who} may not fetch from {host!r}: the host is not in "
                               "allowed_hosts")

    async def aclose(self) -> None:
        """The shared client is closed by the app."""


def build(cfg: OriginConfig, shared: Shared) -> WebProxyOrigin:
    """Registry entry."""
    return WebProxyOrigin(cfg.name, read_settings(cfg), shared.http,
                          shared.config.server.origin_header)
