"""What a video is (PyAV): duration, size as displayed, rotation, codecs, bit rate.

The probe opens the file with its sniffed demuxer (containers.py), local file only, and decodes
the first video frame: a file that opens but does not decode (truncated, or HTML behind a
sniffable header) is EFORMAT here, before any job is queued for it. Blocking: run in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelport.errors import UnsupportedFormat
from pixelport.video.containers import DEMUXER_OPTIONS

# Names ImageKit's metadata uses for the common codecs (ffmpeg's are the rest).
CODEC_NAMES = {"h264": "h264", "hevc": "hevc", "vp9": "vp9", "vp8": "vp8", "av1": "av1",
               "libdav1d": "av1", "aac": "aac", "opus": "opus", "mp3": "mp3", "vorbis": "vorbis"}


@dataclass(frozen=True)
class VideoInfo:
    """A probed video."""

    demuxer: str
    width: int  # as displayed (rotation applied)
    height: int
    duration: float  # seconds
    rotation: int  # degrees the player turns the frames (0, 90, 180, 270)
    video_codec: str | None
    audio_codec: str | None
    bit_rate: int  # bits per second, the whole file
    frame_rate: float
    frames: int  # of the video stream, when the container says (else 0)

    @property
    def has_audio(self) -> bool:
        """Whether there is an audio stream."""
        return self.audio_codec is not None


def open_input(path: Path, demuxer: str) -> Any:
    """A PyAV container for a local file with its demuxer named, nothing else reachable."""
    import av

    options = {"protocol_whitelist": "file", **DEMUXER_OPTIONS.get(demuxer, {})}
    return av.open(str(path), format=demuxer, options=options, metadata_errors="ignore")


def probe(path: Path, demuxer: str) -> VideoInfo:
    """Probe `path` (EFORMAT when it has no video stream that decodes)."""
    import av

    try:
        with open_input(path, demuxer) as container:
            if not container.streams.video:
                raise UnsupportedFormat("The file has no video stream")
            stream = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            first = next(container.decode(stream), None)
            if first is None:
                raise UnsupportedFormat("The video has no frame that decodes")
            rotation = round(getattr(first, "rotation", 0) or 0) % 360
            width, height = first.width, first.height
            if rotation in (90, 270):
                width, height = height, width
            duration = _duration(container, stream)
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            return VideoInfo(
                demuxer=demuxer, width=width, height=height, duration=duration,
                rotation=rotation, video_codec=_codec(stream),
                audio_codec=_codec(audio) if audio is not None else None,
                bit_rate=int(container.bit_rate or 0), frame_rate=rate,
                frames=int(stream.frames or 0))
    except av.FFmpegError as exc:
        raise UnsupportedFormat(f"The file is not a video that can be decoded ({exc})") from None


def _duration(container: Any, stream: Any) -> float:
    if container.duration:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return 0.0


def _codec(stream: Any) -> str:
    name = str(stream.codec_context.name)
    return CODEC_NAMES.get(name, name)
