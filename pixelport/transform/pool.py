"""The bounded pool that runs image work off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pyvips

from pixelport.errors import Busy
from pixelport.threadnames import namer

T = TypeVar("T")


def configure_vips() -> None:
    """One libvips thread per job (parallelism comes from the pool) and no operation cache."""
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    _quiet_vips_log()


_VIPS_LOG_LEVELS = ("LEVEL_WARNING", "LEVEL_CRITICAL", "LEVEL_ERROR", "FLAG_FATAL",
                    "FLAG_RECURSION")


def _quiet_vips_log() -> None:
    """Route only libvips warnings and errors to Python logging, not its info messages.

    pyvips hands every libvips log message, info included (about a dozen per thumbnail),
    to a Python callback, so each worker thread takes the GIL that often per image and
    waits for the event loop to release it (up to the 5 ms switch interval each time).
    GLib's default handler drops info messages without touching Python.
    """
    flags = getattr(pyvips, "GLogLevelFlags", None)
    callback = getattr(pyvips, "_log_handler_cb", None)
    if flags is None or callback is None or not getattr(pyvips, "_log_handler_id", None):
        return  # not the pyvips layout this was written for: leave logging as it is
    mask = 0
    for name in _VIPS_LOG_LEVELS:
        mask |= getattr(flags, name)
    pyvips.glib_lib.g_log_remove_handler(b"VIPS", pyvips._log_handler_id)
    pyvips._log_handler_id = pyvips.glib_lib.g_log_set_handler(b"VIPS", mask, callback,
                                                               pyvips.ffi.NULL)


M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(count: int) -> None:
    """Cap glibc's malloc arenas (default: 8 per core) unless MALLOC_ARENA_MAX is set.

    Every thread that touches image buffers (pool workers, libvips' own workers) otherwise
    gets an arena of its own, and freed multi-megabyte decode buffers stay mapped in each;
    `make bench` measured peak RSS a quarter lower with 2 arenas at the same throughput.
    Not glibc (musl, macOS): nothing to do.
    """
    if sys.platform != "linux" or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(M_ARENA_MAX, max(1, count))


def default_threads() -> int:
    """One worker per core this process may run on, plus one.

    A job spends part of its time outside libvips (Python between operations, waiting for
    the GIL while the event loop runs), so one thread per core leaves cores idle: `make bench`
    measured +5-10 % throughput on every cold scenario with the extra thread.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


class WorkPool:
    """`threads` workers plus a queue of `queue` waiting jobs; past that, Busy (503) at once.

    An admitted job downloads its original in a download slot, then renders in a render
    slot: a slow download never holds a render slot, so originals dripping in from slow
    origins cannot keep the workers from the jobs whose bytes are in. Originals in memory
    are bounded by the two kinds of slot together (the job keeps its download slot until it
    has a render slot), not by the queue.
    """

    def __init__(self, threads: int = 0, queue: int = 64) -> None:
        configure_vips()
        self.threads = threads or default_threads()
        limit_malloc_arenas(max(2, self.threads))
        self.capacity = self.threads + queue
        self.admitted = 0
        # Each slot may hold an original (up to max_input_bytes) until it has a render slot:
        # eight at least, so a few slow origins leave room; `make bench` measured peak RSS on
        # cold-jpeg-c64 +46 MB with four per thread (0.935 of thumbor's, from 0.674).
        self.downloads = asyncio.Semaphore(max(8, self.threads * 2))
        # Two renders per worker: one running, one with its original at hand for the next.
        self.renders = asyncio.Semaphore(self.threads * 2)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="pixelport-work",
                                           initializer=namer("pp-work"))

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place for one job (fetch and transform); Busy at once when none is left.

        Jobs run detached from their requests (see cache.coalesce), so a place is held until
        the work really ends, or is abandoned (cancelled).
        """
        if self.admitted >= self.capacity:
            raise Busy(f"All {self.threads} workers are busy and {self.capacity - self.threads} "
                       "jobs are waiting", retry_after=1)
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def stages(self) -> AsyncIterator[Stages]:
        """A job's download slot, then (`Stages.render`) its render slot."""
        stages = Stages(self)
        await self.downloads.acquire()
        stages.downloading = True
        try:
            yield stages
        finally:
            stages.release()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on a worker thread (admission is `admit`'s job)."""
        return await asyncio.wrap_future(self.executor.submit(fn, *args))

    def shutdown(self) -> None:
        """Wait for running jobs and stop the workers."""
        self.executor.shutdown(wait=True, cancel_futures=True)


class Stages:
    """One job's slots: download first, render once the bytes are in (`WorkPool.stages`)."""

    def __init__(self, pool: WorkPool) -> None:
        self.pool = pool
        self.downloading = False
        self.rendering = False

    async def render(self) -> None:
        """Trade the download slot for a render slot (kept until the job ends)."""
        await self.pool.renders.acquire()
        self.rendering = True
        if self.downloading:
            self.downloading = False
            self.pool.downloads.release()

    def release(self) -> None:
        """Give back whatever slot is held."""
        if self.downloading:
            self.downloading = False
            self.pool.downloads.release()
        if self.rendering:
            self.rendering = False
            self.pool.renders.release()

