"""Which worker process this is (`Place`), and whether a process is alive.

A small module of its own so that the layers below the supervisor (the disk caches, the shared
decoded copies, sibling messages) can know their worker without importing `workers.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Place:
    """Which worker this process is, of how many, and their shared run folder."""

    index: int = 0
    count: int = 1
    run_dir: Path | None = None
    restarted: bool = False  # started again after its previous run died

    @property
    def alone(self) -> bool:
        """One worker: nothing to share with."""
        return self.count == 1


ALONE = Place()


def alive(pid: int) -> bool:
    """Whether process `pid` is running (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
