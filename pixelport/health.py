"""`/healthz` (this process can still make an image) and `/readyz` (the engines it needs answer).

`/healthz` runs a tiny libvips operation on the render pool's threads, within
HEALTH_SECONDS: a process whose pool is wedged, or whose libvips no longer works, answers 503
and is restarted or taken out of rotation by whatever watches it. It does not touch origins or
the database: a health check that fails with a shared dependency would restart every node at
once.

`/readyz` runs every registered check (`Readiness.add`) concurrently, each within
CHECK_SECONDS, and answers JSON with each one's state. A required check that fails makes it
503 (send no traffic here); an optional one that fails says "degraded" and keeps 200 (the node
still serves: Redis, a shared cache bucket, the library's bucket). Other parts add their own checks:

    app.readiness.add("redis", ping, required=False)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips

from pixelport.transform.pool import WorkPool

HEALTH_SECONDS = 5.0  # a pool busy with renders still takes a job within this
CHECK_SECONDS = 2.0
DISK_MINIMUM = 64 * 2**20  # bytes free on the cache's disk below which it is "degraded"

Check = Callable[[], Awaitable[None]]


def _vips_probe() -> None:
    """Make and read back an 8 by 8 image: libvips loaded, able to allocate and compute."""
    value = pyvips.Image.black(8, 8).invert().avg()
    if value != 255:
        raise RuntimeError(f"libvips computed {value} for 255")


async def healthz(pool: WorkPool) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of `/healthz`."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(HEALTH_SECONDS):
            await loop.run_in_executor(pool.executor, _vips_probe)
    except TimeoutError:
        return 503, {"status": "failed",
                     "error": f"libvips did not answer within {HEALTH_SECONDS:g} s"}
    except Exception as exc:  # a broken pool or libvips: say what, answer 503
        return 503, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return 200, {"status": "ok", "vips_ms": round((time.perf_counter() - started) * 1000, 2)}


@dataclass(frozen=True)
class Named:
    """A readiness check with its name and whether the node needs it to serve."""

    name: str
    check: Check
    required: bool


class Readiness:
    """The registry of named readiness checks."""

    def __init__(self) -> None:
        self.checks: dict[str, Named] = {}

    def add(self, name: str, check: Check, required: bool = True) -> None:
        """Register `check` (raises when not ready) under `name`; a later one replaces it."""
        self.checks[name] = Named(name, check, required)

    async def run(self) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of `/readyz`."""
        names = list(self.checks.values())
        results = await asyncio.gather(*(_run(named) for named in names))
        states = dict(zip((named.name for named in names), results, strict=True))
        failed = [n for n in names if states[n.name]["state"] != "ok"]
        if any(n.required for n in failed):
            return 503, {"status": "failed", "checks": states}
        return 200, {"status": "degraded" if failed else "ok", "checks": states}


async def _run(named: Named) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await named.check()
    except TimeoutError:
        state: dict[str, Any] = {"state": "failed" if named.required else "degraded",
                                 "error": f"no answer within {CHECK_SECONDS:g} s"}
    except Exception as exc:  # any failure of the engine is the answer, not a crash
        state = {"state": "failed" if named.required else "degraded",
                 "error": f"{type(exc).__name__}: {exc}"[:300]}
    else:
        state = {"state": "ok"}
    state["required"] = named.required
    state["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return state


def database_check(db: Any) -> Check:
    """`SELECT 1` on a library's database (a `pixelport.state.db.Database`)."""
    from sqlalchemy import text

    async def check() -> None:
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def disk_check(folder: Path) -> Check:
    """The result cache's folder can still be written (and its disk is not full)."""

    def probe() -> None:
        stats = os.statvfs(folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{folder} is not writable")
        if stats.f_bavail * stats.f_frsize < DISK_MINIMUM:
            raise OSError(f"{folder}: less than {DISK_MINIMUM // 2**20} MiB free")

    async def check() -> None:
        await asyncio.to_thread(probe)  # a stat of a hung network disk must not block

    return check


def body(payload: dict[str, Any]) -> bytes:
    """A health answer's JSON body."""
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"
