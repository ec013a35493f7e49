"""Prometheus metrics (`GET /metrics`), summed over every worker process.

With several workers, prometheus-client's multiprocess mode keeps each process's values in
small memory-mapped files under PROMETHEUS_MULTIPROC_DIR (the supervisor's run folder, made
empty at each start: `prepare_multiprocess`), and a scrape answered by any worker reads them
all. One worker keeps its values in memory.

What runs per request: nothing on a hot answer (`delivery/hot.py`): `HotAnswers.served`, a
plain int it kept already, is folded into the counters by `Tally` once a second and at each
scrape, with the queue gauges. A request answered through ASGI adds to a few plain ints
(`answered`, `looked_up`), folded the same way. Only what is slow anyway (a miss's download
and transformation times, errors, origin failures, purges) writes to the metrics at once.
docs/operations.md lists every metric.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as _values

CONTENT_TYPE = CONTENT_TYPE_LATEST
FOLD_SECONDS = 1.0  # how stale hot answers and queue depths may be in a scrape of another worker
# Route classes (`route_class`); anything else is delivery.
ROUTES = ("delivery", "api", "dashboard", "health")

# Registered here for a single process; with several, scrapes read the files instead.
REGISTRY = CollectorRegistry(auto_describe=False)

# Delivery answers take from ~50 µs (memory hit) to seconds (a large render, a video).
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0, 30.0)
_WORK = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

REQUESTS = Counter("pixelport_requests", "HTTP requests answered, by route class and status",
                   ("route", "status"), registry=REGISTRY)
DURATION = Histogram("pixelport_request_duration_seconds",
                     "Time from the request's head to its last byte sent (ASGI path; hot "
                     "answers are not timed)", ("route",), buckets=_LATENCY, registry=REGISTRY)
DOWNLOAD = Histogram("pixelport_download_seconds",
                     "Server-Timing `download` of delivery answers: fetching the original",
                     buckets=_WORK, registry=REGISTRY)
TRANSFORMATION = Histogram("pixelport_transformation_seconds",
                           "Server-Timing `transformation` of delivery answers: rendering",
                           buckets=_WORK, registry=REGISTRY)
CACHE = Counter("pixelport_cache_lookups", "Result cache lookups by tier (hot, memory, disk, "
                "shared) "
                "and result (hit, miss)", ("tier", "result"), registry=REGISTRY)
ORIGIN_FAILURES = Counter("pixelport_origin_failures",
                          "Origin fetches that failed (not-found excluded), by origin and "
                          "ik-error code", ("origin", "code"), registry=REGISTRY)
ERRORS = Counter("pixelport_errors", "Delivery answers with an ik-error, by its code",
                 ("code",), registry=REGISTRY)
PURGES = Counter("pixelport_purges", "Purges this node applied, by kind (url: the purge API; "
                 "library: a library change)", ("kind",), registry=REGISTRY)
VIDEO_JOBS = Counter("pixelport_video_jobs", "Video results this node made or copied, by kind "
                     "(transcode, thumbnail, stream) and outcome (ran: ffmpeg, or a thumbnail's "
                     "frame decode, ran here; shared: read from the shared tier instead)",
                     ("kind", "outcome"), registry=REGISTRY)
QUEUE = Gauge("pixelport_queue_jobs", "Jobs admitted and not finished (running or waiting), "
              "by queue (render, video)", ("queue",), multiprocess_mode="livesum",
              registry=REGISTRY)
CAPACITY = Gauge("pixelport_queue_capacity", "Jobs a queue admits before answering 503 EBUSY",
                 ("queue",), multiprocess_mode="livesum", registry=REGISTRY)
WORKERS = Gauge("pixelport_worker_processes", "Worker processes serving",
                multiprocess_mode="livesum", registry=REGISTRY)

# Children made once: `labels()` hashes and locks on every call.
_DELIVERED = REQUESTS.labels("delivery", "200")
_TIMERS = {route: DURATION.labels(route) for route in ROUTES}
_COUNTERS: dict[tuple[str, int], Counter] = {}
_TIERS = (("hot", "hit"), ("hot", "miss"), ("memory", "hit"), ("memory", "miss"),
          ("disk", "hit"), ("disk", "miss"), ("shared", "hit"), ("shared", "miss"))
_LOOKUPS = [CACHE.labels(tier, result) for tier, result in _TIERS]
_HOT_HIT = _LOOKUPS[0]

# What requests answered through ASGI add, kept in plain ints and folded into the metrics by
# `Tally.fold`: an increment of a multiprocess metric takes a lock and writes its file (about
# 5 µs a request for these three), an int in a dict a tenth of that. All of it is touched on
# the event loop's thread alone.
_requests: dict[tuple[str, int], int] = {}
_latency = {route: [0] * (len(_LATENCY) + 1) for route in ROUTES}  # per bucket, then +Inf
_latency_sum = dict.fromkeys(ROUTES, 0.0)
_lookups = [0] * len(_TIERS)


def route_class(path: str) -> str:
    """The route class of a request path, for `pixelport_requests_total`."""
    if path.startswith(("/v1/", "/api/")) or path in ("/v1", "/api"):
        return "api"
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return "dashboard"
    if path in ("/healthz", "/readyz", "/metrics"):
        return "health"
    return "delivery"


def answered(route: str, status: int, seconds: float) -> None:
    """One request answered through ASGI."""
    key = (route, status)
    _requests[key] = _requests.get(key, 0) + 1
    # A bucket counts what is at most its bound (`le`): the first bound not below.
    _latency[route][bisect_left(_LATENCY, seconds)] += 1
    _latency_sum[route] += seconds


def looked_up(found: str | None, disk: bool, hot: bool) -> None:
    """A delivery request's cache lookup: `found` is the tier that had it ("memory",
    "disk"), None when none did; `disk`: there is a disk tier; `hot`: hot answers are on
    (so this request is one they did not answer)."""
    if hot:
        _lookups[1] += 1
    if found == "memory":
        _lookups[2] += 1
        return
    _lookups[3] += 1
    if found == "disk":
        _lookups[4] += 1
    elif disk:
        _lookups[5] += 1


def looked_up_shared(hit: bool) -> None:
    """A lookup in the shared tier (`[cache.shared]`) of a result the local tiers missed."""
    _lookups[6 if hit else 7] += 1


def _fold_requests() -> None:
    """Move the plain ints of `answered` and `looked_up` into the metrics."""
    for (route, status), count in _requests.items():
        counter = _COUNTERS.get((route, status))
        if counter is None:
            counter = _COUNTERS[route, status] = REQUESTS.labels(route, str(status))
        counter.inc(count)
    _requests.clear()
    for route, counts in _latency.items():
        if not any(counts):
            continue
        timer = _TIMERS[route]
        # Histogram.observe adds one value; these are many at once, into the same values
        # it writes (its buckets, the +Inf one last, and its sum).
        for slot, count in enumerate(counts):
            if count:
                timer._buckets[slot].inc(count)
                counts[slot] = 0
        timer._sum.inc(_latency_sum[route])
        _latency_sum[route] = 0.0
    for slot, count in enumerate(_lookups):
        if count:
            _LOOKUPS[slot].inc(count)
            _lookups[slot] = 0


def made(download_ms: float, transform_ms: float) -> None:
    """The download and transformation times a delivery answer reports (Server-Timing)."""
    DOWNLOAD.observe(download_ms / 1000)
    if transform_ms:
        TRANSFORMATION.observe(transform_ms / 1000)


def video_job(kind: str, outcome: str) -> None:
    """A video result made here ("ran") or read from the shared tier ("shared")."""
    VIDEO_JOBS.labels(kind, outcome).inc()


def origin_failed(origin: str, code: str) -> None:
    """An origin's fetch failed with this ik-error code."""
    ORIGIN_FAILURES.labels(origin, code).inc()


