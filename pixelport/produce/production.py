"""One task per result key, made by the first producer that takes the job."""

from __future__ import annotations

from pixelport.cache.coalesce import Coalescer
from pixelport.cache.entry import Entry
from pixelport.produce.job import Job, Producer


class Production:
    """Makes results for the delivery handler; identical concurrent jobs share one task, which
    is cancelled once every request waiting for it has gone (its render is then stopped)."""

    def __init__(self, producers: list[Producer]) -> None:
        self.producers = producers
        self.work: Coalescer[Entry | None] = Coalescer(abandon=True)

    async def make(self, job: Job) -> Entry | None:
        """The result of `job` (see `Producer.make`), made once for all who ask meanwhile."""
        producer = next(p for p in self.producers if p.takes(job))
        entry, _ = await self.work.run(job.key, lambda: producer.make(job))
        return entry
