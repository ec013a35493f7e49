"""JPEG and WebP encodes through Pillow give libvips' bytes exactly, or leave the image to
libvips."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelport.config import Config, from_dict
from pixelport.errors import UnsupportedFormat
from pixelport.transform import engine, formats, pillow_encode, registry
from tests.test_jpeg_decode import noise

MEDIA = Path(__file__).resolve().parent.parent / "bench" / "media"


def picture(width: int, height: int, bands: int) -> pyvips.Image:
    """Noise over a gradient: flat areas and texture, as in photos."""
    ramp = pyvips.Image.xyz(width, height)[0].linear(255 / max(width, 1), 0)
    image = noise(width, height, 1 if bands == 1 else 3)
    image = (image * 0.3 + ramp * 0.7).cast("uchar").copy(interpretation=image.interpretation)
    if bands == 4:
        alpha = pyvips.Image.xyz(width, height)[1].linear(255 / max(height, 1), 0).cast("uchar")
        image = image.bandjoin(alpha).copy(interpretation="srgb")
    return image.copy_memory()


def libvips_jpeg(image: pyvips.Image, quality: int, optimize: bool, progressive: bool,
                 subsample: bool) -> bytes:
    """What formats.encode asks libvips for."""
    return bytes(image.jpegsave_buffer(Q=quality, optimize_coding=optimize,
                                       interlace=progressive,
                                       subsample_mode="auto" if subsample else "off",
                                       keep="none"))


sizes = st.tuples(st.integers(1, 300), st.integers(1, 300))


def test_jpeg_is_written_through_a_memory_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow encodes into a file descriptor with the GIL released, into bytes without: JPEG
    goes through each thread's memfd, and gives the same bytes as through memory."""
    image = picture(300, 225, 3)
    files: list[Any] = []
    real = pillow_encode._scratch

    def spying() -> Any:
        files.append(real())
        return files[-1]

    monkeypatch.setattr(pillow_encode, "_scratch", spying)
    through_file = [pillow_encode.jpeg(image, q, True, False, True) for q in (90, 20, 75)]
    assert len(files) == 3 and len({id(f) for f in files}) == 1
    assert files[0] is not None and files[0].name == files[0].fileno()  # an fd, not a path
    written = os.pread(files[0].fileno(), 1 << 20, 0)  # the last JPEG, JFIF segment and all
    assert written.endswith(through_file[-1][-1000:]) and written[6:11] == b"JFIF\x00"
    monkeypatch.setattr(pillow_encode, "_scratch", lambda: None)
    assert through_file == [pillow_encode.jpeg(image, q, True, False, True) for q in (90, 20, 75)]
    assert through_file == [libvips_jpeg(image, q, True, False, True) for q in (90, 20, 75)]


