"""The library's bytes in an S3-compatible bucket (`[library] bucket`): what lets many nodes
share one library, with nothing node-local as a source of truth.

Keys are a folder's (storage.py) under the bucket's `prefix`: uploaded bytes under
`.pixelport/blobs/`, one new key per version; objects put in the bucket beside them are served
by path, as a folder's files are, and indexed by `pixelport library scan`. A PUT is atomic,
so a key exists only whole: a node killed mid-upload leaves no object, and bytes whose row
never committed (killed between the PUT and the commit) are orphans the sweep deletes once
older than an hour by the bucket's own clock (`LastModified`).

Uploads are still received in `[library] dir` (`.pixelport/partial`): the bytes are probed,
and may be transformed, from a local file before one PUT stores them; the file is removed
once stored. Single PUTs hold up to 5 GB, far past any upload limit pixelport accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from pixelport.config import BucketConfig
from pixelport.errors import ApiUnavailable, NotFound, PixelportError
from pixelport.library.storage import BLOBS, INTERNAL, FolderStorage
from pixelport.origins.base import FetchOptions, Origin
from pixelport.origins.cloud import CommonSettings, join_key
from pixelport.origins.s3 import S3Origin, bucket_settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger("pixelport.library")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0  # a PUT of a large upload, or a read of a large original


class BucketStorage:
    """The library's bytes in a bucket; uploads received in a local folder first."""

    def __init__(self, cfg: BucketConfig, root: Path) -> None:
        self.cfg = cfg
        self.local = FolderStorage(root)  # its temporary files only
        self.s3 = S3Origin("library", bucket_settings(
            "library bucket", cfg, CommonSettings(cfg.prefix, CONNECT_TIMEOUT, READ_TIMEOUT)))

    def origin(self) -> Origin:
        """What serves keys by path: the bucket read as an S3 origin."""
        return self.s3

    def object_key(self, key: str) -> str:
        """The bucket key of a storage key."""
        return join_key(self.cfg.prefix, key)

    async def client(self) -> S3Client:
        """The bucket's client (the origin's: one connection pool)."""
        return await self.s3.client()

    def temporary(self) -> Path:
        """A new local temporary file's path (in `[library] dir`)."""
        return self.local.temporary()

    def new_key(self, name: str) -> str:
        """A new blob key, as a folder's."""
        return self.local.new_key(name)

    async def put(self, source: Path | bytes, key: str) -> None:
        """PUT bytes or a local file under `key` (a temporary file is removed once stored)."""
        client = await self.client()
        kind = mimetypes.guess_type(PurePosixPath(key).name)[0] or "application/octet-stream"
        try:
            if isinstance(source, bytes):
                await client.put_object(Bucket=self.cfg.bucket, Key=self.object_key(key),
                                        Body=source, ContentType=kind)
            else:
                with source.open("rb") as body:
                    await client.put_object(Bucket=self.cfg.bucket, Key=self.object_key(key),
                                            Body=body, ContentType=kind)
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("store the file", exc) from None
        if isinstance(source, Path) and source.parent == self.local.tmp:
            source.unlink(missing_ok=True)

    @contextlib.asynccontextmanager
    async def readable(self, key: str) -> AsyncIterator[Path | None]:
        """The key's bytes in a local temporary file, for the time of the block (None when
        the object is missing)."""
        scratch = self.temporary().with_suffix(PurePosixPath(key).suffix[:16] or ".part")
        try:
            try:
                original = await self.s3.fetch(key, FetchOptions())
            except NotFound:
                yield None
                return
            except PixelportError as exc:
                raise self._failed("read the file", exc) from None
            try:
                with scratch.open("wb") as writer:
                    async for chunk in original.body:
                        writer.write(chunk)
            finally:
                await original.close()
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)

    async def keys(self) -> AsyncIterator[tuple[str, int]]:
        """Every object's storage key and size, internals excluded (`library scan`)."""
        async for key, size, _ in self._list(""):
            if key.split("/", 1)[0] != INTERNAL:
                yield key, size

    async def _list(self, under: str) -> AsyncIterator[tuple[str, int, datetime]]:
        client = await self.client()
        root = f"{self.cfg.prefix}/" if self.cfg.prefix else ""
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.cfg.bucket, Prefix=root + under)
        try:
            async for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(root):], item["Size"], item["LastModified"]
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("list the bucket", exc) from None

    async def delete(self, key: str) -> None:
        """Remove a key's object; a failure is logged (an unreferenced blob is swept later)."""
        try:
            client = await self.client()
            await client.delete_object(Bucket=self.cfg.bucket, Key=self.object_key(key))
        except (ClientError, BotoCoreError) as exc:
            log.warning("library bucket: could not delete %s (%s); the sweep will", key, exc)

    async def sweep(self, referenced: Iterable[str], older_than: float) -> int:
        """Delete unreferenced blobs older than `older_than` (the bucket's clock) and the
        local temporary files abandoned as long."""
        keep = set(referenced)
        before = datetime.now(UTC).timestamp() - older_than
        doomed = [key async for key, _, modified in self._list(BLOBS + "/")
                  if key not in keep and modified.timestamp() < before]
        for key in doomed:
            await self.delete(key)
        return len(doomed) + await asyncio.to_thread(self._sweep_local, time.time() - older_than)

    def _sweep_local(self, before: float) -> int:
        removed = 0
        for path in FolderStorage.walk(self.local.tmp):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < before:
                    path.unlink()
                    removed += 1
        return removed

    def _failed(self, doing: str, exc: BaseException) -> ApiUnavailable:
        log.warning("library bucket %r: could not %s: %s", self.cfg.bucket, doing, exc)
        return ApiUnavailable(f"The media library's bucket did not answer; could not {doing}. "
                              "Try again.")

    async def check(self) -> None:
        """`/readyz`: the bucket answers a HEAD (within health.CHECK_SECONDS)."""
        await (await self.client()).head_bucket(Bucket=self.cfg.bucket)

    async def aclose(self) -> None:
        """Close the bucket's client."""
        await self.s3.aclose()
