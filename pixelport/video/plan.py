"""From a transformation chain and a probed video to an ffmpeg command: pure planning.

The same grammar as images (path `tr:` or `?tr=`), with ImageKit's video parameters: w, h, ar,
c (maintain_ratio, force, at_max, at_least), cm (pad_resize, extract), fo (relative positions),
bg (a colour, or blurred), b, r, rt (0/90/180/270/360), q, f (auto, mp4, webm), vc, ac, so, eo
and du, and image, text and solid layers (made by libvips as for images, overlaid by ffmpeg,
shown from `lso` for `ldu` seconds or until `leo`). Geometry is the images' own arithmetic
(`transform.geometry.plan`: precrop → scale → crop → canvas), written as ffmpeg filters;
anything else is a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelport.config import LimitsConfig
from pixelport.errors import InvalidRequest, LimitExceeded
from pixelport.transform import engine, geometry, overlay
from pixelport.transform.colours import BLACK, Colour
from pixelport.transform.formats import accepts
from pixelport.transform.geometry import Context
from pixelport.transform.layer import Layer
from pixelport.transform.step import POSITIONS, ChainItem, Radius, Step
from pixelport.video.ffmpeg import input_args
from pixelport.video.probe import VideoInfo

VIDEO_KEYS = frozenset({"w", "h", "ar", "c", "cm", "fo", "bg", "b", "r", "rt", "q", "f", "vc",
                        "ac", "so", "eo", "du", "l"})
VIDEO_CROPS = ("maintain_ratio", "force", "at_max", "at_least")
VIDEO_CROP_MODES = ("pad_resize", "extract")
DEFAULT_QUALITY = 50  # ImageKit's default for video
# q-1..100 onto each encoder's constant-quality scale, linearly: (CRF at q-1, CRF at q-100).
# At q-50 that is x264's own default (23), libvpx's recommended 31-33 for VP9, SVT-AV1's 35.
CRF = {"h264": (35.0, 11.0), "vp9": (50.0, 14.0), "av1": (52.0, 18.0)}
CONTAINER_CODECS = {"mp4": (("h264",), ("aac",)), "webm": (("vp9", "av1"), ("opus",))}
AUDIO_BITRATES = {"aac": "128k", "opus": "96k"}


@dataclass(frozen=True)
class Output:
    """The container and codecs of a result (None: that stream is left out)."""

    container: str  # mp4 | webm
    video_codec: str | None
    audio_codec: str | None
    negotiated: bool  # chosen from Accept (then Vary: Accept)

    @property
    def content_type(self) -> str:
        """The result's media type."""
        if self.video_codec is None:
            return f"audio/{self.container}"
        return f"video/{self.container}"


@dataclass(frozen=True)
class Trim:
    """Which part of the input is kept, in seconds."""

    start: float = 0.0
    end: float | None = None  # where it stops (None: at the end)

    @property
    def active(self) -> bool:
        """Whether anything is cut."""
        return self.start > 0 or self.end is not None


@dataclass(frozen=True)
class Mask:
    """Rounded corners: `colour` outside the rounded rectangle, drawn over the frames."""

    width: int
    height: int
    radius: Radius
    values: dict[str, float]
    colour: Colour


@dataclass(frozen=True)
class Picture:
    """A layer made by libvips (overlay.py), drawn over the frames where the graph says."""

    image: Any


@dataclass
class Graph:
    """An ffmpeg filter graph under construction, one labelled chain after another."""

    parts: list[str] = field(default_factory=list)
    label: str = "0:v"
    count: int = 0
    masks: list[Mask | Picture] = field(default_factory=list)  # inputs 1.. of the command

    def new(self) -> str:
        """A fresh label."""
        self.count += 1
        return f"v{self.count}"

    def chain(self, *filters: str) -> None:
        """Append filters to the current stream."""
        out = self.new()
        self.parts.append(f"[{self.label}]{','.join(filters)}[{out}]")
        self.label = out


