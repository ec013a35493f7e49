"""ASGI app assembly: admin routes, delivery, and the lifespan of shared clients."""

from __future__ import annotations

import logging

from pixelport.config import Config
from pixelport.delivery.endpoints import Endpoint, EndpointTable
from pixelport.delivery.handler import Delivery
from pixelport.delivery.http import Receive, Scope, Send, send_bytes
from pixelport.origins.base import Origin, Shared
from pixelport.origins.chain import OriginChain
from pixelport.origins.http import HttpClient
from pixelport.origins.library import LibraryOrigin
from pixelport.origins.registry import build_all
from pixelport.transform.pool import WorkPool

log = logging.getLogger("pixelport")


class App:
    """The pixelport ASGI application."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.http = HttpClient(allow_private_networks=config.security.allow_private_networks)
        self.origins = build_all(Shared(config, self.http))
        library: list[Origin] = []
        if config.library_dir is not None:
            library.append(LibraryOrigin(config.library_dir))
        endpoints = [
            Endpoint(e, OriginChain((library if e.library else [])
                                    + [self.origins[name] for name in e.origins]))
            for e in config.endpoints
        ]
        self.pool = WorkPool(config.server.processing_threads, config.server.processing_queue)
        self.delivery = Delivery(config, EndpointTable(endpoints), self.pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route a request: health checks, else delivery."""
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in ("/healthz", "/readyz"):
            await send_bytes(send, 200, {"content-type": "text/plain",
                                         "cache-control": "no-store"}, b"ok\n")
            return
        await self.delivery(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start-up and shutdown of shared resources."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info("pixelport ready: %d origin(s), %d endpoint(s), %d worker thread(s)",
                         len(self.origins), len(self.config.endpoints), self.pool.threads)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close pooled connections and stop the workers."""
        for origin in self.origins.values():
            await origin.aclose()
        await self.http.aclose()
        self.pool.shutdown()
