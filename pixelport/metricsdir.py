"""Where worker processes keep their metrics' values (prometheus-client's multiprocess mode).

Apart from `pixelport.metrics` so that the supervisor, which records nothing, can set the
folder up without importing prometheus-client (the variable must be set before a worker
imports it: its values are made memory-mapped or not at import).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    """Whether this process writes its values for other processes to read."""
    return ENVIRONMENT in os.environ or ENVIRONMENT.lower() in os.environ


def prepare_multiprocess(run_dir: Path | None) -> None:
    """Before any worker starts: their metric files go to an empty folder of the run folder
    (None, one process: in memory, whatever the environment says)."""
    os.environ.pop(ENVIRONMENT.lower(), None)
    if run_dir is None:
        os.environ.pop(ENVIRONMENT, None)
        return
    folder = run_dir / "metrics"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[ENVIRONMENT] = str(folder)


def process_dead(pid: int) -> None:
    """A worker exited: its gauges leave the sums (its counters stay: they are totals)."""
    folder = os.environ.get(ENVIRONMENT)
    if folder:
        for path in Path(folder).glob(f"gauge_live*_{pid}.db"):
            with contextlib.suppress(OSError):
                path.unlink()