def error_answered(code: str) -> None:
    """A delivery answer carried this ik-error code."""
    ERRORS.labels(code).inc()


def purged(kind: str) -> None:
    """A purge was applied ("url" or "library")."""
    PURGES.labels(kind).inc()


class Tally:
    """Folds what this process counts in plain ints (hot answers) and its queue depths into
    the metrics: at each scrape, and once a second for scrapes answered by another worker."""

    def __init__(self, served: Callable[[], int],
                 queues: dict[str, tuple[Callable[[], int], int]]) -> None:
        """`served`: hot answers given so far; `queues`: by name, (jobs now, capacity)."""
        self.served = served
        self.queues = queues
        self.folded = 0
        self.task: asyncio.Task[None] | None = None
        WORKERS.set(1)
        for name, (_, capacity) in queues.items():
            CAPACITY.labels(name).set(capacity)

    def fold(self) -> None:
        """Bring the metrics up to date with this process's ints."""
        served = self.served()
        if served != self.folded:
            _DELIVERED.inc(served - self.folded)
            _HOT_HIT.inc(served - self.folded)
            self.folded = served
        _fold_requests()
        for name, (jobs, _) in self.queues.items():
            QUEUE.labels(name).set(jobs())

    def start(self) -> None:
        """Fold once a second from now (in the running event loop)."""
        if self.task is None:
            self.task = asyncio.create_task(self._every_second())

    async def stop(self) -> None:
        """Stop folding, after a last fold."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        self.fold()

    async def _every_second(self) -> None:
        while True:
            await asyncio.sleep(FOLD_SECONDS)
            self.fold()

    def scrape(self) -> bytes:
        """The text format answer for every worker (this one folded first)."""
        self.fold()
        # The mode prometheus-client chose at import (pixelport.metricsdir), not the
        # environment now.
        if _values.ValueClass is _values.MutexValue:
            return generate_latest(REGISTRY)
        registry = CollectorRegistry(auto_describe=False)
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
