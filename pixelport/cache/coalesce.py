"""One piece of work per key at a time, shared by everyone who asks meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Identical concurrent requests await one task.

    The task runs detached from any one request (shielded), so a client that hangs up does
    not cancel the work the others are waiting for.
    """

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[T]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of `work` for `key`; the flag says whether this caller shared it."""
        task = self.running.get(key)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(work())
            self.running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), shared

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self.running.get(key) is task:
            del self.running[key]
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be left to await it
