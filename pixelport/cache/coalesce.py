"""One piece of work per key at a time, shared by everyone who asks meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Identical concurrent requests await one task.

    The task runs detached from any one request (shielded), so a client that hangs up does
    not cancel the work the others are waiting for. With `abandon`, a task whose every waiter
    has been cancelled is cancelled too: nobody wants its result any more.
    """

    def __init__(self, abandon: bool = False) -> None:
        self.running: dict[str, asyncio.Task[T]] = {}
        self.abandon = abandon
        self.waiting: dict[str, int] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of `work` for `key`; the flag says whether this caller shared it."""
        task = self.running.get(key)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(work())
            self.running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        if not self.abandon:
            return await asyncio.shield(task), shared
        self.waiting[key] = self.waiting.get(key, 0) + 1
        try:
            return await asyncio.shield(task), shared
        finally:
            left = self.waiting[key] - 1
            if left:
                self.waiting[key] = left
            else:
                del self.waiting[key]
                if not task.done():
                    task.cancel()  # every waiter has gone

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self.running.get(key) is task:
            del self.running[key]
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be left to await it
