"""Test videos, made by the bundled ffmpeg, and results checked by probing them with PyAV."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy

from pixelport.video.ffmpeg import executable


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg (tests make their media with it; nothing is downloaded)."""
    subprocess.run([executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *args], check=True, timeout=120)


def make_clip(path: Path, width: int = 320, height: int = 240, seconds: float = 2.0,
              rate: int = 25, audio: bool = True, rotation: int | None = None) -> Path:
    """ffmpeg's moving test pattern (testsrc2) as H.264, with a 440 Hz tone as AAC."""
    args = ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={rate}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(rate)]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    plain = path if rotation is None else path.with_suffix(".plain.mp4")
    ffmpeg(*args, str(plain))
    if rotation is not None:
        ffmpeg("-display_rotation", str(rotation), "-i", str(plain), "-c", "copy", str(path))
        plain.unlink()
    return path


def make_gif(path: Path, width: int = 160, height: int = 120, frames: int = 10) -> Path:
    """An animated GIF of the test pattern."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r=10", "-frames:v", str(frames),
           str(path))
    return path


@dataclass
class Probed:
    """What a decoder says of a result."""

    container: str
    width: int | None
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    duration: float
    frames: int  # video frames decoded


def probe_bytes(data: bytes, tmp: Path, name: str = "result") -> Probed:
    """Decode every frame of a result (written to a file) and report what it holds."""
    path = tmp / name
    path.write_bytes(data)
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        count = sum(1 for _ in container.decode(video)) if video is not None else 0
        return Probed(
            container=str(container.format.name),
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            video_codec=str(video.codec_context.name) if video is not None else None,
            audio_codec=str(audio.codec_context.name) if audio is not None else None,
            duration=float(container.duration or 0) / 1_000_000,
            frames=count)


def frame_pixels(data: bytes, tmp: Path, seconds: float = 0.0) -> Any:
    """The RGB pixels (numpy, height x width x 3) of a result's frame nearest `seconds`."""
    path = tmp / "frame-source"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        chosen = None
        for frame in container.decode(container.streams.video[0]):
            if chosen is not None and frame.time is not None and frame.time > seconds:
                break
            chosen = frame
        assert chosen is not None
        return numpy.asarray(chosen.to_ndarray(format="rgb24"))
