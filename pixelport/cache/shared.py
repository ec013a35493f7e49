"""The shared tier (`[cache.shared]`): results and saved originals in an S3-compatible bucket,
behind each node's memory and disk tiers, so what one node made is a hit on every other.

Objects hold an entry's on-disk form (`Entry.head()` and the body, length and CRC-32 checked
when read), under keys laid out by what a purge names:

    <prefix>/results/~<endpoint>/<file path>/<result key>
    <prefix>/originals/~<endpoint>/<file path>/<original key>

(the endpoint percent-encoded, `~` so that the default endpoint "" is a segment too), so a
purge of a file or of a `*` prefix is a LIST of one key prefix and a DELETE of what it finds.
A PUT is atomic: no node ever reads a partial object, and none is ever written (a node
killed mid-upload leaves nothing).

An entry whose body is kept on disk (a video) is never held whole in memory: its object (the
same form, its head carrying the body's CRC-32) is sent from its file in pieces, as one PUT or
a multipart upload (atomic too: the object appears whole when the upload completes), and read
back into a file (`get_streamed`), checked as it comes.

Never in the way: a lookup waits at most `timeout`; writes go in the background (the answer
does not wait); after `FAILURES` failures in a row the bucket is left alone for `COOLDOWN`
seconds (then one request tries it again), logged once when it goes and once when it comes
back. Purges are remembered by every worker (`forget`, one of the purgers): an object made
before a purge that covers it is neither read nor written by them, whether or not the bucket
was reachable for the purge's DELETE, which is retried until it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from pixelport.cache.entry import BodyFile, CorruptEntry, Entry, split_head, streamed_entry
from pixelport.cache.purgelog import PurgeScope
from pixelport.config import SharedCacheConfig
from pixelport.origins.cloud import CommonSettings
from pixelport.origins.s3 import S3Origin, bucket_settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger("pixelport.cache")
P = ParamSpec("P")
T = TypeVar("T")
Matches = Callable[[str, str], bool]

RESULTS, ORIGINALS = "results", "originals"
FAILURES = 3  # failures in a row that take the bucket out of the way
COOLDOWN = 10.0  # seconds it stays out of the way; then one request tries again
PUT_TIMEOUT = 10.0  # a background write or purge call (at least 10 x `timeout`)
MAX_OBJECT = 64 * 2**20  # larger entries stay local (an original past max_input_bytes)
# Entries in memory are encoded and decoded whole (a copy of the body each way), hence
# MAX_OBJECT. A body kept on disk (a video) is streamed from and to its file, so memory does
# not bound it: a video result takes seconds to minutes of ffmpeg, and one left local is made
# again by every node that needs it (worse with the cluster's lease: the others wait for the
# maker, find nothing, then make it themselves). So up to MAX_STREAMED (well past the
# result of a 300 MB input, `max_video_bytes`'s default); larger stays local.
MAX_STREAMED = 2 * 2**30
# botocore hashes every request body (SHA-256, for SigV4) on the event loop: measured 37 ms
# per 64 MiB here, so a whole 2 GiB video in one PUT would stall every request for 1.2 s. In
# multipart pieces of PART_BYTES it stalls ~5 ms at a time (S3's smallest part is 5 MiB).
PART_BYTES = 8 * 2**20
MIN_RATE = 10 * 10**6  # bytes/s a streamed read may take at worst, past `put_timeout`
MAX_UPLOADS = 64  # background writes at once; past it an entry stays local
MAX_PENDING = 1000  # purges kept for the bucket while it is down
REMEMBERED = 600.0  # seconds a purge is remembered (longer than any render or upload)
MAX_KEY = 1024  # S3's longest key, in UTF-8 bytes: an entry of a longer path stays local
# Encoding or decoding (a CRC-32 and a copy) of larger bodies runs in a thread: on the event
# loop it would hold up every other request for a millisecond or more.
THREAD_BYTES = 256 * 1024
SHUTDOWN_WAIT = 2.0  # seconds the writes under way may take at shutdown (a drain is 15 s)
RECEIVE_BYTES = 1 << 20  # a streamed read is written to its file a MiB at a time
MAX_HEAD = 1 << 20  # an object whose head is not within this is not ours


class SharedTier:
    """One worker's view of the bucket: lookups, background writes, purges."""

    def __init__(self, cfg: SharedCacheConfig) -> None:
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.put_timeout = max(PUT_TIMEOUT, 10 * cfg.timeout)
        self.root = f"{cfg.prefix}/" if cfg.prefix else ""
        # The client set up exactly as an `s3_compatible` origin's (s3.py), its connect and
        # read timeouts `timeout`.
        self.s3 = S3Origin("shared cache", bucket_settings(
            "shared cache", cfg, CommonSettings(cfg.prefix, cfg.timeout, cfg.timeout)))
        self.failures = 0
        self.closed_until = 0.0  # monotonic time before which the bucket is not asked
        self.down = False  # said so in the log
        self.uploads: set[asyncio.Task[bool]] = set()
        self.purging: set[asyncio.Task[int]] = set()
        # Purges remembered (wall-clock time, as entries' `created`): by (endpoint, path) for
        # those that name their files, in a list for prefixes and the rest.
        self.named: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.others: list[tuple[float, Matches]] = []
        self.pending: list[tuple[float, Matches]] = []  # purges the bucket has not had yet
        self.retrying: asyncio.Task[None] | None = None

    # --- keys ----------------------------------------------------------------------------

    def key(self, kind: str, endpoint: str, path: str, name: str) -> str | None:
        """The object key of an entry; None for a path that stays local: too long for S3,
        not UTF-8 (a lone surrogate), or with an empty segment (`a//b`, which URL handling
        on the way may fold, so that a purge's listing would not find it)."""
        path = path.lstrip("/")
        if "" in path.split("/"):
            return None
        key = f"{self.folder(kind, endpoint, path)}/{name}"
        return key if _fits(key) else None

    def where(self, key: str) -> tuple[str, str] | None:
        """(endpoint, path) of an object key (None for a key not laid out as ours)."""
        rest = key[len(self.root):]
        _kind, _, rest = rest.partition("/")
        segment, _, rest = rest.partition("/")
        path, _, name = rest.rpartition("/")
        if not segment.startswith("~") or not name:
            return None
        return unquote(segment[1:]), path

    # --- the breaker ---------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether to ask the bucket now: not while it is out of the way; once it has been
        long enough, this caller alone tries it again (the others skip meanwhile)."""
        now = time.monotonic()
        if now < self.closed_until:
            return False
        if self.failures >= FAILURES:
            self.closed_until = now + COOLDOWN
        return True

    def failed(self, doing: str, exc: BaseException) -> None:
        """Count a failure; past FAILURES the bucket is left alone a while (logged once)."""
        self.failures += 1
        if self.failures < FAILURES:
            log.debug("shared cache: %s failed: %s", doing, _reason(exc))
            return
        self.closed_until = time.monotonic() + COOLDOWN
        if not self.down:
            self.down = True
            log.warning("shared cache bucket %r unreachable (%s failed: %s): serving from "
                        "local tiers, trying again every %.0f s", self.cfg.bucket, doing,
                        _reason(exc), COOLDOWN)

    def succeeded(self) -> None:
        """The bucket answered."""
        self.failures = 0
        self.closed_until = 0.0
        if self.down:
            self.down = False
            log.warning("shared cache bucket %r reachable again", self.cfg.bucket)

    # --- reads ---------------------------------------------------------------------------

    async def get_result(self, endpoint: str, path: str, name: str) -> Entry | None:
        """The result `name` of (endpoint, path) made on any node, or None."""
        return await self.get(RESULTS, endpoint, path, name)

    async def get_original(self, endpoint: str, path: str, name: str) -> Entry | None:
        """The saved original `name` of (endpoint, path), or None."""
        return await self.get(ORIGINALS, endpoint, path, name)

    async def get(self, kind: str, endpoint: str, path: str, name: str) -> Entry | None:
        """An entry, within `timeout`; None on a miss, a failure, a purged or a damaged one."""
        key = self.key(kind, endpoint, path, name)
        if key is None or not self.usable():
            return None
        try:
            async with asyncio.timeout(self.timeout):
                client = await self.client()
                response = await client.get_object(Bucket=self.cfg.bucket, Key=key)
                async with response["Body"] as body:
                    data = await body.read()
        except ClientError as exc:
            if _status(exc) == 404:
                self.succeeded()
                return None
            self.failed("a read", exc)
            return None
        except Exception as exc:  # whatever it is, the local tiers carry on
            self.failed("a read", exc)
            return None
        self.succeeded()
        try:
            entry = (await asyncio.to_thread(Entry.decode, data) if len(data) > THREAD_BYTES
                     else Entry.decode(data))
        except CorruptEntry as exc:
            log.warning("shared cache object %s unreadable (%s): ignored", key, exc)
            return None
        if (entry.endpoint, entry.path) != (endpoint, path):
            return None  # not what the key says: never serve another file's bytes
        if self.stale(endpoint, path, entry.created):
            return None  # made before a purge whose DELETE has not reached it (yet)
        return entry

    async def get_result_streamed(self, endpoint: str, path: str, name: str,
                                  into: Path) -> Entry | None:
        """The result `name` of (endpoint, path), its body read into the file `into`."""
        return await self.get_streamed(RESULTS, endpoint, path, name, into)

    async def get_streamed(self, kind: str, endpoint: str, path: str, name: str,
                           into: Path) -> Entry | None:
        """An entry with its body written to the file `into` as it comes, never whole in
        memory (a video): its answer must begin within `timeout`, the rest comes at
        MIN_RATE at worst; None as for `get` (a damaged object leaves `into` behind)."""
        key = self.key(kind, endpoint, path, name)
        if key is None or not self.usable():
            return None
        try:
            async with asyncio.timeout(self.timeout):
                client = await self.client()
                response = await client.get_object(Bucket=self.cfg.bucket, Key=key)
            length = int(response.get("ContentLength") or 0)
            async with (response["Body"] as body,
                        asyncio.timeout(self.put_timeout + length / MIN_RATE)):
                if length > MAX_STREAMED + MAX_HEAD:
                    raise CorruptEntry(f"{length} bytes: not one of ours")
                entry = await _receive(body, into)
        except ClientError as exc:
            if _status(exc) == 404:
                self.succeeded()
                return None
            self.failed("a read", exc)
            return None
        except CorruptEntry as exc:
            self.succeeded()
            log.warning("shared cache object %s unreadable (%s): ignored", key, exc)
            return None
        except _LocalFile as exc:
            log.warning("shared cache object %s not read: %s", key, exc)
            return None
        except Exception as exc:  # whatever it is, the local tiers carry on
            self.failed("a read", exc)
            return None
        self.succeeded()
        if (entry.endpoint, entry.path) != (endpoint, path):
            return None  # not what the key says: never serve another file's bytes
        if self.stale(endpoint, path, entry.created):
            return None
        return entry

    # --- writes --------------------------------------------------------------------------

    def put_result(self, entry: Entry, name: str,
                   began: float) -> asyncio.Future[bool] | None:
        """Write a result made here, in the background (`began`: when its making began; a
        purge since then that covers it keeps it out of the bucket); the write under way, if
        any (cross-node coalescing waits for it before other nodes are let in)."""
        return self.put(RESULTS, entry, name, began)

    def put_original(self, entry: Entry, name: str, began: float) -> None:
        """Write a saved original fetched here, in the background."""
        self.put(ORIGINALS, entry, name, began)

    def put(self, kind: str, entry: Entry, name: str,
            began: float) -> asyncio.Future[bool] | None:
        """Write an entry in the background (the write, which says whether it landed);
        entries larger than MAX_OBJECT (MAX_STREAMED for a body kept on disk), beyond
        MAX_UPLOADS under way, or while the bucket is out of the way stay local."""
        if len(self.uploads) >= MAX_UPLOADS:
            return None
        key = self._writable(kind, entry, name)
        if key is None:
            return None
        task = asyncio.ensure_future(self._upload(key, entry, began))
        self.uploads.add(task)
        task.add_done_callback(self.uploads.discard)
        return task

    async def store_result(self, entry: Entry, name: str, began: float) -> bool:
        """Write a result made here now, and wait for it; whether it landed."""
        return await self.store(RESULTS, entry, name, began)

    async def store(self, kind: str, entry: Entry, name: str, began: float) -> bool:
        """Write an entry now and wait for it (the caller bounds how many at once: a
        stream's parts, which must all be there before its manifests); whether it landed."""
        key = self._writable(kind, entry, name)
        return key is not None and await self._upload(key, entry, began)

    def _writable(self, kind: str, entry: Entry, name: str) -> str | None:
        """The object key to write an entry under; None when it stays local."""
        limit = MAX_STREAMED if entry.body_file is not None else MAX_OBJECT
        if entry.length > limit:
            return None
        key = self.key(kind, entry.endpoint, entry.path, name)
        return key if key is not None and self.usable() else None

    async def _upload(self, key: str, entry: Entry, began: float) -> bool:
        if self.stale(entry.endpoint, entry.path, began):
            return False
        try:
            if entry.body_file is not None:
                await self._put_streamed(key, entry, entry.body_file)
            else:
                data = (await asyncio.to_thread(_encode, entry) if entry.length > THREAD_BYTES
                        else _encode(entry))
                async with asyncio.timeout(self.put_timeout):
                    client = await self.client()
                    await client.put_object(Bucket=self.cfg.bucket, Key=key, Body=data,
                                            ContentType="application/octet-stream")
        except _LocalFile as exc:  # the entry's file went (evicted, purged): not the bucket's
            log.debug("shared cache: %s not written: %s", key, exc)
            return False
        except Exception as exc:  # the entry stays local, that is all
            self.failed("a write", exc)
            return False
        self.succeeded()
        if self.stale(entry.endpoint, entry.path, began):
            # A purge came while it was on its way, and its LIST may have run before the PUT
            # landed: this write takes its own object out again.
            with contextlib.suppress(Exception):
                await self._delete([key])
            return False
        return True

    async def _put_streamed(self, key: str, entry: Entry, body: BodyFile) -> None:
        """Write an entry whose body is a file, read in pieces from one open file (the same
        bytes even if the cache replaces or removes the file meanwhile) on a thread."""
        handle = await _local(_open_body, body)
        try:
            head = entry.head(crc32=await _local(_crc_of, handle, body))
            total = len(head) + body.length
            client = await self.client()
            if total <= PART_BYTES:
                data = await _local(_piece, handle, head, body, 0, total)
                async with asyncio.timeout(self.put_timeout):
                    await client.put_object(Bucket=self.cfg.bucket, Key=key, Body=data,
                                            ContentType="application/octet-stream")
                return
            async with asyncio.timeout(self.put_timeout):
                started = await client.create_multipart_upload(
                    Bucket=self.cfg.bucket, Key=key, ContentType="application/octet-stream")
            upload = started["UploadId"]
            try:
                parts: list[CompletedPartTypeDef] = []
                for number, start in enumerate(range(0, total, PART_BYTES), start=1):
                    data = await _local(_piece, handle, head, body, start,
                                        min(PART_BYTES, total - start))
                    async with asyncio.timeout(self.put_timeout):
                        sent = await client.upload_part(
                            Bucket=self.cfg.bucket, Key=key, UploadId=upload,
                            PartNumber=number, Body=data)
                    parts.append({"ETag": sent["ETag"], "PartNumber": number})
                async with asyncio.timeout(self.put_timeout):
                    await client.complete_multipart_upload(
                        Bucket=self.cfg.bucket, Key=key, UploadId=upload,
                        MultipartUpload={"Parts": parts})
            except BaseException:
                # Else the bucket keeps the parts, unseen, until a lifecycle rule ends them.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.timeout):
                        await client.abort_multipart_upload(
                            Bucket=self.cfg.bucket, Key=key, UploadId=upload)
                raise
        finally:
            handle.close()

    # --- purges --------------------------------------------------------------------------

    async def forget(self, matches: Matches, paths: Collection[str] | None = None) -> int:
        """Remember a purge (every worker, every purge): what it covers and was made before
        it is neither read nor written from now on. Counts nothing (the bucket's DELETE is
        `purge`'s)."""
        now = time.time()
        self._prune(now)
        if isinstance(matches, PurgeScope) and not matches.prefix:
            for endpoint in matches.endpoints:
                for path in matches.paths:
                    self.named.pop((endpoint, path), None)
                    self.named[(endpoint, path)] = now
        else:
            self.others.append((now, matches))
        return 0

    def stale(self, endpoint: str, path: str, since: float) -> bool:
        """Whether a purge remembered from `since` on covers (endpoint, path)."""
        at = self.named.get((endpoint, path))
        if at is not None and at >= since:
            return True
        return any(at >= since and matches(endpoint, path)
                   for at, matches in (*self.others, *self.pending))

    def _prune(self, now: float) -> None:
        while self.named:
            where, at = next(iter(self.named.items()))
            if now - at < REMEMBERED:
                break
            del self.named[where]
        if self.others and now - self.others[0][0] >= REMEMBERED:
            self.others = [(at, m) for at, m in self.others if now - at < REMEMBERED]

    async def purge(self, matches: Matches, paths: Collection[str] | None = None) -> int:
        """Delete the bucket's objects a purge covers (once per purge, by the worker that
        took it); how many. Waits at most `timeout`: the rest goes on in the background, and
        a purge the bucket did not take is retried until it does."""
        await self.forget(matches, paths)
        task = asyncio.ensure_future(self._purge_or_keep(time.time(), matches))
        self.purging.add(task)
        task.add_done_callback(self.purging.discard)
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        return task.result() if done else 0

    async def _purge_or_keep(self, at: float, matches: Matches) -> int:
        reason = "the bucket is out of the way"
        if self.usable():
            try:
                removed = await self._purge(matches)
            except ClientError as exc:  # refused (ListBucket or DeleteObject not allowed?)
                reason = _reason(exc)  # the bucket answered: not the breaker's business
            except Exception as exc:  # kept and retried below
                self.failed("a purge", exc)
                reason = _reason(exc)
            else:
                self.succeeded()
                return removed
        if not self.pending:
            log.warning("shared cache: a purge did not reach bucket %r (%s); retried until it "
                        "does (meanwhile no worker told of it uses what it covers)",
                        self.cfg.bucket, reason)
        self.pending.append((at, matches))
        if len(self.pending) > MAX_PENDING:
            del self.pending[0]
            log.error("shared cache: more than %d purges missed bucket %r; the oldest is "
                      "dropped (its objects may be served again)", MAX_PENDING, self.cfg.bucket)
        if self.retrying is None or self.retrying.done():
            self.retrying = asyncio.ensure_future(self._retry())
        return 0

    async def _retry(self) -> None:
        """Purges the bucket missed, sent again once it answers (oldest first)."""
        while self.pending:
            await asyncio.sleep(COOLDOWN / 2)
            while self.pending and self.usable():
                _, matches = self.pending[0]
                try:
                    await self._purge(matches)
                except ClientError:  # refused: tried again after a while
                    break
                except Exception as exc:  # tried again after a while
                    self.failed("a purge", exc)
                    break
                self.succeeded()
                self.pending.pop(0)

    async def _purge(self, matches: Matches) -> int:
        """LIST the key prefixes the purge names (everything, for a test that names none)
        and DELETE what it covers."""
        doomed: list[str] = []
        for prefix, direct in self._prefixes(matches):
            for key in await self._list(prefix, direct):
                where = self.where(key)
                if where is not None and matches(*where):
                    doomed.append(key)
        await self._delete(doomed)
        return len(doomed)

    def _prefixes(self, matches: Matches) -> list[tuple[str, bool]]:
        """(key prefix, direct children only) to list for a purge."""
        if not isinstance(matches, PurgeScope):
            return [(f"{self.root}{kind}/", False) for kind in (RESULTS, ORIGINALS)]
        found: list[tuple[str, bool]] = []
        for kind in (RESULTS, ORIGINALS):
            for endpoint in sorted(matches.endpoints):
                for path in sorted(matches.paths):
                    if matches.prefix:  # every path under it, whatever follows
                        folder = self.folder(kind, endpoint, path.lstrip("/"))
                        if _fits(folder):
                            found.append((folder, False))
                        continue
                    # A file's entries are the objects right under its path: "a.jpg/" must
                    # not also purge the file "a.jpg/b.png" (the listing's delimiter leaves
                    # that folder out).
                    key = self.key(kind, endpoint, path, "")
                    if key is not None:  # else nothing of it was ever written
                        found.append((key, True))
        return found

    def folder(self, kind: str, endpoint: str, path: str) -> str:
        """The key prefix of an endpoint's paths starting with `path`."""
        return f"{self.root}{kind}/~{quote(endpoint, safe='')}/{path}"

    async def _list(self, prefix: str, direct: bool) -> list[str]:
        client = await self.client()
        keys: list[str] = []
        arguments = {"Bucket": self.cfg.bucket, "Prefix": prefix}
        if direct:
            arguments["Delimiter"] = "/"
        paginator = client.get_paginator("list_objects_v2")
        async with asyncio.timeout(self.put_timeout):
            async for page in paginator.paginate(**arguments):  # type: ignore[arg-type]
                keys += [item["Key"] for item in page.get("Contents", []) if "Key" in item]
        return keys

    async def _delete(self, keys: list[str]) -> None:
        client = await self.client()
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 at most
            batch = keys[start:start + 1000]
            async with asyncio.timeout(self.put_timeout):
                await client.delete_objects(Bucket=self.cfg.bucket, Delete={
                    "Objects": [{"Key": key} for key in batch], "Quiet": True})

    # --- lifetime ------------------------------------------------------------------------

    async def check(self) -> None:
        """`/readyz`: raise while the bucket is left alone after failures."""
        if self.failures >= FAILURES or time.monotonic() < self.closed_until:
            raise RuntimeError("the shared bucket failed; local tiers serve meanwhile")

    async def start(self) -> None:
        """Make the client at start-up: its first making loads botocore's service model,
        which must not eat the first request's `timeout`."""
        await self.client()

    async def client(self) -> S3Client:
        """The bucket's client (made on first use, in the running loop)."""
        return await self.s3.client()

    async def close(self) -> None:
        """Give the writes and purges under way a moment to finish (what does not is lost
        to the bucket only: it is a cache), then close the client."""
        if self.retrying is not None:
            self.retrying.cancel()
        waiting = [*self.uploads, *self.purging]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=SHUTDOWN_WAIT)
            for task in late:
                task.cancel()
        await self.s3.aclose()


