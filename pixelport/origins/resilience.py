"""Retries and a circuit breaker around any origin.

Connection failures (refused, unresolvable) are retried a bounded number of times with
exponential backoff. Consecutive failures past a threshold open the circuit: the origin then
fails fast, without being contacted, until a cool-down has passed; one trial request is then
let through, and its success closes the circuit. Each transition is logged. A whole fetch,
retries and the buffered read of the body included, is bounded by `total_timeout`: the
deadline is set once, before the first attempt, and handed to the answer (`Original.deadline`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pixelport.config import OriginConfig
from pixelport.errors import (
    AddressRefused,
    NotFound,
    OriginFailed,
    OriginUnreachable,
    PixelportError,
)
from pixelport.lru import LRU
from pixelport.origins.base import FetchOptions, Origin, Original

log = logging.getLogger("pixelport.origins")
BREAKERS = 4096  # upstreams whose circuit is remembered per origin (a web proxy's hosts)


@dataclass(frozen=True)
class ResilienceSettings:
    """Per-origin keys: retries, retry_backoff, circuit_threshold, circuit_cooldown,
    total_timeout."""

    retries: int = 2
    backoff: float = 0.1
    threshold: int = 5
    cooldown: float = 30.0
    total_timeout: float = 30.0


def read_settings(cfg: OriginConfig) -> ResilienceSettings:
    """Read the resilience keys of an `[[origin]]` (the origin's own module reads the rest)."""
    s = cfg.section
    return ResilienceSettings(
        retries=s.integer("retries", 2, maximum=10),
        backoff=s.number("retry_backoff", 0.1),
        threshold=s.integer("circuit_threshold", 5, minimum=1, maximum=10_000),
        cooldown=s.number("circuit_cooldown", 30.0),
        total_timeout=s.number("total_timeout", 30.0, minimum=0.1),
    )


@dataclass
class Breaker:
    """The circuit of one upstream: consecutive failures, and until when it stays open."""

    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


class ResilientOrigin:
    """Wraps an origin with retries, a total timeout and circuit breakers.

    One breaker per upstream: the origin's own, or, for an origin that reaches hosts the
    request names (a web proxy, through its `breaker_key`), one per host, so that failures
    of hosts a requester chooses cannot close the origin to the others. A request refused
    by the address guard says nothing of the upstream's health and is not counted.
    """

    def __init__(self, inner: Origin, settings: ResilienceSettings) -> None:
        self.inner = inner
        self.name = inner.name
        self.forwards_host: bool = getattr(inner, "forwards_host", False)
        self.settings = settings
        self.breakers: LRU[str, Breaker] = LRU(BREAKERS)
        self.key_of: Callable[[str], str] = getattr(inner, "breaker_key", lambda path: "")

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """Fetch through the breaker, retrying connection failures."""
        key = self.key_of(path)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = Breaker()
            self.breakers.put(key, breaker)
        probe = self._admit(breaker, key)
        total = self.settings.total_timeout
        deadline = asyncio.get_running_loop().time() + total
        try:
            for attempt in range(self.settings.retries + 1):
                try:
                    async with asyncio.timeout_at(deadline):
                        original = await self.inner.fetch(path, options)
                        original.deadline, original.timeout = deadline, total
                except TimeoutError:
                    self._failed(breaker, key)
                    raise OriginFailed(f"origin {self.name!r} timed out: no answer within "
                                       f"{total:g} s (total_timeout)") from None
                except AddressRefused:
                    raise  # the request's choice of address: not the upstream's health
                except OriginUnreachable as exc:
                    if attempt < self.settings.retries and not probe:
                        delay = self.settings.backoff * 2**attempt
                        log.info("origin %s unreachable (%s); retry %d in %.2f s", self.name,
                                 exc.message, attempt + 1, delay)
                        if asyncio.get_running_loop().time() + delay >= deadline:
                            self._failed(breaker, key)
                            raise
                        await asyncio.sleep(delay)
                        continue
                    self._failed(breaker, key)
                    raise
                except OriginFailed:
                    self._failed(breaker, key)
                    raise
                except (NotFound, PixelportError):
                    self._succeeded(breaker, key)  # the origin answered: it is up
                    raise
                self._succeeded(breaker, key)
                return original
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if probe:
                breaker.probing = False

    def _admit(self, breaker: Breaker, key: str) -> bool:
        """Let the request through (True when it is the half-open probe), or fail fast."""
        if breaker.failures < self.settings.threshold:
            return False
        if time.monotonic() < breaker.open_until or breaker.probing:
            raise OriginUnreachable(f"origin {self.name!r}{_upstream(key)} is failing; not "
                                    "contacted until its cool-down ends (circuit open)")
        breaker.probing = True
        log.info("origin %s%s: cool-down over, trying one request", self.name, _upstream(key))
        return True

    def _failed(self, breaker: Breaker, key: str) -> None:
        breaker.failures += 1
        if breaker.failures >= self.settings.threshold:
            breaker.open_until = time.monotonic() + self.settings.cooldown
            log.warning("origin %s%s failed %d times in a row: circuit open for %g s",
                        self.name, _upstream(key), breaker.failures, self.settings.cooldown)

    def _succeeded(self, breaker: Breaker, key: str) -> None:
        if breaker.failures >= self.settings.threshold:
            log.warning("origin %s%s answers again: circuit closed", self.name, _upstream(key))
        breaker.failures = 0

    def state(self) -> tuple[int, int, int]:
        """(the most consecutive failures of any upstream, how many upstreams have their
        circuit open now, how many upstreams are remembered), for the dashboard."""
        breakers = list(self.breakers.items.values())
        moment = time.monotonic()
        opened = sum(1 for b in breakers if b.failures >= self.settings.threshold
                     and moment < b.open_until)
        return max((b.failures for b in breakers), default=0), opened, len(breakers)

    async def aclose(self) -> None:
        """Close the wrapped origin."""
        await self.inner.aclose()


def _upstream(key: str) -> str:
    return f" (host {key})" if key else ""
