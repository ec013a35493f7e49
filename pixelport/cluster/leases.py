"""Cross-node coalescing: identical work is claimed with a lease in Redis, so one node makes
it while the others wait for its result (from the shared cache tier), and take the work over
if the lease's holder dies.

A lease is `SET key token NX PX ttl`, renewed while the work runs (every third of its time to
live) and deleted when it ends, both only by its holder (compared by token in a Lua script,
so a lease that expired and was taken by another node is never renewed or deleted by the one
that lost it). A holder killed with `kill -9` stops renewing: its lease expires within `ttl`
and a waiting node claims it. With Redis unreachable, each node makes the work itself (the
per-node coalescing still holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger("pixelport.cluster")
T = TypeVar("T")
PREFIX = "pixelport:lease:"
POLL_SECONDS = 0.05  # how often a waiting node looks for the holder's result
RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"""
RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) else return 0 end"""


class Leases:
    """Leases on work keys, shared by every node through one Redis."""

    def __init__(self, redis: Any, ttl: float = 10.0) -> None:
        """`redis`: a redis.asyncio client; `ttl`: how long a dead holder blocks the work."""
        self.redis = redis
        self.ttl_ms = int(ttl * 1000)
        self.made = self.waited = self.taken_over = 0  # counts, for tests and metrics

    async def run(self, key: str, make: Callable[[], Awaitable[T]],
                  ready: Callable[[], Awaitable[T | None]], poll: float = POLL_SECONDS,
                  look_while_held: bool = True) -> T:
        """`make()` here if no other node holds `key`'s lease; else what `ready()` finds
        once the holder is done, or `make()` after all if the holder died first. A waiting
        node asks Redis every `poll` seconds whether the lease is held; `look_while_held`
        False: `ready()` only once it is not (a holder that writes its result before it lets
        go, and works for long: a video's `ready()` is a bucket GET that would otherwise be
        asked every `poll` for minutes)."""
        name = PREFIX + key
        token = secrets.token_hex(8)
        waited = False
        while True:
            try:
                won = await self.redis.set(name, token, nx=True, px=self.ttl_ms)
            except Exception as exc:  # Redis down: this node makes it (coalesced per node)
                log.debug("cluster lease %s: %s", key, exc)
                return await make()
            if won:
                if waited:
                    self.taken_over += 1
                return await self._hold(name, token, make)
            waited = True
            found = await self._wait(name, ready, poll, look_while_held)
            if found is not None:
                self.waited += 1
                return found
            # The lease is gone and no result came: its holder died (or failed): claim it.

    async def _hold(self, name: str, token: str, make: Callable[[], Awaitable[T]]) -> T:
        renewing = asyncio.create_task(self._renew(name, token))
        try:
            self.made += 1
            return await make()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(Exception):
                await self.redis.eval(RELEASE, 1, name, token)

    async def _renew(self, name: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.redis.eval(RENEW, 1, name, token, self.ttl_ms)
            except Exception as exc:
                log.debug("cluster lease %s not renewed: %s", name, exc)

    async def _wait(self, name: str, ready: Callable[[], Awaitable[T | None]], poll: float,
                    look: bool) -> T | None:
        """The holder's result once there; None when the lease ends without one."""
        while True:
            if look:
                found = await ready()
                if found is not None:
                    return found
            try:
                held = await self.redis.exists(name)
            except Exception:
                return None  # Redis gone: make it here
            if not held:
                return await ready()  # released just now (result written), or expired
            await asyncio.sleep(poll)
