"""Adaptive bitrate streaming: ImageKit's rendition ladder, one ffmpeg run, HLS and DASH.

`/<video>/ik-master.m3u8?tr=sr-240_360_480_720` (HLS) or `/ik-master.mpd?tr=sr-…` (DASH).
Every rendition keeps the source's aspect ratio inside its box (ImageKit's behaviour since
2023-04-25) and none is larger than the source. One ffmpeg run encodes them all (H.264 at
ImageKit's bit rates, one AAC audio rendition), with a keyframe at every segment boundary of
every rendition, into CMAF segments (fragmented MP4) that serve both protocols: ffmpeg's DASH
muxer writes the MPD and, beside it, the HLS playlists. The two manifests are rewritten to
name their parts under `ik-abs/<ladder id>/` (relative URLs, so any endpoint prefix, custom
domain or CDN in front still works), where the delivery layer serves them from the cache.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pixelport.errors import InvalidRequest
from pixelport.transform.step import ChainItem, Step
from pixelport.video.ffmpeg import input_args
from pixelport.video.probe import VideoInfo

# ImageKit's ladder: height -> (box width, box height, video bit rate).
RENDITIONS = {240: (426, 240, 200_000), 360: (640, 360, 400_000), 480: (854, 480, 800_000),
              720: (1280, 720, 3_300_000), 1080: (1920, 1080, 5_500_000),
              1440: (2560, 1440, 12_000_000), 2160: (3840, 2160, 18_000_000)}
SEGMENT_SECONDS = 4
AUDIO_BITRATE = 128_000
# What a stream's URL may carry besides sr- (ImageKit refuses w, h, ar, f, vc, ac and q).
STREAM_KEYS = frozenset({"sr", "so", "eo", "du"})
MANIFESTS = {"hls": "master.m3u8", "dash": "manifest.mpd"}
PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


@dataclass(frozen=True)
class Rendition:
    """One rung of the ladder."""

    height_class: int  # the sr- value it answers (240, 360, ...)
    width: int
    height: int
    bit_rate: int
    aspect: tuple[int, int]  # the source's display aspect ratio


def resolutions(steps: Sequence[ChainItem]) -> tuple[int, ...]:
    """The sr- heights of a stream's chain (400 for what a stream does not take)."""
    found: tuple[int, ...] | None = None
    for item in steps:
        if not isinstance(item, Step):
            raise InvalidRequest("Conditional transformations do not apply to streams")
        for param in item.params:
            if param.key not in STREAM_KEYS:
                raise InvalidRequest(f"{param} is not allowed with adaptive bitrate streaming: "
                                     "the renditions' size, format and codecs are sr-'s")
        if item.streaming:
            found = item.streaming
    if not found:
        raise InvalidRequest("An adaptive bitrate stream needs its renditions: add "
                             "tr=sr-240_360_480_720_1080 (any of 240, 360, 480, 720, 1080, "
                             "1440, 2160)")
    return found


def ladder(info: VideoInfo, heights: Sequence[int]) -> list[Rendition]:
    """The renditions for a source of `info`'s size: each inside its box at the source's
    aspect ratio, even-sided, none larger than the source."""
    rungs: dict[tuple[int, int], Rendition] = {}
    for rung in sorted(heights):
        box_w, box_h, rate = RENDITIONS[rung]
        # Never upscaled: a rung larger than the source is the source's own size (once).
        scale = min(box_w / info.width, box_h / info.height, 1.0)
        size = (_even(info.width * scale), _even(info.height * scale))
        rungs.setdefault(size, Rendition(rung, *size, rate, (info.width, info.height)))
    return list(rungs.values())


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def args(source: Path, demuxer: str, rungs: Sequence[Rendition], audio: bool,
         folder: Path, start: float = 0.0, end: float | None = None) -> list[str]:
    """ffmpeg's arguments for the whole ladder into `folder` (manifest.mpd, master.m3u8,
    media_N.m3u8, init-N.m4s, chunk-N-00001.m4s ...)."""
    command: list[str] = []
    if start > 0:
        command += ["-ss", f"{start:.3f}"]
    if end is not None:
        command += ["-to", f"{end:.3f}"]
    command += input_args(source, demuxer)
    labels = [f"s{i}" for i in range(len(rungs))]
    graph = [f"[0:v]split={len(rungs)}" + "".join(f"[{label}]" for label in labels)]
    # Every rendition shows the source's aspect ratio exactly (DASH requires one per
    # adaptation set): even sides round it a little, which the sample aspect ratio undoes.
    aspect = f"{rungs[0].aspect[0]}/{rungs[0].aspect[1]}" if rungs else "1"
    for index, rung in enumerate(rungs):
        graph.append(f"[s{index}]scale={rung.width}:{rung.height},setdar={aspect}[v{index}]")
    command += ["-filter_complex", ";".join(graph)]
    for index in range(len(rungs)):
        command += ["-map", f"[v{index}]"]
    if audio:
        command += ["-map", "0:a:0"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
                "-pix_fmt", "yuv420p", "-sc_threshold", "0",
                # A keyframe at every segment boundary, in every rendition: players switch
                # renditions there.
                "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]
    for index, rung in enumerate(rungs):
        command += [f"-b:v:{index}", str(rung.bit_rate),
                    f"-maxrate:v:{index}", str(int(rung.bit_rate * 1.07)),
                    f"-bufsize:v:{index}", str(rung.bit_rate * 2)]
    sets = "id=0,streams=v"
    if audio:
        command += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2"]
        sets += " id=1,streams=a"
    command += ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
                "-f", "dash", "-seg_duration", str(SEGMENT_SECONDS), "-use_template", "1",
                "-use_timeline", "1", "-hls_playlist", "1", "-adaptation_sets", sets,
                "-init_seg_name", "init-$RepresentationID$.m4s",
                "-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s",
                f"file:{folder / MANIFESTS['dash']}"]
    return command


def rewrite_hls(text: str, base: str) -> str:
    """The HLS master playlist with every URI under `base` (`ik-abs/<id>/`)."""
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            line = base + line
        else:
            line = re.sub(r'URI="([^"]+)"', lambda m: f'URI="{base}{m.group(1)}"', line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def rewrite_dash(text: str, base: str) -> str:
    """The MPD with a BaseURL (`ik-abs/<id>/`) that its segment templates resolve against."""
    return re.sub(r"(<Period\b[^>]*>)", lambda m: f"{m.group(1)}\n\t\t<BaseURL>{base}</BaseURL>",
                  text, count=1)


def content_type(name: str) -> str:
    """The media type of a ladder's file."""
    if name.endswith(".m3u8"):
        return "application/vnd.apple.mpegurl"
    if name.endswith(".mpd"):
        return "application/dash+xml"
    return "video/iso.segment" if name.startswith("chunk-") else "video/mp4"


def part_key(ladder: str, name: str) -> str:
    """The result cache key of one file of a stream (a manifest, a playlist, a segment)."""
    text = f"abs\0{ladder}\0{name}"
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()
