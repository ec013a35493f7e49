"""`type = "gcs"`: objects from a Google Cloud Storage bucket.

Google's own library signs the service-account JWT and trades it for an access token at the
account's `token_uri` (in a worker thread, about once an hour); the object itself is one GET on
the XML API, which answers with standard HTTP validators, Range, and x-goog-meta-* headers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import google.auth
import urllib3
from google.auth import exceptions as google_errors
from google.auth.credentials import Credentials
from google.auth.transport.urllib3 import Request
from google.oauth2 import service_account
from yarl import URL

from pixelport.config import OriginConfig, Section, http_url
from pixelport.errors import AccessDenied, OriginFailed, OriginUnreachable, PixelportError
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import (
    CommonSettings,
    OriginSession,
    answer,
    join_key,
    read_common,
    request_headers,
)

SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
_KEY_SAFE = "/-._~"


@dataclass(frozen=True)
class GcsSettings:
    """Settings of one GCS origin."""

    bucket: str
    endpoint: str
    credentials: Credentials | None  # None: Application Default Credentials, found on first use
    common: CommonSettings


def read_settings(cfg: OriginConfig) -> GcsSettings:
    """Read and validate the origin's keys, loading the service-account key now."""
    s = cfg.section
    bucket = s.text("bucket")
    if not bucket.strip() or "/" in bucket:
        raise s.error("bucket", f"must be a bucket name without '/'; got {bucket!r}")
    settings = GcsSettings(
        bucket=bucket,
        endpoint=http_url(s, "endpoint", DEFAULT_ENDPOINT),
        credentials=_read_credentials(s),
        common=read_common(s),
    )
    s.finish()
    return settings


def _read_credentials(s: Section) -> Credentials | None:
    file = s.path("credentials_file", None)
    email, key = s.optional_text("client_email"), s.optional_text("private_key")
    token_uri = s.optional_text("token_uri")
    if file is not None:
        for other in ("client_email", "private_key", "token_uri"):
            if s.optional_text(other):
                raise s.error(other, "give either credentials_file or client_email + "
                                     "private_key, not both")
        try:
            loaded: Credentials = service_account.Credentials.from_service_account_file(
                str(file), scopes=[SCOPE])
        except OSError as exc:
            raise s.error("credentials_file", f"cannot read {file}: {exc.strerror}") from None
        except (ValueError, KeyError) as exc:
            raise s.error("credentials_file", f"not a service-account key file ({exc})") from None
        return loaded
    if email is None and key is None:
        return None
    if email is None or key is None:
        raise s.error("private_key" if key is None else "client_email",
                      "client_email and private_key are set together")
    # Keys passed through environment variables often arrive with literal "\n".
    info = {"type": "service_account", "client_email": email,
            "private_key": key.replace("\\n", "\n"), "token_uri": token_uri or DEFAULT_TOKEN_URI}
    try:
        built: Credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE])
    except (ValueError, KeyError):
        raise s.error("private_key", "is not a PEM private key") from None
    return built


class GcsOrigin:
    """GET Object (XML API) with a cached access token, pooled connections, a streamed body."""

    def __init__(self, name: str, settings: GcsSettings) -> None:
        self.name = name
        self.settings = settings
        self.who = f"gcs origin {name!r}"
        self.http = OriginSession(settings.common.connect_timeout, settings.common.read_timeout)
        self.base = f"{settings.endpoint}/{quote(settings.bucket, safe='')}/"
        self._credentials = settings.credentials
        self._stale = False
        self._lock: asyncio.Lock | None = None
        # The token exchange has its own small pool; google-auth drives it synchronously.
        timeout = urllib3.Timeout(connect=settings.common.connect_timeout,
                                  read=settings.common.read_timeout)
        self._token_http = urllib3.PoolManager(num_pools=2, maxsize=2, timeout=timeout,
                                               retries=False)

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """GET the object `prefix/path` with a bearer token."""
        key = join_key(self.settings.common.prefix, path)
        url = URL(self.base + quote(key, safe=_KEY_SAFE), encoded=True)
        headers = request_headers(options)
        headers["Authorization"] = f"Bearer {await self.token()}"
        response = await self.http.get(url, headers, self.who)
        if response.status == 401:
            self._stale = True  # revoked or expired early: get a new token next time
        return await answer(response, self.name, self.who, path, "x-goog-meta-")

    async def token(self) -> str:
        """A valid access token, refreshed in a worker thread when it is (nearly) expired."""
        credentials = self._credentials
        if credentials is not None and credentials.valid and not self._stale:
            return str(credentials.token)
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            credentials = self._credentials
            if credentials is None or not credentials.valid or self._stale:
                try:
                    credentials = await asyncio.to_thread(self._refresh)
                except google_errors.GoogleAuthError as exc:
                    raise self._auth_error(exc) from None
                self._credentials, self._stale = credentials, False
        return str(credentials.token)

    def _refresh(self) -> Credentials:
        credentials = self._credentials
        if credentials is None:
            found: tuple[Credentials, Any] = google.auth.default(scopes=[SCOPE])
            credentials = found[0]
        credentials.refresh(Request(self._token_http))
        return credentials

    def _auth_error(self, exc: google_errors.GoogleAuthError) -> PixelportError:
        if isinstance(exc, google_errors.TransportError):
            return OriginUnreachable(f"{self.who}: could not reach the token endpoint")
        if isinstance(exc, google_errors.RefreshError) and not exc.retryable:
            reason = str(exc.args[0]).split(":", 1)[0] if exc.args else "refused"
            return AccessDenied(f"{self.who}: the token endpoint refused the service account "
                                f"({reason})")
        if isinstance(exc, google_errors.DefaultCredentialsError):
            return AccessDenied(f"{self.who}: no credentials configured or found")
        return OriginFailed(f"{self.who}: could not get an access token ({type(exc).__name__})")

    async def aclose(self) -> None:
        """Close the origin's connection pools."""
        await self.http.aclose()
        self._token_http.clear()


def build(cfg: OriginConfig, shared: Shared) -> GcsOrigin:
    """Registry entry."""
    return GcsOrigin(cfg.name, read_settings(cfg))

