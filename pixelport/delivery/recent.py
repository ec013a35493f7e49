"""Recent delivery errors by `ik-error` code: counts per minute over the last hour.

Fed only where delivery answers an error (`Delivery.send_error`), so a successful request
costs nothing; an error costs a clock read and a dict update. Per worker process; the
overview sums every worker's (pixelport.figures).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MINUTES = 60


class RecentErrors:
    """Per-minute buckets of counts by code; buckets older than `minutes` are dropped."""

    def __init__(self, minutes: int = MINUTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.minutes = minutes
        self.clock = clock
        self.buckets: deque[tuple[int, dict[str, int]]] = deque()  # (minute, counts), oldest first

    def record(self, code: str) -> None:
        """Count one error answered with `code`."""
        minute = int(self.clock() // 60)
        if not self.buckets or self.buckets[-1][0] != minute:
            self.buckets.append((minute, {}))
            self._expire(minute)
        counts = self.buckets[-1][1]
        counts[code] = counts.get(code, 0) + 1

    def counts(self) -> dict[str, int]:
        """Errors by code over the last `minutes` minutes (this one included)."""
        self._expire(int(self.clock() // 60))
        total: dict[str, int] = {}
        for _, counts in self.buckets:
            for code, count in counts.items():
                total[code] = total.get(code, 0) + count
        return total

    def _expire(self, minute: int) -> None:
        while self.buckets and self.buckets[0][0] <= minute - self.minutes:
            self.buckets.popleft()
