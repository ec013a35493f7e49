"""`type = "s3"` and `type = "s3_compatible"`: objects from an S3 bucket, through aiobotocore.

Each origin owns one aiobotocore session and client (its own credentials, connection pool and
endpoint), created inside the running loop on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from pixelport.config import BucketConfig, OriginConfig, read_bucket
from pixelport.errors import AccessDenied, OriginFailed, OriginUnreachable, PixelportError
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import (
    PRIVATE_META,
    CommonSettings,
    empty_body,
    is_private,
    join_key,
    read_common,
)
from pixelport.origins.failures import provider_error
from pixelport.origins.http import parse_http_date

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

CHUNK = 64 * 1024


@dataclass(frozen=True)
class S3Settings:
    """Settings of one S3 or S3-compatible origin."""

    kind: str  # "s3" or "s3_compatible", for messages
    bucket: str
    region: str
    access_key_id: str | None  # None: the standard credential chain
    secret_access_key: str | None
    endpoint: str | None  # None: AWS (or AWS_ENDPOINT_URL_S3 when set)
    path_style: bool
    common: CommonSettings


def read_settings(cfg: OriginConfig, *, compatible: bool) -> S3Settings:
    """Read and validate the origin's keys; `compatible` adds `endpoint` and `path_style`."""
    s = cfg.section
    settings = bucket_settings(cfg.type, read_bucket(s, compatible=compatible,
                                                     need_endpoint=compatible),
                               read_common(s))
    s.finish()
    return settings


def bucket_settings(kind: str, bucket: BucketConfig, common: CommonSettings) -> S3Settings:
    """An S3 client's settings for a bucket of the config (an origin's, `[library]`'s,
    `[cache.shared]`'s)."""
    return S3Settings(kind=kind, bucket=bucket.bucket, region=bucket.region,
                      access_key_id=bucket.access_key_id,
                      secret_access_key=bucket.secret_access_key, endpoint=bucket.endpoint,
                      path_style=bucket.path_style, common=common)


class S3Origin:
    """GetObject with pooled connections and a streamed body; never writes, lists or deletes."""

    def __init__(self, name: str, settings: S3Settings) -> None:
        self.name = name
        self.settings = settings
        self.who = f"{settings.kind} origin {name!r}"
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None
        self._lock: asyncio.Lock | None = None

    async def client(self) -> S3Client:
        """The origin's own client, created on first use inside the running loop."""
        if self._client is not None:
            return self._client
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._client is None:
                st = self.settings
                config = AioConfig(
                    region_name=st.region,
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if st.path_style else "virtual"},
                    connect_timeout=st.common.connect_timeout,
                    read_timeout=st.common.read_timeout,
                    max_pool_connections=64,
                    # No SDK retries: a stale pooled connection is retried by aiohttp, and a
                    # CDN in front retries failures better than a delayed answer would.
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    # Third-party S3 stores differ in checksum support; S3 checks on upload.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    warm_up_loader_caches=True,  # load the service model off the loop
                )
                context = AioSession().create_client(
                    "s3", endpoint_url=st.endpoint, aws_access_key_id=st.access_key_id,
                    aws_secret_access_key=st.secret_access_key, config=config)
                self._client = await self._stack.enter_async_context(context)
        return self._client

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """GetObject `prefix/path`; errors map to the contract, naming the provider's code."""
        key = join_key(self.settings.common.prefix, path)
        params: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": key}
        if options.byte_range:
            params["Range"] = options.byte_range
        if options.if_none_match:
            params["IfNoneMatch"] = options.if_none_match
        since = parse_http_date(options.if_modified_since)
        if since is not None:
            params["IfModifiedSince"] = since
        try:
            client = await self.client()
            response = await client.get_object(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            status = int(meta.get("HTTPStatusCode") or 0)
            if status == 304:
                return self._not_modified(meta.get("HTTPHeaders", {}))
            if status == 416 and options.byte_range:  # the object is there, the range is not
                size = str(error.get("ActualObjectSize", ""))
                return Original(body=empty_body(), source=self.name, status=416, size=0,
                                content_range=f"bytes */{size}" if size.isdigit() else None)
            raise provider_error(self.who, path, status, error.get("Code")) from None
        except BotoCoreError as exc:
            raise self._sdk_error(exc) from None
        body = response["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk
            except (BotoCoreError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                raise self._sdk_error(exc, reading=True) from None

        async def close() -> None:
            body.close()

        return Original(
            body=chunks(),
            source=self.name,
            content_type=response.get("ContentType") or None,  # parsed as browsers do (mime.py)
            size=response.get("ContentLength"),
            last_modified=_utc(response.get("LastModified")),
            etag=response.get("ETag"),
            status=response["ResponseMetadata"].get("HTTPStatusCode", 200),
            content_range=response.get("ContentRange"),
            private=is_private(response.get("Metadata", {}).get(PRIVATE_META)),
            close=close,
        )

    def _not_modified(self, headers: dict[str, str]) -> Original:
        return Original(body=empty_body(), source=self.name, status=304, size=0,
                        etag=headers.get("etag"),
                        last_modified=parse_http_date(headers.get("last-modified")))

    def _sdk_error(self, exc: BaseException, *, reading: bool = False) -> PixelportError:
        doing = "reading the file" if reading else "talking to the endpoint"
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
            return OriginFailed(f"{self.who}: timed out {doing}")
        if isinstance(exc, EndpointConnectionError):
            return OriginUnreachable(f"{self.who}: could not connect to the endpoint "
                                     "(refused or not resolvable)")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError
                      | CredentialRetrievalError):
            return AccessDenied(f"{self.who}: no usable credentials ({type(exc).__name__})")
        return OriginFailed(f"{self.who}: failed {doing} ({type(exc).__name__})")

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        self._client = None
        await self._stack.aclose()


def _utc(moment: datetime | None) -> datetime | None:
    # botocore's datetimes carry dateutil's tzutc; HTTP date formatting wants datetime.UTC.
    return moment.astimezone(UTC) if moment is not None else None


def build(cfg: OriginConfig, shared: Shared) -> S3Origin:
    """Registry entry for `s3`."""
    return S3Origin(cfg.name, read_settings(cfg, compatible=False))


def build_compatible(cfg: OriginConfig, shared: Shared) -> S3Origin:
    """Registry entry for `s3_compatible`."""
    return S3Origin(cfg.name, read_settings(cfg, compatible=True))
