"""`type = "azure_blob"`: blobs from an Azure Storage container, read with a SAS token.

A SAS is a signed query string, so reading a blob is one plain GET: this streams the single
response as it arrives and passes Range and conditional headers through untouched, where the
SDK's downloader would buffer a first chunk and split the rest into ranged requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from yarl import URL

from pixelport.config import OriginConfig, http_url
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import (
    CommonSettings,
    OriginSession,
    answer,
    join_key,
    read_common,
    request_headers,
)

# The REST version asked for; SAS requests are governed by their own `sv`, anonymous ones by this.
API_VERSION = "2025-01-05"
_KEY_SAFE = "/-._~"
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")


@dataclass(frozen=True)
class AzureSettings:
    """Settings of one Azure Blob origin."""

    account_name: str
    container: str
    sas_token: str  # "" for a public container, else "?sv=...&sig=..."
    account_url: str  # https://<account>.blob.core.windows.net unless `endpoint` says otherwise
    common: CommonSettings


def read_settings(cfg: OriginConfig) -> AzureSettings:
    """Read and validate the origin's keys."""
    s = cfg.section
    account = s.text("account_name")
    if not _ACCOUNT.fullmatch(account):
        raise s.error("account_name", "must be a storage account name (3-24 lowercase letters "
                                      f"and digits); got {account!r}")
    container = s.text("container")
    if not container or "/" in container:
        raise s.error("container", f"must be a container name without '/'; got {container!r}")
    sas = s.optional_text("sas_token") or ""
    if sas and (not sas.startswith("?") or "sig=" not in sas):
        raise s.error("sas_token", "must be the whole SAS token starting with '?' "
                                   "(for example ?sv=2022-11-02&ss=b&srt=o&sp=r&...&sig=...)")
    settings = AzureSettings(
        account_name=account,
        container=container,
        sas_token=sas,
        account_url=http_url(s, "endpoint", f"https://{account}.blob.core.windows.net"),
        common=read_common(s),
    )
    s.finish()
    return settings


class AzureBlobOrigin:
    """GET Blob with pooled connections and a streamed body; never writes, lists or deletes."""

    def __init__(self, name: str, settings: AzureSettings) -> None:
        self.name = name
        self.settings = settings
        self.who = f"azure_blob origin {name!r}"
        self.http = OriginSession(settings.common.connect_timeout, settings.common.read_timeout)
        self.base = f"{settings.account_url}/{quote(settings.container, safe='')}/"

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """GET the blob `prefix/path`; the x-ms-error-code names what went wrong."""
        key = join_key(self.settings.common.prefix, path)
        url = URL(self.base + quote(key, safe=_KEY_SAFE) + self.settings.sas_token, encoded=True)
        headers = request_headers(options)
        headers["x-ms-version"] = API_VERSION
        response = await self.http.get(url, headers, self.who)
        return await answer(response, self.name, self.who, path, "x-ms-meta-",
                            code_header="x-ms-error-code")

    async def aclose(self) -> None:
        """Close the origin's connection pool."""
        await self.http.aclose()


def build(cfg: OriginConfig, shared: Shared) -> AzureBlobOrigin:
    """Registry entry."""
    return AzureBlobOrigin(cfg.name, read_settings(cfg))