def test_threads_encode_into_their_own_files() -> None:
    images = [picture(200 + 10 * i, 150, 3) for i in range(3)]
    expected = [libvips_jpeg(image, 80, True, False, True) for image in images]
    got: dict[int, list[bytes | None]] = {}

    def work(index: int) -> None:
        got[index] = [pillow_encode.jpeg(images[index], 80, True, False, True)
                      for _ in range(30)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(got[i] == [expected[i]] * 30 for i in range(3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, bands=st.sampled_from([1, 3]), quality=st.integers(1, 100),
       optimize=st.booleans(), progressive=st.booleans(), subsample=st.booleans())
def test_jpeg_is_libvips_bytes(size: tuple[int, int], bands: int, quality: int, optimize: bool,
                               progressive: bool, subsample: bool) -> None:
    image = picture(*size, bands)
    fast = pillow_encode.jpeg(image, quality, optimize, progressive, subsample)
    assert fast is not None
    assert fast == libvips_jpeg(image, quality, optimize, progressive, subsample)


@pytest.mark.parametrize("progressive", [False, True])
def test_noise_at_full_quality_fits_pillows_buffer(progressive: bool) -> None:
    # The most bytes a pixel a JPEG takes: Pillow's own guess (2) is too small for it.
    planes = [pyvips.Image.gaussnoise(1000, 1000, mean=128, sigma=300) for _ in range(3)]
    image = planes[0].bandjoin(planes[1:]).cast("uchar").copy(interpretation="srgb")
    image = image.copy_memory()
    fast = pillow_encode.jpeg(image, 100, True, progressive, False)
    assert fast is not None and len(fast) > 3_000_000
    assert fast == libvips_jpeg(image, 100, True, progressive, False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, bands=st.sampled_from([3, 4]), quality=st.integers(1, 100),
       lossless=st.booleans(), effort=st.integers(0, 6))
def test_webp_is_libvips_bytes(size: tuple[int, int], bands: int, quality: int, lossless: bool,
                               effort: int) -> None:
    image = picture(*size, bands)
    fast = pillow_encode.webp(image, quality, lossless, effort)
    assert fast is not None
    assert fast == bytes(image.webpsave_buffer(Q=quality, lossless=lossless, effort=effort,
                                               keep="none"))


@pytest.mark.parametrize("access", ["random", "sequential", "sequential-unbuffered"])
def test_a_lazy_pipeline_is_computed_first(access: str) -> None:
    # What the engine hands over: a resize not yet run, from a file not yet decoded, read in
    # any of the orders load.py asks libvips for.
    data = (MEDIA / "photo-1200x900.jpg").read_bytes()

    def lazy() -> pyvips.Image:
        return pyvips.Image.jpegload_buffer(data, shrink=2, access=access).resize(0.5)

    assert pillow_encode.jpeg(lazy(), 80, True, False, False) == libvips_jpeg(
        lazy(), 80, True, False, False)
    assert pillow_encode.webp(lazy(), 80, False, 4) == bytes(
        lazy().webpsave_buffer(Q=80, effort=4, keep="none"))


@pytest.mark.parametrize("image", [
    pytest.param(lambda: picture(1001, 1000, 3), id="over 1 MP"),
    pytest.param(lambda: picture(20, 20, 3).cast("ushort"), id="16-bit"),
    pytest.param(lambda: picture(20, 20, 3).copy(interpretation="lab"), id="Lab"),
    pytest.param(lambda: picture(20, 20, 3).colourspace("cmyk"), id="CMYK"),
    pytest.param(lambda: picture(20, 20, 4), id="alpha in JPEG"),
])
def test_jpeg_leaves_other_images_to_libvips(image: Any) -> None:
    assert pillow_encode.jpeg(image(), 80, True, False, False) is None


def stacked(frames: int) -> pyvips.Image:
    """Frames of 20x20 stacked as the engine stacks an animation's."""
    image = picture(20, 20 * frames, 3).copy()
    image.set_type(pyvips.GValue.gint_type, "page-height", 20)
    return image


@pytest.mark.parametrize("image", [
    pytest.param(lambda: picture(1001, 1000, 3), id="over 1 MP"),
    pytest.param(lambda: picture(20, 20, 1), id="grey"),
    pytest.param(lambda: picture(20, 20, 3).cast("ushort"), id="16-bit"),
    pytest.param(lambda: stacked(2), id="frames"),
])
def test_webp_leaves_other_images_to_libvips(image: Any) -> None:
    assert pillow_encode.webp(image(), 80, False, 4) is None


def test_one_frame_is_encoded() -> None:
    assert pillow_encode.webp(stacked(1), 80, False, 4) is not None


class Spy:
    """Counts what pillow_encode made, passing its answers on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[str] = []
        for name in ("jpeg", "webp"):
            real = getattr(pillow_encode, name)
            monkeypatch.setattr(pillow_encode, name, self._wrap(name, real))

    def _wrap(self, name: str, real: Any) -> Any:
        def wrapped(*args: Any) -> bytes | None:
            out = real(*args)
            if out is not None:
                self.made.append(name)
            return out
        return wrapped


@pytest.mark.parametrize("tr", ["w-300,f-jpg", "w-300,f-jpg,q-95", "w-250,f-jpg,pr-true",
                                "w-300,f-webp", "w-640,f-webp,q-60", "w-300,f-jpg,e-grayscale"])
def test_renders_are_unchanged(monkeypatch: pytest.MonkeyPatch, tr: str) -> None:
    config = Config()
    chain = registry.parse(tr, config.transformations)
    options = engine.RenderOptions("", config.images, config.limits)
    data = (MEDIA / "photo-1200x900.jpg").read_bytes()
    spy = Spy(monkeypatch)
    fast = engine.render(data, chain, options).data
    assert spy.made, "the render did not go through Pillow"
    monkeypatch.setattr(pillow_encode, "jpeg", lambda *args: None)
    monkeypatch.setattr(pillow_encode, "webp", lambda *args: None)
    assert fast == engine.render(data, chain, options).data


def test_kept_metadata_goes_to_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    image = picture(40, 30, 3)
    for keep in ("icc", "all"):
        formats.encode(image, "jpg", formats.EncodeOptions(quality=80, keep=keep))
        formats.encode(image, "webp", formats.EncodeOptions(quality=80, keep=keep))
    assert spy.made == []
    formats.encode(image, "jpg", formats.EncodeOptions(quality=80))
    assert spy.made == ["jpeg"]


def test_a_damaged_input_is_still_a_clear_error() -> None:
    # Decoding is lazy: the damage surfaces while Pillow's copy pulls the pixels, as a libvips
    # error (the encoder cannot tell), which the pipeline answers EFORMAT: the input is damaged.
    whole = (MEDIA / "photo-1200x900.jpg").read_bytes()
    data = whole[: len(whole) // 2]
    image = pyvips.Image.jpegload_buffer(data, fail_on="truncated")
    with pytest.raises(pyvips.Error):
        formats.encode(image.resize(0.25), "jpg", formats.EncodeOptions(quality=80))
    config = from_dict({})
    options = engine.RenderOptions("", config.images, config.limits)
    for tr in ("w-300", "w-300,e-grayscale", "f-jpg"):
        with pytest.raises(UnsupportedFormat, match="premature end"):
            engine.render(data, registry.parse(tr, {}), options)
