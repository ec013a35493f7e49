"""Single frames (PyAV): the frame shown at a time, as an image for the image pipeline."""

from __future__ import annotations

from pathlib import Path

from pixelport.errors import UnsupportedFormat
from pixelport.video.probe import open_input


def frame_at(path: Path, demuxer: str, seconds: float) -> bytes:
    """The frame on screen at `seconds` (the last one past the end), upright, as an
    uncompressed TIFF: lossless, and no time spent compressing what is decoded next
    (blocking: run in a worker thread)."""
    import av
    import pyvips

    try:
        with open_input(path, demuxer) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seconds > 0 and stream.time_base:
                # To the keyframe at or before the time, then decode up to the frame shown.
                container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                if chosen is not None and frame.time is not None and frame.time > seconds:
                    break
                chosen = frame
            if chosen is None:
                raise UnsupportedFormat("The video has no frame that decodes")
            rotation = round(getattr(chosen, "rotation", 0) or 0) % 360
            pixels = chosen.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise UnsupportedFormat(f"The video does not decode ({exc})") from None
    height, width = pixels.shape[:2]
    image = pyvips.Image.new_from_memory(pixels.tobytes(), width, height, 3, "uchar")
    # PyAV's rotation turns counter-clockwise; libvips' rot turns clockwise.
    if rotation == 90:
        image = image.rot270()
    elif rotation == 180:
        image = image.rot180()
    elif rotation == 270:
        image = image.rot90()
    return bytes(image.copy(interpretation="srgb").tiffsave_buffer(compression="none"))
