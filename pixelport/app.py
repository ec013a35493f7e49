"""ASGI app assembly: admin routes, delivery, and the lifespan of shared clients."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from pixelport import health, metrics
from pixelport.accesslog import AccessLog, stamp
from pixelport.api import openapi
from pixelport.api.purge import PurgeApi
from pixelport.asgi import Delivered, Message, Receive, Scope, Send, send_bytes
from pixelport.cache.originals import OriginalStore
from pixelport.cache.results import ResultCache
from pixelport.config import AccountConfig, Config, EndpointConfig
from pixelport.delivery.account import DEFAULT
from pixelport.delivery.endpoints import Endpoint, EndpointTable
from pixelport.delivery.handler import Delivery
from pixelport.delivery.hot import HotAnswers
from pixelport.figures import Figures
from pixelport.origins.base import Origin, Shared
from pixelport.origins.chain import OriginChain
from pixelport.origins.http import HttpClient
from pixelport.origins.library import LibraryOrigin
from pixelport.origins.registry import build_all
from pixelport.place import ALONE, Place
from pixelport.produce.compress import Compressor
from pixelport.produce.image import ImageProducer
from pixelport.produce.originals import Originals
from pixelport.produce.production import Production
from pixelport.produce.video import VideoProducer
from pixelport.produce.video_nodes import VideoNodes
from pixelport.security.api_auth import ApiGate, ApiRoutes, is_api_path
from pixelport.security.deadline import with_deadline
from pixelport.siblings import Siblings, Unreachable
from pixelport.tenancy import Tenant, account_config, account_of, elsewhere
from pixelport.transform.pool import WorkPool

if TYPE_CHECKING:
    from pixelport.api.upload import Uploads
    from pixelport.cache.shared import SharedTier
    from pixelport.cluster.bus import Bus
    from pixelport.library_app import MediaLibrary
    from pixelport.tracing import Tracing

log = logging.getLogger("pixelport")
RECENT_ORIGINALS = 64 * 2**20  # fetched originals kept a few seconds, for their other variants
# An origin the accounts API replaced or deleted is closed this long after: a request that
# began on it (a large file streaming) has that long to finish.
RETIRE_SECONDS = 120.0




def node_id(place: Place) -> str:
    """This node's id in the cluster, the same in each of its worker processes."""
    return f"{socket.gethostname()}:{place.run_dir or os.getpid()}"