@dataclass(frozen=True)
class VideoPlan:
    """One transformed video: what ffmpeg is asked to do."""

    output: Output
    trim: Trim
    quality: int
    width: int
    height: int
    graph: Graph

    def args(self, source: Path, demuxer: str, target: Path, masks: Sequence[Path]) -> list[str]:
        """ffmpeg's arguments (after its global options); `masks`: the files `write_masks`
        made for `graph.masks`, in order."""
        args: list[str] = []
        if self.trim.start > 0:
            args += ["-ss", f"{self.trim.start:.3f}"]
        if self.trim.end is not None:
            args += ["-to", f"{self.trim.end:.3f}"]
        args += input_args(source, demuxer)
        for mask in masks:
            args += ["-f", "png_pipe", "-protocol_whitelist", "file", "-i", f"file:{mask}"]
        output = self.output
        if output.video_codec is not None:
            if self.graph.parts:
                args += ["-filter_complex", ";".join(self.graph.parts),
                         "-map", f"[{self.graph.label}]"]
            else:
                args += ["-map", "0:v:0"]
            args += video_codec_args(output.video_codec, self.quality)
        if output.audio_codec is not None:
            args += ["-map", "0:a:0?", "-c:a", _AUDIO_ENCODERS[output.audio_codec],
                     "-b:a", AUDIO_BITRATES[output.audio_codec]]
        args += ["-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn"]
        if output.container == "mp4":
            args += ["-movflags", "+faststart"]
        return [*args, "-f", output.container, f"file:{target}"]


_AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}


def video_codec_args(codec: str, quality: int) -> list[str]:
    """Encoder options for a codec at a quality (q-1..100)."""
    low, high = CRF[codec]
    crf = round(low + (high - low) * (quality - 1) / 99)
    if codec == "h264":
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
                "-pix_fmt", "yuv420p", "-profile:v", "high"]
    if codec == "vp9":
        return ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-deadline", "good",
                "-cpu-used", "5", "-row-mt", "1", "-pix_fmt", "yuv420p"]
    return ["-c:v", "libsvtav1", "-crf", str(crf), "-preset", "10", "-pix_fmt", "yuv420p"]


def check_keys(steps: Sequence[ChainItem], allowed: frozenset[str], what: str) -> list[Step]:
    """The chain's steps, every parameter one `what` takes (else 400 naming it)."""
    plain: list[Step] = []
    for item in steps:
        if not isinstance(item, Step):
            raise InvalidRequest(f"Conditional transformations ({item.condition.text}) apply "
                                 f"to images, not to {what}")
        for param in item.params:
            if param.key not in allowed:
                raise InvalidRequest(f"{param} is not supported for {what}")
        plain.append(item)
    return plain


def choose_output(steps: Sequence[Step], accept: str, best_format: bool) -> Output:
    """Container and codecs from f, vc and ac (only ImageKit's combinations), else Accept."""
    requested = next((s.format for s in reversed(steps) if s.format), None)
    vc_step = next((s for s in reversed(steps) if s.video_codec), None)
    ac_step = next((s for s in reversed(steps) if s.audio_codec), None)
    vc = vc_step.video_codec if vc_step else None
    ac = ac_step.audio_codec if ac_step else None
    if requested not in (None, "auto", "mp4", "webm"):
        raise InvalidRequest(f"f-{requested} is not a video format: videos take f-mp4, f-webm "
                             "or f-auto")
    negotiated = False
    by_video = _container_of(vc)
    by_audio = _container_of(ac)
    if by_video and by_audio and by_video != by_audio:
        raise InvalidRequest(f"vc-{vc} and ac-{ac} cannot go together: mp4 takes vc-h264 "
                             "with ac-aac, webm takes vc-vp9 or vc-av1 with ac-opus")
    if requested in ("mp4", "webm"):
        container = requested
    elif by_video or by_audio:
        container = by_video or by_audio or "mp4"
    elif requested == "auto" or best_format:
        container = "webm" if accepts(accept, "video/webm") else "mp4"
        negotiated = True
    else:
        container = "mp4"
    videos, audios = CONTAINER_CODECS[container]
    if vc not in (None, "none", *videos):
        raise InvalidRequest(f"vc-{vc} cannot go in f-{container}: mp4 takes vc-h264, webm "
                             "takes vc-vp9 or vc-av1 (or vc-none in either)")
    if ac not in (None, "none", *audios):
        raise InvalidRequest(f"ac-{ac} cannot go in f-{container}: mp4 takes ac-aac, webm "
                             "takes ac-opus (or ac-none in either)")
    video = None if vc == "none" else (vc or videos[0])
    audio = None if ac == "none" else (ac or audios[0])
    if video is None and audio is None:
        raise InvalidRequest("vc-none with ac-none leaves nothing to serve")
    return Output(container, video, audio, negotiated)


def _container_of(codec: str | None) -> str | None:
    """The container a codec implies (None: it implies none)."""
    return next((name for name, (videos, audios) in CONTAINER_CODECS.items()
                 if codec in videos or codec in audios), None)


