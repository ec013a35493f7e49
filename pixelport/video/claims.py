"""One job per output key across every worker process: a lock file claimed with flock.

The kernel drops a process's locks when it dies, however it dies, so a claim can never outlive
its holder: a worker killed mid-job leaves the key free, and the next request's job takes it
and makes the result again. The file itself may stay behind; it is only ever a lock.
Across nodes a Redis lease comes on top (produce/video_nodes.py): one worker per node
contends for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

POLL_SECONDS = 0.2  # how often a job waiting for another worker's claim looks again


class Claims:
    """Claims on output keys, as lock files under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def try_claim(self, key: str) -> int | None:
        """The locked file's descriptor, or None when another process holds the claim."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            # The holder before us may have removed the file as it let go: our lock is then
            # on a file nobody else can find. Lock the one at the path instead.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    @contextlib.asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[bool]:
        """Hold the claim on `key` for the block, waiting while another process holds it;
        yields whether anyone held it before us (then its result may be there already)."""
        waited = False
        while (fd := self.try_claim(key)) is None:
            waited = True
            await asyncio.sleep(POLL_SECONDS)
        try:
            yield waited
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.folder / f"{key}.lock")
            os.close(fd)
