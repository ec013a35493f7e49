"""Shrunk JPEG decodes through libjpeg-turbo's memory API match libvips' loader pixel for pixel,
or leave the file to libvips."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.transform import engine, jpeg_decode, jpeg_header, profiles, registry
from tests.test_jpeg_header import exif, with_segment


def noise(width: int, height: int, bands: int = 3) -> pyvips.Image:
    """Texture, so that a decode at the wrong scale or with other settings shows."""
    planes = [pyvips.Image.gaussnoise(width, height, mean=128, sigma=50) for _ in range(bands)]
    image = planes[0].bandjoin(planes[1:]) if bands > 1 else planes[0]
    return image.cast("uchar").copy(interpretation="srgb" if bands == 3 else "b-w")


def array(image: pyvips.Image) -> np.ndarray:
    """The pixels as an array (height, width, bands)."""
    return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                      shape=(image.height, image.width, image.bands))


def libvips(data: bytes, shrink: int) -> pyvips.Image:
    """libvips' own shrunk decode, upright."""
    return pyvips.Image.jpegload_buffer(data, shrink=shrink, fail_on="error").autorot()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(16, 260), height=st.integers(16, 260), grey=st.booleans(),
       progressive=st.booleans(), subsample=st.sampled_from(["on", "off"]),
       orientation=st.integers(1, 8), shrink=st.sampled_from([2, 4, 8]))
def test_pixels_are_libvips_own(width: int, height: int, grey: bool, progressive: bool,
                                subsample: str, orientation: int, shrink: int) -> None:
    data = bytes(noise(width, height, 1 if grey else 3).jpegsave_buffer(
        keep="none", interlace=progressive, subsample_mode=subsample, Q=90))
    data = with_segment(data, exif(orientation))
    ours, theirs = jpeg_decode.shrunk(data, shrink, orientation), libvips(data, shrink)
    assert ours is not None and ours.bands == theirs.bands
    # libjpeg rounds a shrunk size up and libvips down: the part both have is the same.
    assert 0 <= ours.width - theirs.width <= 1 and 0 <= ours.height - theirs.height <= 1
    if orientation in (1, 5):  # libvips' crop keeps the top-left corner as stored
        common = ours.crop(0, 0, theirs.width, theirs.height)
        assert np.array_equal(array(common), array(theirs))
    if width % shrink == 0 and height % shrink == 0:
        assert np.array_equal(array(ours), array(theirs))


def test_renders_are_byte_for_byte_those_of_libvips_loader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(noise(1200, 900).jpegsave_buffer(Q=90))
    options = engine.RenderOptions("", ImagesConfig(), LimitsConfig())
    real, decoded = jpeg_decode.shrunk, []

    def recorded(data: bytes, shrink: int, orientation: int) -> object:
        decoded.append(real(data, shrink, orientation))
        return decoded[-1]

    renders = {}
    for fast in (True, False):
        monkeypatch.setattr(jpeg_decode, "shrunk", recorded if fast else lambda *args: None)
        renders[fast] = [engine.render(data, registry.parse(tr), options).data
                         for tr in ("w-300,f-jpg", "w-300,f-webp", "w-280,h-100,f-jpg")]
    assert len(decoded) == 3 and None not in decoded  # the renders did decode through it
    assert renders[True] == renders[False]


def test_a_non_srgb_profile_is_carried_and_converted_as_libvips_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    p3 = bytes(noise(400, 300).icc_transform("p3").jpegsave_buffer(keep="icc", Q=90))
    ours = jpeg_decode.shrunk(p3, 4, 1)
    assert ours is not None
    assert bytes(ours.get("icc-profile-data")) == bytes(libvips(p3, 4).get("icc-profile-data"))
    camera = (Path(__file__).parents[1] / "bench/media/photo-1200x900.jpg").read_bytes()
    profile = jpeg_header.icc_profile(camera)  # "sRGB IEC61966-2.1", as cameras embed
    assert profile and profiles.is_srgb(profile)
    tagged = noise(400, 300).copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    srgb = bytes(tagged.jpegsave_buffer(keep="icc", Q=90))
    decoded = jpeg_decode.shrunk(srgb, 4, 1)
    assert decoded is not None and decoded.get_typeof("icc-profile-data") == 0  # left off
    options = engine.RenderOptions("", ImagesConfig(), LimitsConfig())
    fast = engine.render(p3, registry.parse("w-100,f-png"), options).data
    monkeypatch.setattr(jpeg_decode, "shrunk", lambda *args: None)
    assert engine.render(p3, registry.parse("w-100,f-png"), options).data == fast


