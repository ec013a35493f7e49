"""The `video` scenario: pixelport's video jobs against bare ffmpeg doing the same work.

Three measures, each a ratio to the limit in the same run, on bench/media/clip-720p.mp4 (6 s,
1280x720 H.264 + AAC):
  transcode   720p to 480p MP4 (`w-854,h-480`): results per second through pixelport (each
              request a new result, one at a time) ÷ the same ffmpeg command run bare. The
              bare command is pixelport's own plan for that chain (`video.plan`), so the
              settings are the same to the flag: what is left is pixelport's own cost
              (fetch, probe, claim, cache write).
  thumbnail   `ik-thumbnail.jpg?tr=w-320,so-<t>`: thumbnails per second through pixelport
              (PyAV's decode in-process, libvips' resize and JPEG) ÷ ffmpeg run once per
              thumbnail (`-ss t -i clip -frames:v 1 -vf scale=320:-2`), one at a time.
  ladder      `ik-master.m3u8?tr=sr-240_360_480_720`: seconds from the first request (202)
              until the manifest answers 200 (polled every 50 ms) ÷ the seconds of the same
              ladder command (`video.ladder.args`) run bare.
bench/run.py runs it (`--scenarios video`) on a pixelport of its own.
"""

from __future__ import annotations

import http.client
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIP = "clip-720p.mp4"
TRANSCODE = "w-854,h-480"
THUMBNAIL_WIDTH = 320
LADDER = "sr-240_360_480_720"
POLL = 0.05


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET `path`; status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def timed(count: int, work: Callable[[int], None]) -> float:
    """Seconds for `work(0)` … `work(count - 1)`, one after another."""
    started = time.perf_counter()
    for index in range(count):
        work(index)
    return time.perf_counter() - started


def ffmpeg(args: list[str]) -> None:
    """The bundled ffmpeg, with pixelport's global options (video/ffmpeg.py)."""
    from pixelport.video.ffmpeg import executable

    subprocess.run([executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *args], check=True)


def transcode(port: int, clip: Path, count: int, nonce: str) -> dict[str, Any]:
    """720p to 480p: pixelport's results/s and the bare command's."""
    from pixelport.transform import registry
    from pixelport.video import plan
    from pixelport.video.probe import probe

    def through_pixelport(index: int) -> None:
        status, body = get(port, f"/{CLIP}?tr={TRANSCODE}&v={nonce}t{index}")
        if status != 200 or not body:
            raise SystemExit(f"bench: video transcode answered {status}")

    planned = plan.plan(registry.parse(TRANSCODE), probe(clip, "mov"), "", True, 10**9)
    with tempfile.TemporaryDirectory() as folder:
        args = planned.args(clip, "mov", Path(folder) / "out.mp4", [])
        bare = timed(count, lambda _: ffmpeg(args))
    mine = timed(count, through_pixelport)
    return {"count": count, "pixelport_per_s": count / mine, "ffmpeg_per_s": count / bare,
            "command": args}


def thumbnails(port: int, clip: Path, count: int, nonce: str) -> dict[str, Any]:
    """Frames at `count` times: pixelport's thumbnails/s and ffmpeg's, one at a time."""
    times = [round(0.1 + 5.8 * i / max(1, count - 1), 2) for i in range(count)]

    def through_pixelport(index: int) -> None:
        status, body = get(port, f"/{CLIP}/ik-thumbnail.jpg?tr=w-{THUMBNAIL_WIDTH},"
                                 f"so-{times[index]}&v={nonce}")
        if status != 200 or not body:
            raise SystemExit(f"bench: video thumbnail answered {status}")

    with tempfile.TemporaryDirectory() as folder:
        def bare(index: int) -> None:
            ffmpeg(["-ss", str(times[index]), "-i", str(clip), "-frames:v", "1",
                    "-vf", f"scale={THUMBNAIL_WIDTH}:-2", "-q:v", "4",
                    str(Path(folder) / f"{index}.jpg")])
        limit = timed(count, bare)
    mine = timed(count, through_pixelport)
    return {"count": count, "pixelport_per_s": count / mine, "ffmpeg_per_s": count / limit}


def ladder(port: int, clip: Path, nonce: str) -> dict[str, Any]:
    """Seconds until a 4-rung HLS ladder is ready: through pixelport, and bare."""
    from pixelport.transform import registry
    from pixelport.video import ladder as abs_ladder
    from pixelport.video.probe import probe

    target = f"/{CLIP}/ik-master.m3u8?tr={LADDER}&v={nonce}"
    started = time.perf_counter()
    status, _ = get(port, target)
    while status == 202:
        time.sleep(POLL)
        status, _ = get(port, target)
    mine = time.perf_counter() - started
    if status != 200:
        raise SystemExit(f"bench: video ladder answered {status}")
    info = probe(clip, "mov")
    rungs = abs_ladder.ladder(info, abs_ladder.resolutions(registry.parse(LADDER)))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        ffmpeg(abs_ladder.args(clip, "mov", rungs, info.has_audio, Path(folder)))
        bare = time.perf_counter() - started
    return {"pixelport_s": mine, "ffmpeg_s": bare, "rungs": [f"{r.width}x{r.height}"
                                                              for r in rungs]}