def trim(steps: Sequence[Step], duration: float) -> Trim:
    """so, eo and du (the last of each) in seconds; `idu` is the input's duration."""
    values = {"idu": duration}
    start_expr = next((s.start_offset for s in reversed(steps) if s.start_offset), None)
    end_expr = next((s.end_offset for s in reversed(steps) if s.end_offset), None)
    length_expr = next((s.duration for s in reversed(steps) if s.duration), None)
    start = round(start_expr.evaluate(values), 2) if start_expr is not None else 0.0
    if start < 0 or (start_expr is not None and start >= duration):
        raise InvalidRequest(f"so-{start_expr} lies outside the video ({duration:.2f} s long)")
    end = None
    if end_expr is not None:
        end = round(end_expr.evaluate(values), 2)
        if end <= start:
            raise InvalidRequest(f"eo-{end_expr} must come after the start ({start:g} s)")
    elif length_expr is not None:
        length = round(length_expr.evaluate(values), 2)
        if length <= 0:
            raise InvalidRequest(f"du-{length_expr} must be a positive duration")
        end = start + length
    if end is not None and end >= duration:
        end = None  # to the end anyway
    return Trim(start, end)


def plan(steps: Sequence[ChainItem], info: VideoInfo, accept: str, best_format: bool,
         max_output_pixels: int, layers: overlay.Inputs | None = None) -> VideoPlan:
    """The whole plan for a transformed video (400 for what videos do not take). Blocking when
    the chain has layers (libvips makes them): call it on a thread."""
    plain = check_keys(steps, VIDEO_KEYS, "videos")
    output = choose_output(plain, accept, best_format)
    graph = Graph()
    width, height = info.width, info.height
    ctx = Context(info.width, info.height)
    for step in plain:
        width, height = _step(graph, step, width, height, ctx)
        for layer in step.layers:
            inputs = layers or overlay.Inputs({}, LimitsConfig(
                max_output_pixels=max_output_pixels))
            _layer(graph, layer, width, height, ctx, inputs, info.duration)
    if width * height > max_output_pixels:
        raise LimitExceeded(f"The output ({width}x{height}) is larger than "
                            f"{max_output_pixels} pixels (max_output_pixels)")
    quality = next((s.quality for s in reversed(plain) if s.quality), None) or DEFAULT_QUALITY
    return VideoPlan(output, trim(plain, info.duration), quality, width, height, graph)


def _step(graph: Graph, step: Step, width: int, height: int, ctx: Context) -> tuple[int, int]:
    """Add one step's filters: geometry, rotation, even sides, corners, border."""
    if step.crop is not None and step.crop not in VIDEO_CROPS:
        raise InvalidRequest(f"c-{step.crop} is not supported for videos")
    if step.crop_mode is not None and step.crop_mode not in VIDEO_CROP_MODES:
        raise InvalidRequest(f"cm-{step.crop_mode} is not supported for videos")
    if step.focus is not None and step.focus not in POSITIONS:
        raise InvalidRequest(f"fo-{step.focus} is not supported for videos: they take "
                             "relative positions (fo-top, fo-bottom_right, ...)")
    background = step.background
    colour = background.colour if background is not None and background.colour else BLACK
    layout = geometry.plan(width, height, step, ctx)
    if layout is not None:
        if layout.precrop is not None:
            box = layout.precrop
            graph.chain(f"crop={box.width}:{box.height}:{box.left}:{box.top}")
        if layout.canvas is not None and background is not None and background.blurred:
            _blurred_pad(graph, layout, background.blur_amount, background.brightness)
        else:
            filters = []
            if layout.scale is not None:
                filters.append(f"scale={layout.scale[0]}:{layout.scale[1]}")
            if layout.crop is not None:
                box = layout.crop
                filters.append(f"crop={box.width}:{box.height}:{box.left}:{box.top}")
            if layout.canvas is not None:
                box = layout.canvas
                filters.append(f"pad={box.width}:{box.height}:{box.left}:{box.top}:"
                               f"color={_colour(colour)}")
            if filters:
                graph.chain(*filters)
        width, height = layout.out_width, layout.out_height
    if step.rotate is not None and step.rotate % 360:
        turn = step.rotate % 360
        if turn not in (90, 180, 270):
            raise InvalidRequest(f"rt-{step.rotate:g}: videos turn by 90, 180 or 270 degrees")
        graph.chain({90: "transpose=1", 180: "hflip,vflip", 270: "transpose=2"}[int(turn)])
        if turn != 180:
            width, height = height, width
    if width % 2 or height % 2:
        # 4:2:0 video has even sides: the odd pixel row or column goes.
        width, height = max(2, width - width % 2), max(2, height - height % 2)
        graph.chain(f"crop={width}:{height}:0:0")
    if step.radius is not None:
        values = geometry.variables(ctx, width, height)
        graph.masks.append(Mask(width, height, step.radius, values, colour))
        out = graph.new()
        graph.parts.append(f"[{graph.label}][{len(graph.masks)}:v]overlay=0:0[{out}]")
        graph.label = out
    if step.border is not None:
        values = geometry.variables(ctx, width, height)
        size = round(step.border.width.evaluate(values))
        if size > 0:
            width, height = width + 2 * size, height + 2 * size
            graph.chain(f"pad={width}:{height}:{size}:{size}:color={_colour(step.border.colour)}")
    return width, height