class App:
    """The pixelport ASGI application."""

    def __init__(self, config: Config, hot_answers: bool = True, place: Place = ALONE,
                 access_log: bool = False) -> None:
        """`hot_answers`: file answers for the HTTP protocol to repeat (pixelport.server);
        off with uvicorn's access log, which needs every request to go through ASGI. `place`:
        this worker among the server's processes (`pixelport.workers`). `access_log`: a JSON
        line per request (`pixelport.accesslog`; the protocol logs its hot answers)."""
        self.config = config
        self.access = AccessLog() if access_log else None
        # `[tracing]`: None when off, and then OpenTelemetry is never imported.
        self.tracing: Tracing | None = None
        if config.tracing.enabled:
            from pixelport.tracing import Tracing

            self.tracing = Tracing(config.tracing, f"{node_id(place)}:{place.index}",
                                   self.endpoint_of)
        # Answers without an x-request-id get one, for access lines and traces.
        self.stamping = access_log or self.tracing is not None
        self.http = HttpClient(allow_private_networks=config.security.allow_private_networks)
        self.origins = build_all(Shared(config, self.http))
        library: list[Origin] = []
        self.media: MediaLibrary | None = None
        self.dashboard: Any = None  # the dashboard's ASGI app (with the media library)
        if config.library_dir is not None and config.database.url:
            # Imported only when there is a library: its stack (SQLAlchemy, OpenCV, lark...)
            # is ~70 MB of a worker's memory that a library-less deployment never uses.
            from pixelport.library_app import MediaLibrary

            self.media = MediaLibrary(config, config.library_dir, self.http)
            library.append(self.media.origin)
        elif config.library_dir is not None:
            library.append(LibraryOrigin(config.library_dir))
        self.library_sources = library
        self.base_endpoints = [
            Endpoint(e, OriginChain((library if e.library else [])
                                    + [self.origins[name] for name in e.origins]))
            for e in config.endpoints
        ]
        endpoints = list(self.base_endpoints)
        self.retiring: dict[Origin, asyncio.Task[None]] = {}  # replaced, closed a while later
        self.pool = WorkPool(config.server.processing_threads, config.server.processing_queue)
        cache = config.cache
        self.results = ResultCache(cache.memory_size, cache.dir / "results" if cache.dir else None,
                                   cache.max_size, cache.ttl, place)
        self.originals = (OriginalStore(cache.dir / "originals", cache.originals_max_size,
                                        cache.originals_ttl, place)
                          if cache.save_originals and cache.dir else None)
        # Answers the HTTP protocol repeats itself (pixelport.server), while their entry lives.
        self.hot = HotAnswers(self.results.memory, cache.ttl) if hot_answers else None
        table = self.table = EndpointTable(endpoints)
        self.sources = Originals(config.limits.max_input_bytes, self.originals,
                                 recent_bytes=RECENT_ORIGINALS // place.count,
                                 recent_ttl=(min(10.0, cache.originals_ttl) if self.originals
                                             else 10.0))
        self.images = ImageProducer(self.pool, self.results, self.sources, config.images,
                               config.limits, cache.decoded_memory,
                               place.run_dir / "decoded" if place.run_dir else None)
        self.images.tracing = self.sources.tracing = self.tracing
        # Video jobs work and claim keys in a folder the worker processes share.
        video_folder = (cache.dir / "video" if cache.dir
                        else Path(tempfile.mkdtemp(prefix="pixelport-video-")))
        self.videos = VideoProducer(config, self.pool, self.results, video_folder, self.sources)
        self.videos.tracing = self.tracing
        # Encoded forms first: they are made from (and ask production for) the identity form.
        self.compressor = Compressor(self.pool, self.results,
                                     lambda job: self.production.make(job))
        self.production = Production([self.compressor, self.videos, self.images])
        self.delivery = Delivery(config, table, self.results, self.production, self.hot)
        self.timed_delivery = with_deadline(self.delivery, config.server.request_timeout)
        self.api = ApiGate(config.security.keys)
        self.purgers = [self.results.purge, self.sources.purge] + (
            [self.originals.purge] if self.originals else [])
        self.shared: SharedTier | None = None  # `[cache.shared]`: the bucket nodes share
        if cache.shared is not None:
            from pixelport.cache.shared import SharedTier  # aiobotocore: only when used

            self.shared = SharedTier(cache.shared)
            self.images.shared = self.shared
            if self.originals is not None:
                self.sources.shared = self.shared
            self.purgers.append(self.shared.forget)
        self.siblings = Siblings(place)
        self.bus: Bus | None = None  # the other nodes (`[cluster] redis_url`)
        # Claims of client-side upload tokens, on a client of their own: short timeouts
        # (security/upload_tokens.py), unlike the bus's blocking reads.
        self.token_redis: Any = None
        if config.cluster.redis_url:
            from pixelport.cluster.bus import Bus

            self.bus = Bus(config.cluster.redis_url, node_id(place),
                           cache.dir / "cluster" / f"worker-{place.index}.last"
                           if cache.dir else None)
            self.siblings.beyond = self.bus
            if self.media is not None:
                from pixelport.security.upload_tokens import redis_client

                self.token_redis = redis_client(config.cluster.redis_url)
            if self.shared is not None:  # cross-node coalescing: what one node makes, the
                from pixelport.cluster.leases import Leases  # others read from the bucket

                self.images.leases = Leases(self.bus.redis)
        if self.shared is not None:  # video results and encoded forms across nodes too
            self.videos.nodes = VideoNodes(self.shared, self.images.leases, self.results)
            self.delivery.shared_part = self.videos.nodes.part
            self.compressor.shared = self.shared
        self.purges = PurgeApi(table, self.purgers, self.siblings)
        if self.shared is not None:
            self.purges.shared = self.shared.purge
        self.figures = Figures(self.results, self.delivery, self.siblings, self.origins,
                               lambda: {k: o for t in self.tenants.values()
                                        for k, o in t.built.items()})
        self.api.route("/v1/files/purge", self.purges)
        # Hot answers are counted in a plain int and queue depths read, folded into the
        # metrics once a second (pixelport.metrics).
        hot = self.hot
        self.tally = metrics.Tally(
            (lambda: hot.served) if hot is not None else (lambda: 0),
            {"render": (lambda: self.pool.admitted, self.pool.capacity),
             "video": (lambda: len(self.videos.jobs.running), self.videos.jobs.capacity)})
        # What /readyz checks; other engines add theirs (health.Readiness.add).
        self.readiness = health.Readiness()
        if cache.dir is not None:
            # Optional: without its disk tier the node still serves (from memory, origins).
            self.readiness.add("cache_disk", health.disk_check(cache.dir), required=False)
        self.api.route("/v1/openapi.json", openapi.serve)
        # Every account by name ("" the default): its library, keys, endpoints (tenancy.py).
        self.tenants: dict[str, Tenant] = {}
        if self.media is not None:
            self.tenants[""] = Tenant(DEFAULT, self.media, self.purges, self.api.default,
                                      self.base_endpoints, library, self.origins)
            self.mount(self.tenants[""])
            for spec in config.accounts:
                self.add_tenant(spec)
            from pixelport.library.subaccounts import SubAccounts

            self.sub_accounts = SubAccounts(self.media.db, config)
            from pixelport.dashboard.app import build_dashboard

            self.dashboard = build_dashboard(config, self.tenants, self.figures,
                                             self.create_account)
            self.readiness.add("database", health.database_check(self.media.db))
            if config.library_bucket is not None:  # down: cached results still serve
                self.readiness.add("library_bucket", self.media.storage.check, required=False)
        if self.bus is not None:  # cut off from Redis the node still serves: degraded
            self.readiness.add("redis", self.bus.check, required=False)
        if self.shared is not None:  # the bucket down: local tiers serve: degraded
            self.readiness.add("shared_cache", self.shared.check, required=False)

    def mount(self, tenant: Tenant) -> None:
        """Wire an account's library to delivery, its API routes to its keys."""
        media, account = tenant.media, tenant.account
        router = media.mount(self.table, tenant.purges, self.siblings, tenant.configured)
        media.named.listeners.append(
            lambda: self.delivery.use_named(media.named.mapping, account))
        media.produce = self.produce
        media.deliver = self.deliver
        media.rebuild = lambda: self.rebuild_endpoints(tenant)
        media.tokens.redis = self.token_redis
        media.accounts.elsewhere = lambda: elsewhere(account, self.tenants.values(),
                                                     self.table.endpoints)
        if tenant.routes is not self.api.default:
            tenant.routes.route("/v1/files/purge", tenant.purges)
        tenant.routes.route("/v1", router)
        tenant.routes.route("/api", router)
        assert media.uploads is not None
        if account is DEFAULT:
            media.uploads.by_public_key = self.uploads_of

    def uploads_of(self, public_key: str) -> Uploads | None:
        """The uploads of the account whose public key this is (signed client-side uploads
        name their account only by it)."""
        for tenant in self.tenants.values():
            if public_key and tenant.media.config.security.public_key == public_key:
                return tenant.media.uploads
        return None

    def add_tenant(self, spec: AccountConfig) -> Tenant:
        """A sub-account's library, keys, purge scope and default endpoint (its prefix)."""
        from pixelport.library_app import MediaLibrary

        tenant_config = account_config(self.config, spec)
        account = account_of(spec, tenant_config)
        media = MediaLibrary(tenant_config, spec.library_dir, self.http, account)
        default = Endpoint(EndpointConfig(spec.prefix, ()), OriginChain([media.origin]), account)
        tenant = Tenant(account, media, PurgeApi(self.table, self.purgers, self.siblings, account),
                        ApiRoutes(tenant_config.security.keys), [default], [media.origin],
                        source=spec.source)
        if self.shared is not None:
            tenant.purges.shared = self.shared.purge
        self.api.accounts[spec.name] = tenant.routes
        self.tenants[spec.name] = tenant
        self.mount(tenant)
        return tenant

    async def load_accounts(self) -> None:
        """Serve the sub-accounts made in the dashboard that this worker does not serve yet."""
        for spec in await self.sub_accounts.specs():
            if spec.name not in self.tenants:
                await self.add_tenant(spec).media.start()
        await self.rebuild_endpoints()

    async def create_account(self, name: str, prefix: str,
                             domains: list[str]) -> AccountConfig:
        """A new sub-account, served by every worker before this returns (its keys are in
        the answer, shown once)."""
        default = [e for e in self.table.endpoints if e.account is DEFAULT]
        spec = await self.sub_accounts.create(
            name, prefix, domains,
            taken_prefixes={t.account.prefix for t in self.tenants.values()} | {
                e.identifier.split("/")[0] for e in default if e.identifier},
            taken_hosts={d for t in self.tenants.values() for d in t.account.domains} | {
                d for e in self.table.endpoints for d in e.config.domains},
            taken_names=set(self.tenants))
        await self.load_accounts()
        await self.siblings.broadcast({"sub_accounts": True})
        return spec

    async def rebuild_endpoints(self, only: Tenant | None = None) -> None:
        """Accounts' endpoints (the config's, then its accounts API's), built anew and swapped
        in at once: `only`'s (a change to one account's origins or endpoints rebuilds no
        other's), else every account's. Origins replaced are closed a while later: requests
        in flight finish on them."""
        retired: list[Origin] = []
        for tenant in [only] if only is not None else self.tenants.values():
            retired += tenant.built.values()
            tenant.serving = await tenant.endpoints()
        self.table.replace([e for t in self.tenants.values() for e in t.serving])
        for origin in retired:
            self.retiring[origin] = asyncio.create_task(self._retire(origin))

    async def _retire(self, origin: Origin) -> None:
        await asyncio.sleep(RETIRE_SECONDS)
        del self.retiring[origin]
        await origin.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time an HTTP request (pixelport.metrics, the access log), and route it."""
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        started = time.perf_counter()
        status = 0
        headers: list[tuple[bytes, bytes]] = []  # kept for the access log and traces alone
        access = self.access
        stamping = self.stamping
        route = metrics.route_class(path)

        async def observed(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                if stamping:
                    headers = stamp(message)
            await send(message)

        span = self.tracing.start(scope, route) if self.tracing is not None else None
        try:
            if span is not None:
                span.enter()
            await self.route(scope, receive, observed, path)
        except BaseException as exc:
            status = status or 500  # what uvicorn answers for it
            if span is not None:
                span.failed(exc)
            raise
        finally:
            seconds = time.perf_counter() - started
            # No answer at all: the client left before it was made (nginx's 499).
            metrics.answered(route, status or 499, seconds)
            if access is not None:
                access.line(scope, route, status or 499, seconds, headers)
            if span is not None:
                span.finish(status or 499, headers)

    def endpoint_of(self, host: str, path: str) -> str | None:
        """The identifier of the delivery endpoint a request is on (for traces)."""
        found = self.table.resolve(host or None, path.lstrip("/").split("/"))
        return found[0].identifier if found is not None else None

    async def route(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Answer an HTTP request: health checks, metrics, the API, else delivery."""
        if path in ("/healthz", "/readyz", "/metrics"):
            await self.operations(path, send)
            return
        if is_api_path(path):
            await self.api(scope, receive, send)
            return
        if path == "/dashboard" or path.startswith("/dashboard/"):
            if self.dashboard is not None:
                await self.dashboard(scope, receive, send)
            else:
                await send_bytes(send, 404, {"content-type": "text/plain; charset=utf-8"},
                                 b"The dashboard needs the media library: [library] dir.\n")
            return
        await self.timed_delivery(scope, receive, send)

    async def operations(self, path: str, send: Send) -> None:
        """/metrics (every worker's), /healthz and /readyz (this worker's)."""
        if path == "/metrics":
            await send_bytes(send, 200, {"content-type": metrics.CONTENT_TYPE,
                                         "cache-control": "no-store"}, self.tally.scrape())
            return
        if path == "/healthz":
            status, payload = await health.healthz(self.pool)
        else:
            status, payload = await self.readiness.run()
        await send_bytes(send, status, {"content-type": "application/json",
                                        "cache-control": "no-store"}, health.body(payload))

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start-up and shutdown of shared resources."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.results.start()
                if self.shared is not None:
                    await self.shared.start()
                await self.videos.start()
                if self.originals is not None:
                    await self.originals.start()
                for tenant in list(self.tenants.values()):
                    await tenant.media.start()
                if self.tenants:
                    await self.load_accounts()
                await self.siblings.start(self.on_message)
                if self.bus is not None:
                    await self.bus.start(self.on_message, self.everywhere)
                self.tally.start()
                log.info("pixelport ready: %d origin(s), %d endpoint(s), %d worker thread(s)",
                         len(self.origins), len(self.config.endpoints), self.pool.threads)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def deliver(self, target: str, query: str = "", host: str = "localhost",
                      limit: int = 64 * 1024 * 1024) -> Delivered:
        """GET a delivery target in this process (no socket, under the request deadline):
        its status, headers and body (None when the body passed `limit` bytes)."""
        raw = quote(target, safe="/:@!$&'()*+,;=-._~%").encode()
        scope: Scope = {"type": "http", "method": "GET", "path": unquote(target),
                        "raw_path": raw, "query_string": query.encode(),
                        "headers": [(b"host", host.encode())], "http_version": "1.1"}
        answer = Delivered(0, {}, b"")
        chunks: list[bytes] = []
        size = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal size
            if message["type"] == "http.response.start":
                answer.status = int(message["status"])
                answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                                  for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= limit:
                    chunks.append(message.get("body", b""))

        await self.timed_delivery(scope, receive, send)
        answer.body = b"".join(chunks) if size <= limit else None
        return answer

    async def produce(self, target: str) -> None:
        """GET `target` through delivery and drop the answer: its result is now cached."""
        try:
            await self.deliver(target, limit=0)
        except Exception:
            log.exception("making %s after its upload failed", target)

    async def on_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message from another worker: a library change, the overview's figures, else a
        purge."""
        figures = await self.figures.on_message(message)
        if figures is not None:
            return figures
        if message.get("sub_accounts") and self.tenants:
            await self.load_accounts()
            return {}
        tenant = self.tenants.get(str(message.get("account", "")))
        if tenant is None:
            return await self.purges.on_message(message)
        reply = await tenant.media.on_message(message)
        if reply is not None:
            return reply
        return await tenant.purges.on_message(message)

    async def everywhere(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message carried out here and by this node's other workers (waiting for them to
        start): what another node sent while this one was down."""
        reply = await self.on_message(message)
        try:
            await self.siblings.tell(message)
        except Unreachable as exc:
            log.warning("a change missed while down reached only some workers: %s", exc)
        return reply

    def drain(self, seconds: float) -> None:
        """Shutting down: renders under way, and any started from now, end within `seconds`."""
        self.images.drain(seconds)

    async def aclose(self) -> None:
        """Close pooled connections and stop the workers."""
        self.images.stop()  # renders still running end at their next tile
        await self.videos.stop()  # ffmpeg processes are killed
        await self.siblings.close()
        if self.bus is not None:
            await self.bus.close()
        if self.token_redis is not None:
            await self.token_redis.aclose()
        await self.tally.stop()
        if self.access is not None:
            self.access.flush()
        for tenant in self.tenants.values():
            await tenant.media.aclose()
        await self.results.close()
        if self.shared is not None:
            await self.shared.close()
        if self.originals is not None:
            self.originals.close()
        for task in self.retiring.values():
            task.cancel()
        built = [o for tenant in self.tenants.values() for o in tenant.built.values()]
        for origin in [*self.origins.values(), *built, *self.retiring]:
            await origin.aclose()
        await self.http.aclose()
        self.pool.shutdown()
        if self.tracing is not None:  # the spans still queued are sent
            await asyncio.to_thread(self.tracing.shutdown)
