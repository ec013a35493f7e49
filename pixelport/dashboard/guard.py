"""Failed dashboard log-ins, slowed down per client: each failure doubles the wait before the
next attempt (0.5 s, 1 s, 2 s … at most 8 s); a success clears it. Per worker process."""

from __future__ import annotations

import asyncio

from pixelport.lru import LRU

FIRST_DELAY = 0.5
MAX_DELAY = 8.0


class LoginThrottle:
    """Failures by client address (the 4096 most recent clients)."""

    def __init__(self) -> None:
        self.failures: LRU[str, int] = LRU(4096)

    def delay(self, client: str) -> float:
        """Seconds the next attempt from `client` waits."""
        count = self.failures.get(client) or 0
        return 0.0 if count == 0 else min(MAX_DELAY, FIRST_DELAY * 2 ** (count - 1))

    async def wait(self, client: str) -> None:
        """Wait as long as `client`'s failures say."""
        seconds = self.delay(client)
        if seconds:
            await asyncio.sleep(seconds)

    def failed(self, client: str) -> None:
        """Count a failure."""
        self.failures.put(client, (self.failures.get(client) or 0) + 1)

    def succeeded(self, client: str) -> None:
        """Forget the failures."""
        self.failures.pop(client)
