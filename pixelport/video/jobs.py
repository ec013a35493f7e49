"""A bounded queue of video jobs, each one run once for every request that wants it.

Jobs run detached from requests: a request waits for its job up to `[video] wait` seconds and
goes (302 to the original, or 202), and the job goes on, so the next request finds the result.
At most `concurrent_jobs` run at once in a worker, `queue_length` more wait; past that, a new
job is refused at once (503 EBUSY, Retry-After). Every job holds the claim on its key
(claims.py), so two workers never make the same result; a job that finds the key claimed waits
for it, then finds the other worker's result in the cache (across nodes, the producer adds a
Redis lease: produce/video_nodes.py). A job's failure is remembered for a
while and answered as it is: a broken file is not decoded again on every request, and a
request that came back after a 302 or 202 learns why its result never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from pixelport.errors import Busy, LimitExceeded, PixelportError, Unexpected
from pixelport.lru import LRU
from pixelport.video.claims import Claims

log = logging.getLogger("pixelport.video")
T = TypeVar("T")
FAILURE_SECONDS = 60.0  # how long a job's failure is answered without trying again


class JobQueue(Generic[T]):
    """Background jobs by key (see the module's docstring)."""

    def __init__(self, claims: Claims, concurrent: int, queue: int, timeout: float) -> None:
        self.claims = claims
        self.slots = asyncio.Semaphore(concurrent)
        self.capacity = concurrent + queue
        self.concurrent = concurrent
        self.timeout = timeout
        self.running: dict[str, asyncio.Task[T]] = {}
        self.failed: LRU[str, tuple[PixelportError, float]] = LRU(1024)
        self.stopping = False

    def submit(self, key: str, work: Callable[[bool], Awaitable[T]]) -> asyncio.Task[T]:
        """The job for `key`: the one under way, else a new one running `work(waited)`, where
        `waited` says another process held the key first (look in the cache before working)."""
        task = self.running.get(key)
        if task is not None:
            return task
        failure = self.failed.get(key)
        if failure is not None and time.monotonic() - failure[1] < FAILURE_SECONDS:
            raise failure[0]
        if len(self.running) >= self.capacity or self.stopping:
            raise Busy(f"{self.concurrent} video job(s) are running and "
                       f"{self.capacity - self.concurrent} are waiting", retry_after=5)
        task = asyncio.ensure_future(self._run(key, work))
        self.running[key] = task
        task.add_done_callback(lambda done: self._done(key, done))
        return task

    async def _run(self, key: str, work: Callable[[bool], Awaitable[T]]) -> T:
        async with self.slots, self.claims.claim(key) as waited:
            try:
                async with asyncio.timeout(self.timeout):
                    return await work(waited)
            except TimeoutError:
                raise LimitExceeded(f"The video job took longer than {self.timeout:g} seconds "
                                    "(job_timeout)") from None

    def _done(self, key: str, task: asyncio.Task[T]) -> None:
        if self.running.get(key) is task:
            del self.running[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, Busy):
            return  # an overloaded moment is not the file's fault: the next request tries
        if not isinstance(error, PixelportError):
            log.error("video job %s failed", key, exc_info=error)
            error = Unexpected("The video job failed")
        self.failed.put(key, (error, time.monotonic()))

    async def stop(self) -> None:
        """Cancel every job (at shutdown): their ffmpeg processes are killed."""
        self.stopping = True
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
