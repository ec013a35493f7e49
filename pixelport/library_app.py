"""Assembly of the media library and its API (what `app.App` mounts when a library is set)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pixelport.api.accounts import AccountRoutes
from pixelport.api.files import Files
from pixelport.api.folders import FolderRoutes
from pixelport.api.purge import PurgeApi
from pixelport.api.router import build
from pixelport.api.settings import SettingRoutes
from pixelport.api.upload import Uploads
from pixelport.asgi import Delivered, Receive, Scope, Send
from pixelport.config import Config
from pixelport.delivery.account import DEFAULT, Account
from pixelport.delivery.endpoints import EndpointTable
from pixelport.errors import ApiError, ApiUnavailable, PixelportError, UploadTooLarge
from pixelport.library.accounts import Accounts
from pixelport.library.fields import MetadataFields
from pixelport.library.files import Library
from pixelport.library.folders import Folders
from pixelport.library.listing import Query, list_assets
from pixelport.library.named import NamedTransformations
from pixelport.library.origin import LibraryFiles
from pixelport.library.records import Urls
from pixelport.library.storages import open_storage
from pixelport.origins import http1
from pixelport.origins.base import Origin, Shared
from pixelport.origins.http import HttpClient, check_status
from pixelport.security.upload_tokens import SpentTokens
from pixelport.siblings import Siblings, Unreachable
from pixelport.state.db import Database
from pixelport.state.models import UploadToken, now

log = logging.getLogger("pixelport.library")
SWEEP_EVERY = 3600.0  # orphaned bytes and spent tokens are looked for this often
ORPHAN_AGE = 3600.0  # unreferenced bytes younger than this may belong to a commit under way


class MediaLibrary:
    """The library's parts in one worker: database, storage, files, folders, API routes."""

    def __init__(self, config: Config, root: Path, http: HttpClient,
                 account: Account = DEFAULT) -> None:
        """`account`: whose library this is (a sub-account's `config` carries its keys,
        folder and database; pixelport/tenancy.py)."""
        self.config = config
        self.account = account
        self.db = Database(config.database.url, schema=config.database.schema)
        self.storage = open_storage(root, config.library_bucket)
        self.library = Library(self.db, self.storage)
        self.origin = LibraryFiles(self.library, self.storage.origin())
        self.fields = MetadataFields(self.db)
        self.folders = Folders(self.library)
        self.named = NamedTransformations(self.db, config.transformations)
        # Client-side upload tokens spent (the app gives it Redis with `[cluster] redis_url`).
        self.tokens = SpentTokens(self.db, account.name)
        self.accounts = Accounts(self.db, config, Shared(config, http))
        # Applies the config's and the database's origins and endpoints to delivery (the app's
        # `rebuild_endpoints`, set before `start`).
        self.rebuild: Callable[[], Awaitable[None]] | None = None
        self.accounts_changed: Callable[[], Awaitable[None]] | None = None  # set by `mount`
        self.urls_for: Callable[[str | None, str], Urls] = _urls_for(EndpointTable([]),
                                                                     account)
        self.uploads: Uploads | None = None  # set by `mount`
        self.named_changed: Callable[[], Awaitable[None]] | None = None  # set by `mount`
        self.http = http
        self.router: Any = None
        # Runs a delivery GET of a target and drops the answer (`App.produce`).
        self.produce: Callable[[str], Coroutine[Any, Any, None]] | None = None
        # GETs a delivery target in-process and returns the answer (`App.deliver`).
        self.deliver: Callable[[str, str, str], Awaitable[Delivered]] | None = None
        self.warming: set[asyncio.Task[None]] = set()
        self.sweeper: asyncio.Task[None] | None = None

    def mount(self, table: EndpointTable, purges: PurgeApi, siblings: Siblings,
              origins: dict[str, Origin]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The API routes, with caches purged in every worker on every change."""
        async def changed(paths: Sequence[str]) -> None:
            try:
                await purges.purge_paths(paths)
            except Unreachable as exc:
                log.error("library change of %d path(s): %s", len(paths), exc)
                raise ApiUnavailable("The change was saved, but not every worker process "
                                     "could drop its cached results; purge the file's URL "
                                     "again (POST /v1/files/purge).") from None

        async def named_changed() -> None:
            await self.named.load()
            await siblings.broadcast({"named": True, "account": self.account.name})

        async def accounts_changed() -> None:
            await self.apply_accounts()
            try:
                await siblings.broadcast({"accounts": True, "account": self.account.name})
            except Unreachable as exc:
                log.error("origins or endpoints changed: %s", exc)
                raise ApiUnavailable("The change was saved, but not every worker process has "
                                     "applied it yet; it will at its next start.") from None

        self.accounts_changed = accounts_changed
        self.named_changed = named_changed
        self.library.on_change = changed
        urls_for = self.urls_for = _urls_for(table, self.account)
        security = self.config.security
        uploads = self.uploads = Uploads(
            self.library, self.fields, security.keys, security.public_key,
            self.config.limits.max_upload_bytes, urls_for, self.fetch_url, self.named,
            self.config.images, self.config.limits, self.warm, self.tokens)
        files = Files(self.library, self.fields, urls_for, purges.request_id,
                      _path_of_url(table, self.account), self.delivered)
        self.router = build(uploads, files, FolderRoutes(self.folders),
                            SettingRoutes(self.fields, self.named, named_changed),
                            AccountRoutes(self.accounts, accounts_changed, origins))
        return self.router  # type: ignore[no-any-return]

    async def delivered(self, url: str) -> Delivered:
        """What delivery answers for an absolute URL, asked in this process (the URL's host
        and path pick the endpoint, as for a client; nothing leaves the machine)."""
        if self.deliver is None:
            raise ApiUnavailable("Delivery is not running.")
        parts = urlsplit(url)
        return await self.deliver(parts.path or "/", parts.query, parts.netloc or "localhost")

    def warm(self, target: str) -> None:
        """Have a delivery target produced in the background (`produce`, set by the app)."""
        if self.produce is None:
            return
        if self.account.prefix:  # a sub-account's files are under its prefix
            target = f"/{self.account.prefix}{target}"
        task = asyncio.create_task(self.produce(target))
        self.warming.add(task)
        task.add_done_callback(self.warming.discard)

    async def start(self) -> None:
        """Migrate the schema, load named transformations, start the sweeper."""
        await self.db.migrate()
        await self.named.load()
        await self.apply_accounts()
        self.sweeper = asyncio.create_task(self._sweep_forever())

    async def on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A message from another worker that concerns the library (None: not ours)."""
        if message.get("named"):
            await self.named.load()
            return {}
        if message.get("accounts"):
            await self.apply_accounts()
            return {}
        return None

    async def listing(self, path: str, host: str | None, scheme: str) -> list[dict[str, Any]]:
        """A folder's folders and files, as `GET /v1/files?path=` answers them (the
        dashboard's library page)."""
        query = Query.parse({"path": path or "/", "limit": "1000"})
        return await list_assets(self.db, query, self.urls_for(host, scheme))

    async def apply_accounts(self) -> None:
        """Rebuild delivery's endpoints from the config and the database (this worker)."""
        if self.rebuild is not None:
            await self.rebuild()

    async def fetch_url(self, url: str, path: Path, limit: int, timeout: float) -> None:
        """An upload's `file` given as a URL: fetched through the address guard, within
        `timeout` seconds and `limit` bytes, into `path`."""
        timeouts = http1.Timeouts(connect=timeout, read=timeout)
        try:
            async with asyncio.timeout(timeout):
                response = await self.http.get(url, {}, timeouts, "upload")
                try:
                    check_status(response, "upload", url)
                    size = 0
                    with path.open("wb") as writer:
                        async for chunk in response.chunks():
                            size += len(chunk)
                            if size > limit:
                                raise UploadTooLarge(f"The file is larger than the upload "
                                                     f"limit of {limit} bytes.")
                            writer.write(chunk)
                finally:
                    response.release()
        except TimeoutError:
            raise ApiError(f"The file URL did not answer within {timeout:g} seconds.") from None
        except ApiError:
            raise
        except PixelportError as exc:
            raise ApiError(f"The file URL could not be fetched: {exc.message}") from None

    async def sweep(self) -> int:
        """Delete orphaned bytes and spent upload tokens; how many files went."""
        from sqlalchemy import delete, select

        from pixelport.state.models import FileVersion

        async with self.db.read() as session:
            keys = set((await session.scalars(select(FileVersion.storage_key))).all())
        removed = await self.storage.sweep(keys, ORPHAN_AGE)
        await self.db.transaction(
            lambda session: session.execute(delete(UploadToken).where(
                UploadToken.expires_at < now())))
        return removed

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                removed = await self.sweep()
                if removed:
                    log.info("removed %d orphaned file(s) from the library", removed)
            except Exception:
                log.exception("library sweep failed")

    async def aclose(self) -> None:
        """Stop the sweeper and close the database."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        await self.storage.aclose()
        await self.db.aclose()


def _urls_for(table: EndpointTable, account: Account) -> Callable[[str | None, str], Urls]:
    """Delivery URLs for an API request of `account`: on the endpoint its Host is the domain
    of, else on the account's shortest endpoint that serves the library."""
    def urls_for(host: str | None, scheme: str) -> Urls:
        base = f"{scheme}://{host or 'localhost'}"
        # With no path segments, only a domain or the default ("") endpoint can match.
        found = table.resolve(host, [])
        if found is not None and found[0].config.library and found[0].account is account:
            return Urls(base)
        serving = [e for _, e in reversed(table.by_prefix)
                   if e.config.library and e.account is account]
        return Urls(f"{base}/{serving[0].identifier}" if serving else base)
    return urls_for


def _path_of_url(table: EndpointTable, account: Account) -> Callable[[str], str | None]:
    """A delivery URL → the library path it serves (None when it names no endpoint of
    `account`)."""
    def path_of(url: str) -> str | None:
        parts = urlsplit(url)
        segments = parts.path.lstrip("/").split("/")
        found = table.resolve(parts.netloc, segments)
        if found is None or found[0].account is not account:
            return None
        rest = segments[found[1]:]
        if rest and rest[0].startswith("tr:"):
            rest = rest[1:]
        return "/" + unquote("/".join(rest))
    return path_of
