"""pixelport.library.metadata: probe and ImageKit's metadata object, on generated files."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips
from PIL import ExifTags, Image, ImageCms

from pixelport.library.metadata import Probe, probe, quick_probe, read_metadata


def _photo(width: int = 64, height: int = 48) -> Image.Image:
    """A small RGB picture with structure in both directions."""
    x = np.linspace(0, 255, width)[np.newaxis, :]
    y = np.linspace(0, 255, height)[:, np.newaxis]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _smooth_random(width: int, height: int, seed: int = 7) -> Image.Image:
    """A smooth picture from seeded noise (rich in low frequencies), the same at any size."""
    noise = np.random.default_rng(seed).integers(0, 256, (6, 8), dtype=np.uint8)
    return Image.fromarray(noise, "L").resize((width, height), Image.Resampling.BICUBIC)


def _gradient(size: int = 256) -> Image.Image:
    row = np.linspace(0, 255, size, dtype=np.float64).astype(np.uint8)
    return Image.fromarray(np.tile(row, (size, 1)), "L")


def _checkerboard(size: int = 256, cells: int = 4) -> Image.Image:
    # Four cells a side keep its energy inside the hash's 8x8 lowest frequencies.
    side = size // cells
    index = np.arange(size) // side
    board = ((index[:, np.newaxis] + index[np.newaxis, :]) % 2 * 255).astype(np.uint8)
    return Image.fromarray(board, "L")


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _jpeg(tmp_path: Path, name: str = "photo.jpg", **save: Any) -> Path:
    path = tmp_path / name
    _photo().save(path, "JPEG", **save)
    return path


# -- probe --------------------------------------------------------------------------------

def test_probe_jpeg(tmp_path: Path) -> None:
    assert probe(_jpeg(tmp_path)) == Probe(64, 48, False, "jpg", "image/jpeg", "image")


def _jpeg_variants(tmp_path: Path) -> dict[str, Path]:
    """Sound, odd and broken JPEGs (and files that only look like one)."""
    made: dict[str, Path] = {}
    photo = _photo(120, 80)

    def save(name: str, image: Image.Image, **options: Any) -> None:
        made[name] = tmp_path / name
        image.save(made[name], "JPEG", **options)

    save("rgb.jpg", photo)
    save("grey.jpg", photo.convert("L"))
    save("cmyk.jpg", photo.convert("CMYK"))
    save("progressive.jpg", photo, progressive=True)
    save("subsampled.jpg", photo, subsampling=0, quality=95)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    save("rotated.jpg", photo, exif=exif.tobytes())
    save("profiled.jpg", photo, icc_profile=ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes())
    whole = made["rgb.jpg"].read_bytes()
    rest = {"cut-300.jpg": whole[:300], "cut-20.jpg": whole[:20], "magic-only.jpg": whole[:3],
            "half.jpg": whole[: len(whole) // 2],
            "noise.jpg": b"\xff\xd8\xff" + random.Random(3).randbytes(4000)}
    png = tmp_path / "real.png"
    photo.save(png)
    rest["png-named.jpg"] = png.read_bytes()
    # A start-of-frame claiming 0 x 0 pixels.
    sof = whole.index(b"\xff\xc0")
    rest["zero-size.jpg"] = whole[: sof + 5] + b"\x00\x00\x00\x00" + whole[sof + 9:]
    for name, data in rest.items():
        made[name] = tmp_path / name
        made[name].write_bytes(data)
    return made


def test_quick_probe_agrees_with_libvips(tmp_path: Path) -> None:
    answered = set()
    for name, path in _jpeg_variants(tmp_path).items():
        quick = quick_probe(path)
        if quick is not None:  # None: libvips' probe answers instead
            answered.add(name)
            assert quick == probe(path), name
    # The fast path takes every sound JPEG (so the test above compared something).
    assert {"rgb.jpg", "grey.jpg", "cmyk.jpg", "progressive.jpg", "rotated.jpg",
            "profiled.jpg", "subsampled.jpg"} <= answered
    assert not answered & {"noise.jpg", "magic-only.jpg", "png-named.jpg", "cut-20.jpg"}


def test_quick_probe_on_the_sample_photo() -> None:
    sample = Path(__file__).parent / "data" / "astronaut-320.jpg"
    assert quick_probe(sample) == probe(sample)


def test_probe_png_with_alpha(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    pyvips.Image.black(30, 20).new_from_image([10, 20, 30, 128]).copy(
        interpretation="srgb").cast("uchar").pngsave(str(path))
    assert probe(path) == Probe(30, 20, True, "png", "image/png", "image")


def test_probe_webp_and_gif(tmp_path: Path) -> None:
    webp, gif = tmp_path / "a.webp", tmp_path / "b.gif"
    _photo().save(webp, "WEBP")
    _photo(40, 30).save(gif, "GIF")
    assert probe(webp) == Probe(64, 48, False, "webp", "image/webp", "image")
    found = probe(gif)
    assert (found.width, found.height, found.format, found.mime, found.file_type) == (
        40, 30, "gif", "image/gif", "image")


def test_probe_svg(tmp_path: Path) -> None:
    path = tmp_path / "logo.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">'
                    '<rect width="40" height="30" fill="red"/></svg>')
    found = probe(path)
    assert (found.width, found.height, found.format, found.mime, found.file_type) == (
        40, 30, "svg", "image/svg+xml", "image")


def test_probe_non_images(tmp_path: Path) -> None:
    text = tmp_path / "notes.TXT"
    text.write_text("hello\n")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    bare = tmp_path / "README"
    bare.write_bytes(b"\x01\x02")
    assert probe(text) == Probe(None, None, False, "txt", "text/plain", "non-image")
    assert probe(video) == Probe(None, None, False, "mp4", "video/mp4", "non-image")
    assert probe(bare) == Probe(None, None, False, "", "application/octet-stream", "non-image")


def test_probe_under_another_name(tmp_path: Path) -> None:
    # Uploads are probed as temporary `.part` files; the upload's name gives the extension.
    part = tmp_path / "0123abcd.part"
    part.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    assert probe(part, "clip.MOV") == Probe(None, None, False, "mov", "video/quicktime",
                                            "non-image")
    assert probe(part).format == "part"
    image = _jpeg(tmp_path, "photo.part")
    assert probe(image, "photo.png").format == "jpg"  # content wins over the name


# -- read_metadata --------------------------------------------------------------------------

@pytest.mark.parametrize("quality", [60, 90])
def test_jpeg_quality_estimate(tmp_path: Path, quality: int) -> None:
    meta = read_metadata(_jpeg(tmp_path, quality=quality))
    assert abs(meta["quality"] - quality) <= 3


def test_image_metadata_shape(tmp_path: Path) -> None:
    path = _jpeg(tmp_path)
    meta = read_metadata(path)
    assert list(meta) == ["height", "width", "size", "format", "hasColorProfile", "quality",
                          "density", "hasTransparency", "exif", "pHash"]
    assert (meta["width"], meta["height"], meta["format"]) == (64, 48, "jpg")
    assert meta["size"] == path.stat().st_size
    assert meta["hasTransparency"] is False
    assert meta["exif"] == {}


def test_png_has_no_quality_but_transparency(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    _photo().convert("RGBA").save(path)
    meta = read_metadata(path)
    assert (meta["quality"], meta["hasTransparency"], meta["format"]) == (0, True, "png")


def test_density(tmp_path: Path) -> None:
    assert read_metadata(_jpeg(tmp_path, "dpi.jpg", dpi=(300, 300)))["density"] == 300
    assert read_metadata(_jpeg(tmp_path, "plain.jpg"))["density"] == 72
    # GIF and WebP state no resolution (libvips then says 1 pixel/mm).
    gif, webp = tmp_path / "a.gif", tmp_path / "a.webp"
    _photo().save(gif)
    _photo().save(webp)
    assert read_metadata(gif)["density"] == read_metadata(webp)["density"] == 72


def test_bracketed_name_is_not_read_as_options(tmp_path: Path) -> None:
    plain = _jpeg(tmp_path, "shot.jpg")
    bracketed = tmp_path / "shot.jpg[shrink=2]"
    bracketed.write_bytes(plain.read_bytes())
    assert probe(bracketed).width == 64
    expected = read_metadata(plain)
    assert read_metadata(bracketed) == expected and expected["pHash"]


def test_colour_profile(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert read_metadata(_jpeg(tmp_path, "icc.jpg", icc_profile=icc))["hasColorProfile"] is True
    assert read_metadata(_jpeg(tmp_path, "none.jpg"))["hasColorProfile"] is False


def test_exif_groups(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "Canon EOS 5D"
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.DateTime] = "2024:05:02 08:00:00"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:01 10:20:30"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifVersion] = b"0232"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.5)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x02\x00\x00"
    meta = read_metadata(_jpeg(tmp_path, exif=exif.tobytes()))

    groups = meta["exif"]
    assert set(groups) == {"image", "thumbnail", "exif", "gps", "interoperability", "makernote"}
    image = groups["image"]
    assert (image["Make"], image["Model"], image["Orientation"]) == ("Canon", "Canon EOS 5D", 6)
    assert image["ModifyDate"] == "2024:05:02 08:00:00"  # exif-parser's name for DateTime
    assert isinstance(image["ExifOffset"], int) and isinstance(image["GPSInfo"], int)
    assert groups["exif"]["DateTimeOriginal"] == "2024:05:01 10:20:30"
    assert groups["exif"]["ExifVersion"] == "0232"
    assert groups["gps"]["GPSLatitudeRef"] == "N"
    assert groups["gps"]["GPSLatitude"] == [52, 22, 12.5]
    assert groups["gps"]["GPSVersionID"] == [2, 2, 0, 0]
    assert groups["makernote"] == {}
    json.dumps(meta, allow_nan=False)


def test_decompression_bomb_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    path = _jpeg(tmp_path, exif=exif.tobytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    meta = read_metadata(path)
    assert (meta["exif"], meta["quality"], meta["width"]) == ({}, 0, 64)


def test_phash(tmp_path: Path) -> None:
    large, small = tmp_path / "large.jpg", tmp_path / "small.png"
    _smooth_random(400, 300).save(large, quality=90)
    _smooth_random(200, 150).save(small)
    other, board, gradient = tmp_path / "other.png", tmp_path / "board.png", tmp_path / "g.png"
    _smooth_random(400, 300, seed=8).save(other)
    _checkerboard().save(board)
    _gradient().save(gradient)
    hashes = {p.name: read_metadata(p)["pHash"]
              for p in (large, small, other, board, gradient)}
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in hashes.values())
    assert _hamming(hashes["large.jpg"], hashes["small.png"]) <= 4
    assert _hamming(hashes["large.jpg"], hashes["other.png"]) >= 10
    assert _hamming(hashes["large.jpg"], hashes["board.png"]) >= 10
    # Both have nearly all their low-frequency DCT terms at zero (so their bits are mostly
    # 0 below the median): distinct, but not far apart.
    assert hashes["board.png"] != hashes["g.png"]


# -- malformed input ----------------------------------------------------------------------

def _never_raises(path: Path) -> dict[str, Any]:
    probe(path)
    meta = read_metadata(path)
    json.dumps(meta, allow_nan=False)
    return meta


def test_truncated_jpeg(tmp_path: Path) -> None:
    whole = _jpeg(tmp_path, "whole.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:300])
    assert _never_raises(cut)["format"] == "jpg"


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(random.Random(1).randbytes(4096))
    assert _never_raises(path) == {"size": 4096, "format": "jpg", "hasColorProfile": False,
                                   "hasTransparency": False, "exif": {}}
    assert probe(path).file_type == "non-image"


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_block(tmp_path: Path) -> None:
    # A TIFF header whose directory offsets point past the block.
    garbage = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + random.Random(2).randbytes(200)
    meta = _never_raises(_jpeg(tmp_path, exif=garbage))
    assert isinstance(meta["exif"], dict)
