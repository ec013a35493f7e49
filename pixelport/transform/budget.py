"""A render's budget: how long it may take, and whether anyone still wants it.

Enforced inside libvips with its kill flag (`vips_image_set_kill`): every image the pipeline
evaluates whole (materialised in memory, encoded, measured) is registered with the render's
budget (`watch`), and once the budget is spent, stopped (no request waits for the result any
more) or the server shuts down, each registered image is killed: libvips ends the evaluation at
its next tile, from whichever thread asks, and the render thread gets an error it turns into
`error()`. Between steps the render also checks the budget itself (`check`).

The time runs from the render's start in its thread, not from its place in the queue. One
watchdog thread per process looks at the running budgets ten times a second; no Python runs
per tile, which would take the GIL from the event loop for every few milliseconds of work.
What libvips cannot interrupt (one tile of a librsvg rendering, an OpenCV call) ends at its
own pace; everything after it does not start.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from pixelport.errors import Busy, LimitExceeded, PixelportError

TICK = 0.1  # seconds between the watchdog's looks
TIME, ABANDONED, SHUTDOWN = "time", "abandoned", "shutdown"

_local = threading.local()
_running: set[Budget] = set()
_lock = threading.Lock()
_watchdog: threading.Thread | None = None


class Budget:
    """One render's time limit and stop switch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.reason: str | None = None  # why it was stopped, once it was
        self.cutoff: float | None = None  # the server shuts down: stopped then
        self.images: list[Any] = []
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[Budget]:
        """The render's span in its thread: the clock runs, and `watch` registers with it."""
        self.deadline = time.monotonic() + self.seconds
        _local.budget = self
        with _lock:
            _running.add(self)
        _ensure_watchdog()
        try:
            yield self
        finally:
            _local.budget = None
            with _lock:
                _running.discard(self)
            with self.lock:
                self.images.clear()

    def watch(self, image: Any) -> Any:
        """Register an image about to be evaluated whole; killed at once if already stopped."""
        with self.lock:
            if self.reason is not None:
                image.set_kill(True)
            else:
                self.images.append(image)
        return image

    def stop(self, reason: str) -> None:
        """Stop the render (any thread): every registered image is killed."""
        with self.lock:
            if self.reason is not None:
                return
            self.reason = reason
            images, self.images = self.images, []
        for image in images:
            image.set_kill(True)

    def end_by(self, moment: float) -> None:
        """The server shuts down: stop at `moment` (monotonic) at the latest."""
        self.cutoff = moment if self.cutoff is None else min(self.cutoff, moment)

    def spent(self) -> bool:
        """Whether the render must stop (and `stop` it if its time is up)."""
        if self.reason is None:
            now = time.monotonic()
            if self.cutoff is not None and now > self.cutoff:
                self.stop(SHUTDOWN)
            elif self.deadline is not None and now > self.deadline:
                self.stop(TIME)
        return self.reason is not None

    def check(self) -> None:
        """Raise `error()` if the render must stop."""
        if self.spent():
            raise self.error()

    def error(self) -> PixelportError:
        """What a stopped render answers."""
        if self.reason == SHUTDOWN:
            return Busy("The server is shutting down", retry_after=1)
        if self.reason == ABANDONED:
            return Busy("Nobody waits for this render any more")
        return LimitExceeded(f"The render took longer than {self.seconds:g} s "
                             "(max_render_seconds)")


def watch(image: Any) -> Any:
    """Register `image` with the budget of the render running in this thread, if any."""
    budget: Budget | None = getattr(_local, "budget", None)
    return budget.watch(image) if budget is not None else image


def watch_view(image: Any) -> Any:
    """A view of an image other renders share (a decoded copy), registered instead of it:
    killing the shared image would fail those renders too."""
    budget: Budget | None = getattr(_local, "budget", None)
    return budget.watch(image.copy()) if budget is not None else image


def check() -> None:
    """Raise if the render running in this thread must stop."""
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is not None:
        budget.check()


def _ensure_watchdog() -> None:
    global _watchdog
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch_all, name="pp-watchdog", daemon=True)
            _watchdog.start()


def _watch_all() -> None:
    while True:
        time.sleep(TICK)
        with _lock:
            budgets = list(_running)
        for budget in budgets:
            budget.spent()
