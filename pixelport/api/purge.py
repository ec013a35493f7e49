"""`POST /v1/files/purge` and `GET /v1/files/purge/{requestId}`, as ImageKit answers them.

A purge removes every cached result of a file (all transformations and variants, both tiers)
and its saved original; a trailing `*` purges every file under a prefix. Purges complete
before the answer, in every worker process (`pixelport.siblings`), so the status is always
`Completed`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pixelport import metrics
from pixelport.asgi import Receive, Scope, Send
from pixelport.cache.purgelog import PurgeScope
from pixelport.delivery.account import DEFAULT, Account
from pixelport.delivery.endpoints import EndpointTable
from pixelport.delivery.rewriters import REWRITERS
from pixelport.errors import InvalidRequest
from pixelport.lru import LRU
from pixelport.security.api_auth import send_json
from pixelport.security.paths import check_file_path
from pixelport.siblings import Siblings, Unreachable

log = logging.getLogger("pixelport.api")
MAX_BODY = 64 * 1024
# (matches(endpoint, path), the paths it can match when known) -> entries removed
Purger = Callable[[Callable[[str, str], bool], Collection[str] | None], Awaitable[int]]


class PurgeError(ValueError):
    """A purge request that cannot be carried out (answered 400)."""


def matcher(table: EndpointTable, url: str,
            account: Account = DEFAULT) -> Callable[[str, str], bool]:
    """A test of (endpoint, path) for the files a purge URL of `account` names."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PurgeError("url must be an absolute http(s) URL")
    path = parts.path
    wildcard = path.endswith("*")
    if wildcard:
        path = path[:-1]
    segments = path.lstrip("/").split("/")
    found = table.resolve(parts.netloc, segments)
    # Another account's URL is no business of this one's key: told apart from nothing only in
    # the wording, so a key learns nothing about the other accounts.
    if found is None or found[0].account is not account:
        raise PurgeError("No URL endpoint of this account matches this URL")
    endpoint, used = found
    rest = segments[used:]
    if endpoint.config.url_rewriter is not None:  # the vendor's URL of the file will do
        try:
            rest = REWRITERS[endpoint.config.url_rewriter](rest, parts.query).segments
        except InvalidRequest as exc:
            raise PurgeError(exc.message) from None
    if rest and rest[0].lower().startswith("tr:"):
        rest = rest[1:]
    try:
        file_path = check_file_path(unquote("/".join(rest), errors="strict"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PurgeError(f"Invalid path in url: {exc}") from None
    identifier = endpoint.identifier
    if not wildcard:
        if not file_path:
            raise PurgeError("url names no file; add a trailing * to purge a folder")
        return PurgeScope(frozenset((identifier,)), frozenset((file_path,)))
    # ImageKit's guard against purging too much at once.
    # "folder/*" counts two levels (the folder and what is inside it); "*" or "a*" one.
    levels = len(file_path.split("/")) if file_path else 0
    if not (levels >= 2 or len(file_path) >= 15 or "." in file_path.rsplit("/", 1)[-1]):
        raise PurgeError("A wildcard purge needs a path of at least two levels, at least 15 "
                         "characters, or a full file name")
    return PurgeScope(frozenset((identifier,)), frozenset((file_path,)), prefix=True)


class PurgeApi:
    """The purge routes."""

    def __init__(self, table: EndpointTable, purgers: Sequence[Purger],
                 siblings: Siblings | None = None, account: Account = DEFAULT) -> None:
        """`account`: whose URLs this purges (its key's scope)."""
        self.table = table
        self.account = account
        self.purgers = purgers
        self.siblings = siblings
        self.done: LRU[str, int] = LRU(10_000)  # purge request ids answered, for their status
        # The shared cache tier's bucket (`[cache.shared]`), purged once per purge by the worker
        # that took it, after every worker has purged its own tiers (and so remembers the
        # purge: a shared entry it covers is neither read nor written by them from then on).
        self.shared: Purger | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route within /v1/files/purge."""
        path = scope["path"].rstrip("/")
        method = scope["method"]
        if path == "/v1/files/purge" and method == "POST":
            await self.purge(receive, send)
        elif path.startswith("/v1/files/purge/") and method == "GET":
            await self.status(path.rsplit("/", 1)[-1], send)
        else:
            await send_json(send, 405 if path == "/v1/files/purge" else 404,
                            {"message": "Use POST /v1/files/purge or GET "
                                        "/v1/files/purge/{requestId}."})

    async def purge(self, receive: Receive, send: Send) -> None:
        """Purge one URL (or prefix) now; answer 201 with a request id."""
        body = await _read_body(receive)
        try:
            url = json.loads(body)["url"] if body is not None else None
        except (ValueError, KeyError, TypeError):
            url = None
        if not isinstance(url, str) or not url:
            await send_json(send, 400, {"message": "Send JSON {\"url\": \"...\"}."})
            return
        try:
            request_id = await self.purge_url(url)
        except PurgeError as exc:
            await send_json(send, 400, {"message": str(exc)})
            return
        except Unreachable:
            await send_json(send, 503, {"message": "The purge did not reach every worker "
                                                   "process; send it again."})
            return
        await send_json(send, 201, {"requestId": request_id})

    async def purge_url(self, url: str) -> str:
        """Purge one URL (or `*` prefix) in every worker; its request id (PurgeError for a URL
        of no endpoint, Unreachable when a worker did not answer)."""
        request_id = uuid.uuid4().hex
        try:
            removed = await self.apply(url, request_id)
            if self.siblings is not None:
                replies = await self.siblings.broadcast({"purge": url, "id": request_id,
                                                    "account": self.account.name})
                removed += sum(int(reply.get("removed", 0)) for reply in replies)
        except Unreachable as exc:
            log.error("purge %s: %s reached only some workers: %s", request_id, url, exc)
            raise
        if self.shared is not None:
            removed += await self.shared(matcher(self.table, url, self.account), None)
        log.info("purge %s: %s (%d cached items removed)", request_id, url, removed)
        metrics.purged("url")
        return request_id

    async def apply(self, url: str, request_id: str) -> int:
        """Purge `url` from this worker's caches and record the id; how many items went."""
        matches = matcher(self.table, url, self.account)
        removed = 0
        for purger in self.purgers:
            removed += await purger(matches, None)
        self.done.put(request_id, removed)
        return removed

    async def purge_paths(self, paths: Sequence[str]) -> None:
        """Purge every cached result of these library paths (`/a/b.jpg`), on every endpoint,
        in every worker, before returning (a library change: no request id to look up)."""
        await self.apply_paths(paths)
        metrics.purged("library")
        if self.siblings is not None:
            listed = list(paths)
            for start in range(0, len(listed), 200):  # messages stay under 64 KiB
                await self.siblings.broadcast({"purge_paths": listed[start:start + 200],
                                          "account": self.account.name})
        if self.shared is not None:
            wanted = self.paths_scope(paths)
            await self.shared(wanted, wanted.paths)

    async def apply_paths(self, paths: Sequence[str]) -> int:
        """Purge these library paths from this worker's caches (looked up by path)."""
        wanted = self.paths_scope(paths)
        removed = 0
        for purger in self.purgers:
            removed += await purger(wanted, wanted.paths)
        return removed

    def paths_scope(self, paths: Sequence[str]) -> PurgeScope:
        """The purge of these library paths on every endpoint of this account."""
        return PurgeScope(frozenset(e.identifier for e in self.table.endpoints
                                    if e.account is self.account),
                          frozenset(p.lstrip("/") for p in paths))

    def request_id(self) -> str:
        """A purge request id answered Completed (caches follow library changes at once)."""
        request_id = uuid.uuid4().hex
        self.done.put(request_id, 0)
        return request_id

    async def on_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A purge told by another worker (for this purge's account)."""
        try:
            if "purge_paths" in message:
                paths = [str(p) for p in message["purge_paths"]]
                return {"removed": await self.apply_paths(paths)}
            return {"removed": await self.apply(str(message["purge"]), str(message["id"]))}
        except (KeyError, PurgeError) as exc:
            log.error("purge from another worker failed: %r", exc)
            return {"removed": 0}

    async def status(self, request_id: str, send: Send) -> None:
        """The status of an earlier purge."""
        if request_id not in self.done:
            await send_json(send, 404, {"message": "No purge request with this id."})
            return
        await send_json(send, 200, {"status": "Completed"})


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)
