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
from dataclasses import dataclass

from pixelport.config import OriginConfig
from pixelport.errors import NotFound, OriginFailed, OriginUnreachable, PixelportError
from pixelport.origins.base import FetchOptions, Origin, Original

log = logging.getLogger("pixelport.origins")


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


class ResilientOrigin:
    """Wraps an origin with retries, a total timeout and a circuit breaker."""

    def __init__(self, inner: Origin, settings: ResilienceSettings) -> None:
        self.inner = inner
        self.name = inner.name
        self.forwards_host: bool = getattr(inner, "forwards_host", False)
        self.settings = settings
        self.failures = 0
        self.open_until = 0.0
        self.probing = False

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        """Fetch through the breaker, retrying connection failures."""
        probe = self._admit()
        total = self.settings.total_timeout
        deadline = asyncio.get_running_loop().time() + total
        try:
            for attempt in range(self.settings.retries + 1):
                try:
                    async with asyncio.timeout_at(deadline):
                        original = await self.inner.fetch(path, options)
                        original.deadline, original.timeout = deadline, total
                except TimeoutError:
                    self._failed()
                    raise OriginFailed(f"origin {self.name!r} timed out: no answer within "
                                       f"{total:g} s (total_timeout)") from None
                except OriginUnreachable as exc:
                    if attempt < self.settings.retries and not probe:
                        delay = self.settings.backoff * 2**attempt
                        log.info("origin %s unreachable (%s); retry %d in %.2f s", self.name,
                                 exc.message, attempt + 1, delay)
                        if asyncio.get_running_loop().time() + delay >= deadline:
                            self._failed()
                            raise
                        await asyncio.sleep(delay)
                        continue
                    self._failed()
                    raise
                except OriginFailed:
                    self._failed()
                    raise
                except (NotFound, PixelportError):
                    self._succeeded()  # the origin answered: it is up
                    raise
                self._succeeded()
                return original
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if probe:
                self.probing = False

    def _admit(self) -> bool:
        """Let the request through (True when it is the half-open probe), or fail fast."""
        if self.failures < self.settings.threshold:
            return False
        if time.monotonic() < self.open_until or self.probing:
            raise OriginUnreachable(f"origin {self.name!r} is failing; not contacted until "
                                    "its cool-down ends (circuit open)")
        self.probing = True
        log.info("origin %s: cool-down over, trying one request", self.name)
        return True

    def _failed(self) -> None:
        self.failures += 1
        if self.failures >= self.settings.threshold:
            self.open_until = time.monotonic() + self.settings.cooldown
            log.warning("origin %s failed %d times in a row: circuit open for %g s",
                        self.name, self.failures, self.settings.cooldown)

    def _succeeded(self) -> None:
        if self.failures >= self.settings.threshold:
            log.warning("origin %s answers again: circuit closed", self.name)
        self.failures = 0

    async def aclose(self) -> None:
        """Close the wrapped origin."""
        await self.inner.aclose()
