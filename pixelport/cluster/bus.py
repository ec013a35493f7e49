"""Purges, library changes and config changes, from one node to every other, through a Redis
stream.

Each worker process of each node reads the stream (`XREAD BLOCK` from the last entry it saw)
and carries out what another node's worker published, exactly as it carries out a message
from a worker of its own node (`Siblings`); its own node's entries it skips, since its
siblings were told directly. A stream rather than pub/sub: a worker that lost its connection
for a moment reads on from where it was, so nothing sent meanwhile is lost (the stream keeps
its last `MAX_ENTRIES`); a worker restarted reads on from the last entry it carried out (kept
beside the disk cache it purges). Publishing never waits for Redis: entries queue in an
outbox that a background task sends, again and again while Redis is down (`degraded`), until
delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("pixelport.cluster")
STREAM = "pixelport:events"
MAX_ENTRIES = 100_000  # about a day of purges at a busy site; older ones are trimmed
BLOCK_MS = 1000  # a read waits this long for an entry, then asks again
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)  # between attempts while Redis is down
MAX_OUTBOX = 100_000  # past it, the oldest unsent entries are dropped (and logged)
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Bus:
    """This worker's link to the other nodes."""

    def __init__(self, url: str, node: str, resume: Path | None = None) -> None:
        """`node`: this node's id, shared by its workers (their own entries are skipped).
        `resume`: where this worker keeps the id of the last entry it carried out, beside the
        disk cache it purges, so that after a restart it carries out what it missed."""
        from redis.asyncio import Redis

        self.url = url
        self.node = node
        self.resume = resume
        # Reads block up to BLOCK_MS, so the socket timeout must be longer; a dead server is
        # noticed within it.
        # Typed Any: redis-py's stubs type replies as unions of every RESP type.
        self.redis: Any = Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 2,
                                    socket_connect_timeout=2, decode_responses=False)
        self.outbox: deque[bytes] = deque()
        self.pending = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.reading_ok = self.sending_ok = True
        self.delivered = 0  # entries of other nodes carried out (for tests and metrics)

    @property
    def degraded(self) -> bool:
        """Whether Redis is unreachable now (or entries wait to be sent)."""
        return not (self.reading_ok and self.sending_ok) or bool(self.outbox)

    async def check(self) -> None:
        """`/readyz`: raise while Redis is unreachable or changes wait to be sent."""
        if self.degraded:
            raise RuntimeError(f"Redis unreachable; {len(self.outbox)} change(s) waiting")
        await self.redis.ping()

    async def start(self, handler: Handler, missed: Handler | None = None) -> None:
        """Read other nodes' entries into `handler`, and send this worker's outbox. Restarted,
        first carry out what it missed with `missed` (this node's every worker: a worker
        that starts sooner must not serve a result its sibling's disk still holds)."""
        resumed = self._resumed()
        start = resumed or await self._last_id()
        if resumed is not None:  # restarted: what it missed, before it serves a request
            start = await self._catch_up(missed or handler, resumed)
        if start != b"$":
            self._keep(start)  # a worker that reads nothing before it stops resumes here
        self.tasks = [asyncio.create_task(self._read(handler, start)),
                      asyncio.create_task(self._send())]

    def publish(self, message: dict[str, Any]) -> None:
        """Send `message` to every other node, in the background, until delivered."""
        if len(self.outbox) >= MAX_OUTBOX:
            self.outbox.popleft()
            log.error("cluster outbox full: the oldest unsent change was dropped")
        self.outbox.append(json.dumps({"node": self.node, "message": message}).encode())
        self.pending.set()

    async def _catch_up(self, handler: Handler, last: bytes) -> bytes:
        """Carry out every entry after `last` (none if Redis is down); the newest one's id."""
        try:
            while True:
                found = await self.redis.xread({STREAM: last}, count=500)
                entries = found[0][1] if found else []
                if not entries:
                    return last
                for entry_id, fields in entries:
                    last = entry_id
                    await self._carry_out(handler, fields.get(b"m", b""))
        except Exception as exc:
            log.warning("cluster: catching up at start-up: %s", exc)
            return last

    def _resumed(self) -> bytes | None:
        """The last entry this worker carried out before it stopped, if it kept one."""
        if self.resume is None:
            return None
        try:
            kept = self.resume.read_bytes().strip()
        except OSError:
            return None
        return kept if re.fullmatch(rb"\d+-\d+", kept) else None

    def _keep(self, entry_id: bytes) -> None:
        """Remember the last entry carried out (written whole, then renamed into place)."""
        if self.resume is None:
            return
        try:
            self.resume.parent.mkdir(parents=True, exist_ok=True)
            partial = self.resume.with_suffix(".tmp")
            partial.write_bytes(entry_id)
            os.replace(partial, self.resume)
        except OSError as exc:
            log.warning("cluster: cannot keep the last entry's id: %s", exc)

    async def _last_id(self) -> bytes:
        """The stream's newest entry now: reading starts after it (a new worker has nothing
        of the past to carry out; its caches start empty or were purged with its node)."""
        try:
            entries = await self.redis.xrevrange(STREAM, count=1)
        except Exception as exc:  # Redis down at start: read from now on, once it is back
            log.warning("cluster: Redis at start-up: %s", exc)
            self.reading_ok = False
            return b"$"
        return entries[0][0] if entries else b"0-0"

    async def _send(self) -> None:
        attempt = 0
        while True:
            if not self.outbox:
                self.pending.clear()
                await self.pending.wait()
            data = self.outbox[0]
            try:
                await self.redis.xadd(STREAM, {b"m": data}, maxlen=MAX_ENTRIES,
                                      approximate=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.sending_ok:
                    log.error("cluster: cannot publish to Redis (%s); retrying until it "
                              "answers", exc)
                self.sending_ok = False
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                continue
            self.outbox.popleft()
            if not self.sending_ok:
                log.info("cluster: Redis answers again; unsent changes delivered")
            self.sending_ok, attempt = True, 0

    async def _read(self, handler: Handler, last: bytes) -> None:
        attempt = 0
        while True:
            try:
                if last == b"$":  # started while Redis was down: from its newest entry
                    last = await self._last_id_or_raise()
                found = await self.redis.xread({STREAM: last}, count=500, block=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.reading_ok:
                    log.error("cluster: cannot read from Redis (%s); retrying", exc)
                self.reading_ok = False
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                continue
            self.reading_ok, attempt = True, 0
            for _, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id
                    await self._carry_out(handler, fields.get(b"m", b""))
                if entries:
                    self._keep(last)

    async def _last_id_or_raise(self) -> bytes:
        entries = await self.redis.xrevrange(STREAM, count=1)
        return entries[0][0] if entries else b"0-0"

    async def _carry_out(self, handler: Handler, data: bytes) -> None:
        try:
            envelope = json.loads(data)
            if envelope.get("node") == self.node:
                return
            await handler(envelope["message"])
            self.delivered += 1
        except Exception:
            log.exception("cluster: a change from another node failed here")

    async def close(self) -> None:
        """Stop reading and sending (unsent entries are lost with the process)."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.redis.aclose()