def _layer(graph: Graph, layer: Layer, width: int, height: int, ctx: Context,
           inputs: overlay.Inputs, duration: float) -> None:
    """An image, text or solid layer: made as for an image, overlaid for its time span."""
    if layer.kind not in ("image", "text", "solid"):
        raise InvalidRequest(f"l-{layer.kind} layers are not supported yet")
    if layer.mode is not None:
        raise InvalidRequest(f"lm-{layer.mode} is not supported for videos: their layers "
                             "cover what is under them")
    made = overlay.made(layer, width, height, ctx, inputs, engine.layer_chain(inputs))
    image = made.image
    left, top = overlay.place(layer, width, height, image.width, image.height, ctx)
    graph.masks.append(Picture(image))
    out = graph.new()
    graph.parts.append(f"[{graph.label}][{len(graph.masks)}:v]overlay={left}:{top}"
                       f"{_enable(layer, duration)}[{out}]")
    graph.label = out


def _enable(layer: Layer, duration: float) -> str:
    """ffmpeg's timeline option for lso/leo/ldu (leo wins over ldu), empty for all along."""
    values = {"idu": duration, "bdu": duration}
    start = layer.start.evaluate(values) if layer.start is not None else 0.0
    end = None
    if layer.end is not None:
        end = layer.end.evaluate(values)
    elif layer.duration is not None:
        end = start + layer.duration.evaluate(values)
    if start < 0 or (end is not None and end <= start):
        raise InvalidRequest(f"The layer {layer.spec} ends before it starts")
    if end is not None:
        return f":enable='between(t,{start:.3f},{end:.3f})'"
    return f":enable='gte(t,{start:.3f})'" if start > 0 else ""


def _blurred_pad(graph: Graph, layout: geometry.Plan, amount: int | None,
                 brightness: int) -> None:
    """cm-pad_resize,bg-blurred: the video over a blurred, darkened copy of itself."""
    assert layout.canvas is not None and layout.scale is not None
    box = layout.canvas
    back, front, blurred, scaled, out = (graph.new() for _ in range(5))
    sigma = max(1.0, min(100.0, (amount if amount is not None else 20)
                         * min(box.width, box.height) / 720))
    adjust = f",eq=brightness={brightness / 255:.3f}" if brightness else ""
    graph.parts += [
        f"[{graph.label}]split[{back}][{front}]",
        f"[{back}]scale={box.width}:{box.height}:force_original_aspect_ratio=increase,"
        f"crop={box.width}:{box.height},gblur=sigma={sigma:.1f}{adjust}[{blurred}]",
        f"[{front}]scale={layout.scale[0]}:{layout.scale[1]}[{scaled}]",
        f"[{blurred}][{scaled}]overlay={box.left}:{box.top}[{out}]",
    ]
    graph.label = out


def _colour(colour: Colour) -> str:
    return f"0x{colour.red:02X}{colour.green:02X}{colour.blue:02X}"


def write_masks(masks: Sequence[Mask | Picture], folder: Path) -> list[Path]:
    """Draw each mask, and write each layer, as a PNG in `folder` (blocking: libvips)."""
    import pyvips

    from pixelport.transform import pixels

    paths = []
    for index, mask in enumerate(masks):
        if isinstance(mask, Picture):
            path = folder / f"layer-{index}.png"
            mask.image.pngsave(str(path), compression=1)
            paths.append(path)
            continue
        blank = pyvips.Image.black(mask.width, mask.height, bands=3).copy(interpretation="srgb")
        inside = pixels.round_corners(blank, mask.radius, mask.values)[3]
        colour = blank.new_from_image(mask.colour.rgb).cast("uchar")
        drawn = colour.bandjoin((255 - inside).cast("uchar"))
        path = folder / f"mask-{index}.png"
        drawn.pngsave(str(path), compression=1)
        paths.append(path)
    return paths