def _fits(key: str) -> bool:
    """Whether `key` is a valid S3 key: UTF-8 (no lone surrogate), at most MAX_KEY bytes."""
    try:
        return len(key.encode()) <= MAX_KEY
    except UnicodeEncodeError:
        return False


class _LocalFile(Exception):
    """This node's file of an entry could not be read or written (not the bucket's fault)."""


async def _local(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work` on a thread, its OSError a `_LocalFile` (the bucket's client raises OSErrors
    of its own, which are the bucket's)."""
    try:
        return await asyncio.to_thread(work, *args, **kwargs)
    except OSError as exc:
        raise _LocalFile(str(exc)) from None


def _open_body(body: BodyFile) -> IO[bytes]:
    """The file of a body kept on disk, open, checked to hold it whole."""
    handle = body.path.open("rb")
    if os.fstat(handle.fileno()).st_size < body.offset + body.length:
        handle.close()
        raise OSError(f"{body.path} is shorter than its entry says")
    return handle


def _crc_of(handle: IO[bytes], body: BodyFile) -> int:
    """The CRC-32 of a body kept on disk (measured 16 ms per 64 MiB)."""
    crc, offset, left = 0, body.offset, body.length
    while left > 0:
        chunk = os.pread(handle.fileno(), min(left, 1 << 20), offset)
        if not chunk:
            raise OSError(f"{body.path} is shorter than its entry says")
        crc = zlib.crc32(chunk, crc)
        offset += len(chunk)
        left -= len(chunk)
    return crc


def _piece(handle: IO[bytes], head: bytes, body: BodyFile, start: int, size: int) -> bytes:
    """Bytes [start, start + size) of the object `head` + body."""
    out = bytearray(head[start:start + size])
    offset = max(0, start - len(head))
    while len(out) < size:
        chunk = os.pread(handle.fileno(), size - len(out), body.offset + offset)
        if not chunk:
            raise OSError(f"{body.path} is shorter than its entry says")
        out += chunk
        offset += len(chunk)
    return bytes(out)


async def _receive(body: Any, into: Path) -> Entry:
    """Read an object into an entry whose body is the file `into`: the head parsed as it
    comes, the body written (on a thread, a MiB at a time) and checked by length and CRC-32."""
    received = bytearray()
    header: dict[str, Any] | None = None
    handle = await _local(into.open, "wb")
    crc = size = 0
    try:
        async for chunk in body.iter_chunks(RECEIVE_BYTES):
            received += chunk
            if header is None:
                split = split_head(bytes(received))
                if split is None:
                    if len(received) > MAX_HEAD:
                        raise CorruptEntry("no head")
                    continue
                header, start = split
                del received[:start]
            if len(received) >= RECEIVE_BYTES:
                crc = await _local(_append, handle, bytes(received), crc)
                size += len(received)
                received.clear()
        if header is None:
            raise CorruptEntry("no head")
        crc = await _local(_append, handle, bytes(received), crc)
        size += len(received)
    finally:
        await _local(handle.close)
    if size != header.get("length"):
        raise CorruptEntry("truncated body")
    if crc != header.get("crc32"):
        raise CorruptEntry("checksum mismatch")
    return streamed_entry(header, BodyFile(into, 0, size))


def _append(handle: IO[bytes], data: bytes, crc: int) -> int:
    """Write `data`; the CRC-32 so far, `data` included."""
    handle.write(data)
    return zlib.crc32(data, crc)


def _encode(entry: Entry) -> bytes:
    """An entry's object: its on-disk form, whole."""
    return entry.head() + entry.body


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _reason(exc: BaseException) -> str:
    """A failure in a few words, no secrets (botocore's messages name no credentials)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')} ({_status(exc)})"
    return f"{type(exc).__name__}: {exc}"[:200]
