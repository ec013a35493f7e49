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
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from pixelport.cache.entry import CorruptEntry, Entry
from pixelport.cache.purgelog import PurgeScope
from pixelport.config import SharedCacheConfig
from pixelport.origins.cloud import CommonSettings
from pixelport.origins.s3 import S3Origin, bucket_settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger("pixelport.cache")
Matches = Callable[[str, str], bool]

RESULTS, ORIGINALS = "results", "originals"
FAILURES = 3  # failures in a row that take the bucket out of the way
COOLDOWN = 10.0  # seconds it stays out of the way; then one request tries again
PUT_TIMEOUT = 10.0  # a background write or purge call (at least 10 x `timeout`)
MAX_OBJECT = 64 * 2**20  # larger entries stay local (an original past max_input_bytes)
MAX_UPLOADS = 64  # background writes at once; past it an entry stays local
MAX_PENDING = 1000  # purges kept for the bucket while it is down
REMEMBERED = 600.0  # seconds a purge is remembered (longer than any render or upload)
MAX_KEY = 1024  # S3's longest key, in UTF-8 bytes: an entry of a longer path stays local
# Encoding or decoding (a CRC-32 and a copy) of larger bodies runs in a thread: on the event
# loop it would hold up every other request for a millisecond or more.
THREAD_BYTES = 256 * 1024
SHUTDOWN_WAIT = 2.0  # seconds the writes under way may take at shutdown (a drain is 15 s)


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
        self.uploads: set[asyncio.Task[None]] = set()
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

    # --- writes --------------------------------------------------------------------------

    def put_result(self, entry: Entry, name: str,
                   began: float) -> asyncio.Future[None] | None:
        """Write a result made here, in the background (`began`: when its making began; a
        purge since then that covers it keeps it out of the bucket); the write under way, if
        any (cross-node coalescing waits for it before other nodes are let in)."""
        return self.put(RESULTS, entry, name, began)

    def put_original(self, entry: Entry, name: str, began: float) -> None:
        """Write a saved original fetched here, in the background."""
        self.put(ORIGINALS, entry, name, began)

    def put(self, kind: str, entry: Entry, name: str,
            began: float) -> asyncio.Future[None] | None:
        """Write an entry in the background; entries kept on disk (videos), larger than
        MAX_OBJECT, beyond MAX_UPLOADS under way, or while the bucket is out of the way stay
        local."""
        if (entry.body_file is not None or entry.length > MAX_OBJECT
                or len(self.uploads) >= MAX_UPLOADS):
            return None
        key = self.key(kind, entry.endpoint, entry.path, name)
        if key is None or not self.usable():
            return None
        task = asyncio.ensure_future(self._upload(key, entry, began))
        self.uploads.add(task)
        task.add_done_callback(self.uploads.discard)
        return task

    async def _upload(self, key: str, entry: Entry, began: float) -> None:
        if self.stale(entry.endpoint, entry.path, began):
            return
        data = (await asyncio.to_thread(_encode, entry) if entry.length > THREAD_BYTES
                else _encode(entry))
        try:
            async with asyncio.timeout(self.put_timeout):
                client = await self.client()
                await client.put_object(Bucket=self.cfg.bucket, Key=key, Body=data,
                                        ContentType="application/octet-stream")
        except Exception as exc:  # the entry stays local, that is all
            self.failed("a write", exc)
            return
        self.succeeded()
        if self.stale(entry.endpoint, entry.path, began):
            # A purge came while it was on its way, and its LIST may have run before the PUT
            # landed: this write takes its own object out again.
            with contextlib.suppress(Exception):
                await self._delete([key])

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