def test_a_profile_in_chunks_is_joined_in_order() -> None:
    profile = bytes(range(256)) * 3

    def app2(number: int, count: int, part: bytes) -> bytes:
        body = b"ICC_PROFILE\0" + bytes([number, count]) + part
        return b"\xff\xe2" + (len(body) + 2).to_bytes(2, "big") + body

    plain = bytes(noise(64, 48).jpegsave_buffer(keep="none"))
    # Stored out of order, as a writer may: the sequence numbers decide.
    data = with_segment(plain, app2(2, 2, profile[400:]) + app2(1, 2, profile[:400]))
    assert jpeg_header.icc_profile(data) == profile
    assert jpeg_header.icc_profile(plain) == b""
    for broken in (app2(1, 2, profile[:400]),  # a chunk missing
                   app2(1, 1, profile) + app2(1, 1, profile),  # twice the same number
                   app2(1, 2, profile[:400]) + app2(2, 3, profile[400:])):  # counts disagree
        assert jpeg_header.icc_profile(with_segment(plain, broken)) is None
        assert jpeg_decode.shrunk(with_segment(plain, broken), 2, 1) is None  # to libvips


def test_what_libvips_must_decode_is_left_to_it() -> None:
    image = noise(256, 192)
    cmyk = bytes(image.icc_transform("cmyk").jpegsave_buffer())
    assert jpeg_decode.shrunk(cmyk, 4, 1) is None
    whole = bytes(image.jpegsave_buffer(Q=90))
    assert jpeg_decode.shrunk(whole[: len(whole) // 2], 4, 1) is None  # truncated: a warning
    assert jpeg_decode.shrunk(b"\xff\xd8\xff\xe0 not a jpeg", 4, 1) is None
    assert jpeg_decode.shrunk(whole, 4, 1) is not None


def test_the_decoded_pixels_outlive_every_copy_of_the_image() -> None:
    data = bytes(noise(800, 600).jpegsave_buffer(Q=90))
    expected = array(libvips(data, 4))
    for derive in (lambda image: image.copy_memory(), lambda image: image.resize(0.5)):
        image = jpeg_decode.shrunk(data, 4, 1)
        assert image is not None
        derived = derive(image)  # pyvips' copy_memory() keeps no reference to the array
        del image
        gc.collect()
        # Reuse the array's memory, were it freed: as many arrays of its size, filled.
        litter = [np.full(expected.size, 7, dtype=np.uint8) for _ in range(64)]
        source = pyvips.Image.new_from_memory(expected.tobytes(), 200, 150, 3, "uchar")
        assert np.array_equal(array(derived), array(derive(source))) and len(litter) == 64


def test_png_output_carries_the_default_density_unless_metadata_is_kept() -> None:
    image = noise(400, 300).copy(xres=300 / 25.4, yres=300 / 25.4)  # 300 dpi
    data = bytes(image.pngsave_buffer())
    options = engine.RenderOptions("", ImagesConfig(), LimitsConfig())

    def dpi(tr: str) -> float:
        out = pyvips.Image.new_from_buffer(engine.render(data, registry.parse(tr), options).data,
                                           "")
        return round(out.xres * 25.4, 1)

    assert dpi("w-200,f-png") == 72.0  # whichever decoder read the input
    assert dpi("w-200,f-png,md-true") == 300.0


def test_large_decodes_are_left_to_libvips_which_streams_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(noise(400, 300).jpegsave_buffer(Q=90))
    monkeypatch.setattr(jpeg_decode, "MAX_PIXELS", 100 * 75)
    assert jpeg_decode.shrunk(data, 4, 1) is not None  # 100x75: at the bound
    assert jpeg_decode.shrunk(data, 2, 1) is None  # 200x150 would be decoded whole


def test_concurrent_decodes_keep_their_own_pixels() -> None:
    import threading

    files = [bytes(noise(w, h).jpegsave_buffer(Q=85)) for w, h in ((640, 480), (800, 600),
                                                                  (480, 640))]
    expected = [array(libvips(data, 4)) for data in files]
    wrong: list[int] = []

    def work(first: int) -> None:  # the render pool's threads decode at the same time
        for n in range(60):
            index = (first + n) % len(files)
            image = jpeg_decode.shrunk(files[index], 4, 1)
            if image is None or not np.array_equal(array(image), expected[index]):
                wrong.append(index)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
