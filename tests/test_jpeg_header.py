"""The JPEG header read without libvips agrees with libvips, or leaves the file to it."""

from __future__ import annotations

import struct

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelport.config import LimitsConfig
from pixelport.transform import jpeg_header, load


def jpeg(width: int, height: int, bands: int = 3, **save: object) -> bytes:
    """A JPEG from libvips without EXIF (metadata stripped)."""
    image = pyvips.Image.black(width, height, bands=bands).cast("uchar")
    if bands > 1:
        image = image.copy(interpretation="srgb" if bands == 3 else "cmyk")
    return bytes(image.jpegsave_buffer(keep="none", **save))


def exif(orientation: int, order: str = "II", tag_type: int = 3, extra_tags: int = 0) -> bytes:
    """An APP1 EXIF segment whose IFD0 holds `extra_tags` other tags, then the orientation."""
    fmt = "<" if order == "II" else ">"
    entries = [struct.pack(fmt + "HHII", 0x010F + n, 2, 1, 0) for n in range(extra_tags)]
    value = struct.pack(fmt + "H", orientation) + b"\0\0"
    entries.append(struct.pack(fmt + "HHI", 0x0112, tag_type, 1) + value)
    tiff = (order.encode() + struct.pack(fmt + "HI", 42, 8) + struct.pack(fmt + "H", len(entries))
            + b"".join(entries) + struct.pack(fmt + "I", 0))
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def with_segment(data: bytes, segment: bytes) -> bytes:
    """`segment` inserted right after SOI."""
    return data[:2] + segment + data[2:]


def vips_view(data: bytes) -> tuple[int, int, int]:
    """(width, height, orientation) as libvips reads the header."""
    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    orientation = image.get("orientation") if image.get_typeof("orientation") else 1
    return image.width, image.height, int(orientation)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300),
       orientation=st.none() | st.integers(1, 8), order=st.sampled_from(["II", "MM"]),
       extra=st.integers(0, 3), grey=st.booleans(), progressive=st.booleans(),
       subsample=st.sampled_from(["on", "off"]))
def test_agrees_with_libvips(width: int, height: int, orientation: int | None, order: str,
                             extra: int, grey: bool, progressive: bool, subsample: str) -> None:
    data = jpeg(width, height, 1 if grey else 3, interlace=progressive, subsample_mode=subsample)
    if orientation is not None:
        data = with_segment(data, exif(orientation, order, extra_tags=extra))
    assert jpeg_header.read(data) == vips_view(data) == (width, height, orientation or 1)


def test_a_camera_jpeg_written_by_libvips_with_its_exif() -> None:
    image = pyvips.Image.black(40, 30, bands=3).cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = bytes(image.jpegsave_buffer(keep="exif"))
    assert jpeg_header.read(data) == vips_view(data) == (40, 30, 6)
    info = load.probe(data, LimitsConfig())
    assert (info.format, info.width, info.height, info.oriented) == ("jpg", 30, 40, True)


@pytest.mark.parametrize("case", [
    "not a jpeg", "orientation 9", "orientation 0", "orientation as a long", "two exif blocks",
    "bad tiff order", "stray byte", "cmyk", "12-bit", "lossless", "truncated", "no frame",
])
def test_unusual_files_are_left_to_libvips(case: str) -> None:
    plain = jpeg(20, 10)
    sof = plain.index(b"\xff\xc0")
    data = {
        "not a jpeg": b"GIF89a" + plain,
        "orientation 9": with_segment(plain, exif(9)),
        "orientation 0": with_segment(plain, exif(0)),
        "orientation as a long": with_segment(plain, exif(6, tag_type=4)),
        "two exif blocks": with_segment(with_segment(plain, exif(6)), exif(3)),
        "bad tiff order": with_segment(plain, exif(6).replace(b"II*", b"XX*")),
        "stray byte": plain[:sof] + b"\x00" + plain[sof:],
        "cmyk": jpeg(20, 10, 4),  # four components
        "12-bit": plain[:sof + 4] + b"\x0c" + plain[sof + 5:],
        "lossless": plain[:sof + 1] + b"\xc3" + plain[sof + 2:],
        "truncated": plain[:sof + 6],
        "no frame": plain[:sof] + b"\xff\xd9",
    }[case]
    assert jpeg_header.read(data) is None


def test_probe_limits_apply_to_the_fast_path() -> None:
    from pixelport.errors import LimitExceeded

    with pytest.raises(LimitExceeded):
        load.probe(jpeg(300, 200), LimitsConfig(max_input_pixels=300 * 200 - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_header_is_read_as_libvips_reads_it_or_left_to_it(data: st.DataObject) -> None:
    original = with_segment(jpeg(33, 17), exif(6, "MM", extra_tags=2))
    header_end = original.index(b"\xff\xda") + 4
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(2, header_end))] = data.draw(st.integers(0, 255))
    ours = jpeg_header.read(bytes(damaged))
    if ours is None:
        return
    try:
        theirs = vips_view(bytes(damaged))
    except pyvips.Error:
        return  # libjpeg refuses what passed here: the decode refuses it too, as EFORMAT
    assert ours == theirs
