"""The overview's figures: the result cache's size and hit ratio, recent errors by `ik-error`
code, each origin's circuit state; this worker's (`local`), or summed over every worker
process, each asked through Siblings (`gathered`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pixelport.cache.results import ResultCache
from pixelport.delivery.handler import Delivery
from pixelport.origins.base import Origin
from pixelport.origins.resilience import ResilientOrigin
from pixelport.siblings import Siblings, Unreachable

log = logging.getLogger("pixelport")
MESSAGE = {"figures": True}  # what a worker answers with its `local` figures
ASK_SECONDS = 2.0


class Figures:
    """This worker's figures, and every worker's summed."""

    def __init__(self, results: ResultCache, delivery: Delivery, siblings: Siblings,
                 configured: dict[str, Origin],
                 stored: Callable[[], dict[str, Origin]]) -> None:
        self.results = results
        self.delivery = delivery
        self.siblings = siblings
        self.configured = configured  # the config's origins, by name
        self.stored = stored  # the accounts API's origins delivery uses now, by id

    def origins(self) -> dict[str, Origin]:
        """Every origin delivery uses now, by its accounts API id."""
        # Imported here: the accounts module needs the library's stack (SQLAlchemy), and
        # only a server with a library (and so a dashboard) asks for figures.
        from pixelport.library.accounts import CONFIG_PREFIX

        return {**{CONFIG_PREFIX + n: o for n, o in self.configured.items()}, **self.stored()}

    def local(self) -> dict[str, Any]:
        """This worker's figures (JSON, for the other workers to sum)."""
        results, delivery = self.results, self.delivery
        hot = delivery.hot.served if delivery.hot is not None else 0
        states: dict[str, list[int]] = {}
        for origin_id, origin in self.origins().items():
            if isinstance(origin, ResilientOrigin):
                states[origin_id] = list(origin.state())
        return {
            "workers": 1,
            "memory_bytes": results.memory.used, "memory_capacity": results.memory.capacity,
            "disk_bytes": results.disk.used if results.disk is not None else 0,
            "disk_capacity": results.disk.capacity if results.disk is not None else 0,
            "hits": delivery.hits + hot, "misses": delivery.misses,
            "errors": delivery.errors.counts(), "origins": states,
        }

    async def gathered(self) -> tuple[dict[str, Any], bool]:
        """Every worker's figures summed (an origin's failures: the most of any worker's;
        its open circuits: summed), and whether every worker answered (else this one's)."""
        mine = self.local()
        try:
            # Shorter than Siblings' own wait for a worker being restarted: the page must
            # not hang on one; it shows this worker's figures instead, and says so.
            replies = await asyncio.wait_for(self.siblings.tell(MESSAGE), ASK_SECONDS)
        except (Unreachable, TimeoutError) as exc:
            log.warning("overview figures: %s", exc or "another worker did not answer in time")
            return mine, False
        total = mine
        for reply in replies:
            for key in ("workers", "memory_bytes", "memory_capacity", "disk_bytes",
                        "disk_capacity", "hits", "misses"):
                total[key] += int(reply.get(key, 0))
            for code, count in reply.get("errors", {}).items():
                total["errors"][code] = total["errors"].get(code, 0) + int(count)
            for origin_id, (failures, opened, upstreams) in reply.get("origins", {}).items():
                was = total["origins"].setdefault(origin_id, [0, 0, 0])
                total["origins"][origin_id] = [max(was[0], failures), was[1] + opened,
                                               max(was[2], upstreams)]
        return total, True

    async def on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Another worker asking for this one's figures (None: not that message)."""
        return self.local() if message.get("figures") else None
