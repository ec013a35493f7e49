"""Running ffmpeg: the static build of the `imageio-ffmpeg` wheel, one subprocess per job.

A subprocess is killable, time-limited and outside the GIL, and a crash in a decoder ends one
job, not the server. The bundled ffmpeg is GPL software run as a separate program (README,
SECURITY.md). Every input is opened with its demuxer named and the protocols limited to
`file` (`input_args`; see containers.py for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from pixelport.errors import LimitExceeded, OriginFailed
from pixelport.video.containers import DEMUXER_OPTIONS

log = logging.getLogger("pixelport.video")
STDERR_TAIL = 4000  # bytes of ffmpeg's complaints kept for the log


class FfmpegFailed(OriginFailed):
    """ffmpeg exited with an error (the input decoded in the probe, so this is ours: 500)."""

    status = 500


@functools.cache
def executable() -> str:
    """The path of the bundled ffmpeg (a file inside the imageio-ffmpeg wheel)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def input_args(path: Path, demuxer: str) -> list[str]:
    """Options and `-i` for one local input: its demuxer named, local files only."""
    args = ["-protocol_whitelist", "file", "-f", demuxer]
    for name, value in DEMUXER_OPTIONS.get(demuxer, {}).items():
        args += [f"-{name}", value]
    return [*args, "-i", f"file:{path}"]


async def run(args: Sequence[str], seconds: float, cwd: Path | None = None) -> None:
    """Run ffmpeg with `args` (after the global options) for at most `seconds`.

    Past the time, or when the caller is cancelled, the process (its whole group) is killed.
    """
    command = [executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, start_new_session=True)
    try:
        async with asyncio.timeout(seconds):
            _, stderr = await process.communicate()
    except TimeoutError:
        _kill(process)
        await process.wait()
        raise LimitExceeded(f"The video job took longer than {seconds:g} seconds "
                            "(max_job_seconds)") from None
    except BaseException:
        _kill(process)
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())
        raise
    if process.returncode != 0:
        tail = stderr[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        log.warning("ffmpeg exited with %s: %s", process.returncode, tail)
        raise FfmpegFailed(f"ffmpeg failed (exit status {process.returncode})")


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill ffmpeg and anything it started."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
