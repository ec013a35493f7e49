"""Every transformation parameter through the HTTP path, checked on the pixels it returns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pyvips
from imagekitio import ImageKit

from tests.helpers import Pixelport, Response
from tests.media import write_library

pytestmark = pytest.mark.integration

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def pp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pixelport]:
    root = write_library(tmp_path_factory.mktemp("media") / "library")
    server = Pixelport({
        "library": {"dir": str(root)},
        "transformations": {"thumb": "w-50,h-50", "square": "w-80,h-80,c-force"},
        "limits": {"max_frames": 5},
    })
    yield server
    server.stop()


def get(pp: Pixelport, target: str, **headers: str) -> Response:
    response = pp.get(target, {k.replace("_", "-"): v for k, v in headers.items()})
    assert response.status == 200, (target, response.ik_error)
    return response


def image(pp: Pixelport, target: str, **headers: str) -> Any:
    return pyvips.Image.new_from_buffer(get(pp, target, **headers).body, "")


def pixel(img: Any, x: int, y: int) -> tuple[int, ...]:
    return tuple(round(v) for v in img(x, y))


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def failure(pp: Pixelport, target: str) -> Response:
    response = pp.get(target)
    assert response.status >= 400, target
    return response


# --- the size matrix: input size x parameters -> output size, format, alpha ------------------

@pytest.mark.parametrize(("target", "size", "fmt", "alpha"), [
    ("/tr:w-400/photo.jpg", (400, 300), "jpeg", False),
    ("/tr:w-1600/photo.jpg", (1600, 1200), "jpeg", False),
    ("/tr:h-150/small.png", (300, 150), "jpeg", False),      # PNG without alpha → JPEG
    ("/tr:w-200,h-200/photo.jpg", (200, 200), "jpeg", False),
    ("/tr:w-200,h-200,c-maintain_ratio/small.png", (200, 200), "jpeg", False),
    ("/tr:w-200,h-50,c-force/photo.jpg", (200, 50), "jpeg", False),
    ("/tr:w-200,h-200,c-at_max/photo.jpg", (200, 150), "jpeg", False),
    ("/tr:w-1000,h-1000,c-at_max/small.png", (100, 50), "jpeg", False),
    ("/tr:w-1000,h-1000,c-at_max_enlarge/small.png", (1000, 500), "jpeg", False),
    ("/tr:w-200,h-200,c-at_least/photo.jpg", (267, 200), "jpeg", False),
    ("/tr:w-400,h-400,c-at_least/small.png", (800, 400), "jpeg", False),
    ("/tr:w-300,h-300,c-maintain_ratio_no_enlarge/small.png", (50, 50), "jpeg", False),
    ("/tr:w-300,h-300,cm-pad_resize/photo.jpg", (300, 300), "jpeg", False),
    ("/tr:w-300,h-300,cm-pad_resize_no_enlarge/small.png", (300, 300), "jpeg", False),
    ("/tr:w-100,h-100,cm-extract/photo.jpg", (100, 100), "jpeg", False),
    ("/tr:w-300,h-300,cm-pad_extract/small.png", (300, 300), "jpeg", False),
    ("/tr:w-300,h-300,cm-pad_extract_no_shrink/small.png", (300, 300), "jpeg", False),
    ("/tr:w-100/alpha.png", (100, 75), "png", True),
    ("/tr:w-100,h-100/alpha.png", (100, 100), "png", True),
    ("/tr:w-0.25/photo.jpg", (200, 150), "jpeg", False),
    ("/tr:w-iw_div_4,h-ih_div_2/photo.jpg", (200, 300), "jpeg", False),
    ("/tr:w-200,ar-2-1/photo.jpg", (200, 100), "jpeg", False),
    ("/tr:w-100:h-cw_div_2/photo.jpg", (67, 50), "jpeg", False),    # cw: the current width
    ("/tr:w-100:h-iw_div_2/photo.jpg", (533, 400), "jpeg", False),  # iw: the input width
    ("/tr:n-thumb/photo.jpg", (50, 50), "jpeg", False),
    ("/tr:n-square,q-50/photo.jpg", (80, 80), "jpeg", False),
    ("/tr:w-60,f-webp/alpha.png", (60, 45), "webp", True),
    ("/tr:w-60,f-avif/photo.jpg", (60, 45), "heif", False),
    ("/tr:w-60,f-gif/photo.jpg", (60, 45), "gif", None),  # libvips loads GIF as RGBA
    ("/tr:w-60,f-orig/small.png", (60, 30), "png", False),
    ("/tr:w-60,f-jpg/alpha.png", (60, 45), "jpeg", False),
    ("/tr:w-50/pages.tif", (50, 33), "jpeg", False),
    ("/tr:w-200/photo.avif", (200, 150), "jpeg", False),
    ("/tr:w-200/photo.webp", (200, 150), "jpeg", False),
    ("/tr:w-200/photo.tif", (200, 150), "jpeg", False),
    ("/tr:w-200,f-avif/photo.webp", (200, 150), "heif", False),
    ("/tr:if-iw_gt_500,w-100,if-else,w-20,if-end/photo.jpg", (100, 75), "jpeg", False),
    ("/tr:if-iw_gt_500,w-100,if-else,w-20,if-end/small.png", (20, 10), "jpeg", False),
    ("/tr:w-300:if-w_lt_400,h-100,if-end/photo.jpg", (133, 100), "jpeg", False),
    # ImageKit's conditional-transformations page: "`if-h_gte_100_and_h_lte_400_or_ar_lt_4-3`
    # evaluates to true only if the image height is between 100 and 400, or the aspect ratio
    # is less than 4:3" (photo.jpg is exactly 4:3, 600 px high: false; forced to 500x600 its
    # ratio is below 4:3: true).
    ("/tr:if-h_gte_100_and_h_lte_400_or_ar_lt_4-3,w-100,if-else,w-50,if-end/photo.jpg",
     (50, 38), "jpeg", False),
    ("/tr:w-500,h-600,c-force:if-h_gte_100_and_h_lte_400_or_ar_lt_4-3,w-100,if-else,w-50,"
     "if-end/photo.jpg", (100, 120), "jpeg", False),
    ("/tr:if-ar_eq_4-3,w-100,if-else,w-50,if-end/photo.jpg", (100, 75), "jpeg", False),
    ("/tr:if-iar_lt_4-3,w-100,if-else,w-50,if-end/quadrants.png", (100, 100), "jpeg", False),
    # ImageKit's limits page: "Max image transformation dimensions (dimensions greater than
    # this in the transformation string will get ignored) | 65535 px".
    ("/tr:w-70000/photo.jpg", (800, 600), "jpeg", False),
    ("/tr:h-70000,w-100/photo.jpg", (100, 75), "jpeg", False),
    ("/tr:w-70000,h-100/photo.jpg", (133, 100), "jpeg", False),
])
def test_size_matrix(pp: Pixelport, target: str, size: tuple[int, int], fmt: str,
                     alpha: bool | None) -> None:
    img = image(pp, target)
    assert (img.width, img.height) == size
    assert img.get("vips-loader").startswith(fmt)
    assert alpha is None or bool(img.hasalpha()) is alpha


# --- crops take the right region -------------------------------------------------------------

@pytest.mark.parametrize(("tr", "probes"), [
    # quadrants.png: red top-left, green top-right, blue bottom-left, white bottom-right
    ("w-100,h-200,fo-left", [((50, 50), RED), ((50, 150), BLUE)]),
    ("w-100,h-200,fo-right", [((50, 50), GREEN), ((50, 150), WHITE)]),
    ("w-200,h-100,fo-top", [((50, 50), RED), ((150, 50), GREEN)]),
    ("w-200,h-100,fo-bottom", [((50, 50), BLUE), ((150, 50), WHITE)]),
    ("w-100,h-100,cm-extract,fo-top_left", [((50, 50), RED)]),
    ("w-100,h-100,cm-extract,fo-bottom_right", [((50, 50), WHITE)]),
    ("w-50,h-50,cm-extract,x-120,y-10", [((25, 25), GREEN)]),
    ("w-50,h-50,cm-extract,xc-50,yc-150", [((25, 25), BLUE)]),
    ("w-50,h-50,cm-extract,x-iw_sub_60,y-ih_sub_60", [((25, 25), WHITE)]),
    ("w-400,h-200,cm-pad_resize,bg-00FF00", [((10, 100), GREEN), ((150, 50), RED),
                                            ((390, 100), GREEN)]),
    ("w-400,h-200,cm-pad_resize,bg-00FF00,fo-left", [((50, 50), RED), ((390, 100), GREEN)]),
    ("w-300,h-300,cm-pad_extract,bg-0000FF", [((10, 10), BLUE), ((60, 60), RED),
                                             ((240, 240), WHITE)]),
    ("fl-h", [((50, 50), GREEN), ((150, 50), RED)]),
    ("fl-v", [((50, 50), BLUE), ((50, 150), RED)]),
    ("fl-h_v", [((50, 50), WHITE)]),
    ("rt-90", [((150, 50), RED), ((50, 50), BLUE)]),
    ("rt-N90", [((50, 150), RED), ((50, 50), GREEN)]),
    ("rt-180", [((50, 50), WHITE)]),
    ("b-10_00FF00", [((5, 5), GREEN), ((20, 20), RED)]),
    ("e-grayscale", [((50, 50), (127, 127, 127)), ((150, 150), WHITE)]),
    ("cr-00FF00_10_FF0000", [((50, 50), GREEN), ((150, 50), GREEN), ((50, 150), BLUE)]),
    ("cr-000000_10_0000FF", [((50, 150), (0, 0, 0)), ((50, 50), RED)]),
])
def test_regions(pp: Pixelport, tr: str, probes: list[tuple[tuple[int, int], tuple[int, ...]]]
                 ) -> None:
    img = image(pp, f"/tr:{tr},f-png/quadrants.png")
    for (x, y), colour in probes:
        assert near(pixel(img, x, y)[:3], colour, 20), (tr, (x, y), pixel(img, x, y))


def test_trim_removes_the_border(pp: Pixelport) -> None:
    img = image(pp, "/tr:t-true/bordered.png")
    assert (img.width, img.height) == (100, 100)
    assert near(pixel(img, 2, 2), RED)
    untrimmed = image(pp, "/tr:t-false/bordered.png")
    assert untrimmed.width == 140


def test_rotate_arbitrary_angle_grows_and_keeps_alpha(pp: Pixelport) -> None:
    img = image(pp, "/tr:rt-45,f-png/small.png")
    assert img.width > 100 and img.hasalpha() and pixel(img, 0, 0)[3] == 0


def test_border_width_from_the_size_after_resizing(pp: Pixelport) -> None:
    # cw is the width once scaled (100), read before any operation of the step runs.
    img = image(pp, "/tr:w-100,b-cw_div_10_FF0000,f-png/photo.jpg")
    assert img.width == 120 and pixel(img, 2, 2)[:3] == (255, 0, 0)


def test_radius(pp: Pixelport) -> None:
    img = image(pp, "/tr:r-20,f-png/small.png")
    assert pixel(img, 0, 0)[3] == 0 and pixel(img, 50, 25)[3] == 255
    circle = image(pp, "/tr:w-100,h-100,r-max,f-png/photo.jpg")
    assert pixel(circle, 5, 5)[3] == 0 and pixel(circle, 50, 50)[3] == 255
    corners = image(pp, "/tr:r-0_30_0_0,f-png/small.png")
    assert pixel(corners, 0, 0)[3] == 255 and pixel(corners, 99, 0)[3] == 0
    flat = image(pp, "/tr:r-20,bg-00FF00,f-jpg/small.png")
    assert near(pixel(flat, 0, 0), GREEN, 40)


def test_opacity(pp: Pixelport) -> None:
    img = image(pp, "/tr:o-50,f-png/small.png")
    assert img.hasalpha() and abs(pixel(img, 10, 10)[3] - 128) <= 2


@pytest.mark.parametrize("fmt", ["png", "webp", "jpg", "avif"])
@pytest.mark.parametrize("bg", ["blue", "0000FF30"])
def test_opacity_with_background_is_opaque(pp: Pixelport, fmt: str, bg: str) -> None:
    """ImageKit's opacity (o) section: "If a background (`bg`) color is specified along with
    opacity, then that color is blended with the resultant image, leading to a
    non-transparent (opaque) image, but with the `bg` color mixed in. Alpha component, if
    present in the `bg` value, will be ignored." """
    img = image(pp, f"/tr:o-50,bg-{bg},f-{fmt}/quadrants.png")
    assert not img.hasalpha(), (fmt, bg)
    assert near(pixel(img, 50, 50), (128, 0, 128), 20), (fmt, bg, pixel(img, 50, 50))  # red
    assert near(pixel(img, 150, 150), (128, 128, 255), 20)  # white
    # On a half-transparent input as well: the result is opaque all the same.
    translucent = image(pp, f"/tr:o-50,bg-{bg},f-{fmt}/alpha.png")
    assert not translucent.hasalpha()


@pytest.mark.parametrize("tr", ["bg-F00000,f-png", "bg-F00000,f-webp", "bg-F00000",
                                "w-100,bg-F00000,f-png", "w-100:bg-F00000,f-avif"])
def test_background_fills_transparency(pp: Pixelport, tr: str) -> None:
    """ImageKit's background (bg) section, "Specifying a background for a PNG image":
    `logo-white_SJwqB4Nfe.png?tr=bg-F00000` shows the logo on red: the transparent area
    takes the colour, whatever the output format (not only JPEG)."""
    img = image(pp, f"/tr:{tr}/cutout.png")
    right, left = (img.width * 3 // 4, img.height // 2), (img.width // 4, img.height // 2)
    assert not img.hasalpha() or pixel(img, *right)[3] == 255, (tr, pixel(img, *right))
    assert near(pixel(img, *right)[:3], (240, 0, 0), 20), (tr, pixel(img, *right))
    assert near(pixel(img, *left)[:3], GREEN, 20), (tr, pixel(img, *left))


def test_background_with_padding_rotation_and_alpha(pp: Pixelport) -> None:
    # Padding around a transparent PNG and the PNG's own transparency: both the bg colour.
    padded = image(pp, "/tr:w-400,h-100,cm-pad_resize,bg-F00000,f-png/cutout.png")
    for x in (20, 250, 380):
        assert near(pixel(padded, x, 50)[:3], (240, 0, 0), 20), (x, pixel(padded, x, 50))
    assert near(pixel(padded, 150, 50)[:3], GREEN, 20)
    # A translucent bg is laid once, not twice where padding meets transparency.
    translucent = image(pp, "/tr:w-400,h-100,cm-pad_resize,bg-FF000050,f-png/cutout.png")
    assert 120 < pixel(translucent, 20, 50)[3] < 140 and 120 < pixel(translucent, 250, 50)[3] < 140
    assert pixel(translucent, 150, 50)[3] == 255
    rotated = image(pp, "/tr:rt-45,bg-FF000050,f-png/quadrants.png")
    assert 120 < pixel(rotated, 0, 0)[3] < 140


def test_blur_and_sharpen_change_detail(pp: Pixelport) -> None:
    base = image(pp, "/tr:f-png/noise.jpg").deviate()
    assert image(pp, "/tr:bl-10,f-png/noise.jpg").deviate() < base * 0.5
    assert image(pp, "/tr:e-sharpen-80,f-png/noise.jpg").deviate() > base
    assert image(pp, "/tr:e-usm-2-2-2-0,f-png/noise.jpg").deviate() > base


def test_contrast_stretches(pp: Pixelport) -> None:
    img = image(pp, "/tr:e-contrast,f-png/noise.jpg")
    assert img.max() >= 250 and img.min() <= 5


def test_shadow(pp: Pixelport) -> None:
    img = image(pp, "/tr:e-shadow,f-png/small.png")
    assert img.width > 100 and img.hasalpha()
    assert failure(pp, "/tr:w-2000,e-shadow/photo.jpg").ik_error.startswith("ELIMIT")


def test_gradient(pp: Pixelport) -> None:
    img = image(pp, "/tr:e-gradient-ld-180_from-FFFFFF_to-000000,f-png/small.png")
    assert pixel(img, 50, 0)[0] > 240 and pixel(img, 50, 49)[0] < 20
    sideways = image(pp, "/tr:e-gradient-ld-left_from-FF0000_to-0000FF,f-png/small.png")
    assert near(pixel(sideways, 99, 25), RED, 20) and near(pixel(sideways, 0, 25), BLUE, 20)


def test_background_blurred_and_dominant(pp: Pixelport) -> None:
    blurred = image(pp, "/tr:w-300,h-300,cm-pad_resize,bg-blurred/small.png")
    assert (blurred.width, blurred.height) == (300, 300)
    dominant = image(pp, "/tr:w-300,h-300,cm-pad_resize,bg-dominant,f-png/quadrants.png")
    assert dominant.width == 300
    named = image(pp, "/tr:w-300,h-200,cm-pad_resize,bg-green,f-png/quadrants.png")
    assert near(pixel(named, 10, 100), (0, 128, 0))
    translucent = image(pp, "/tr:w-300,h-200,cm-pad_resize,bg-FF000050,f-png/quadrants.png")
    assert translucent.hasalpha() and 120 < pixel(translucent, 10, 100)[3] < 140


# --- focus -----------------------------------------------------------------------------------

def test_face_focus_keeps_the_face(pp: Pixelport) -> None:
    # astronaut-320.jpg: the face is around x 110-170, y 41-101.
    tight = image(pp, "/tr:fo-face/face.jpg")
    assert tight.width < 120 and tight.height < 120
    cover = image(pp, "/tr:w-100,h-300,fo-face/face.jpg")
    assert (cover.width, cover.height) == (100, 300)
    centred = image(pp, "/tr:w-100,h-300/face.jpg")
    assert cover.avg() != centred.avg()  # the face crop is not the centre crop
    zoomed = image(pp, "/tr:w-100,h-100,fo-face,z-0.5/face.jpg")
    assert (zoomed.width, zoomed.height) == (100, 100)


def test_auto_focus(pp: Pixelport) -> None:
    img = image(pp, "/tr:w-100,h-100,fo-auto/face.jpg")
    assert (img.width, img.height) == (100, 100)
    extract = image(pp, "/tr:w-100,h-100,cm-extract,fo-auto/face.jpg")
    assert (extract.width, extract.height) == (100, 100)


# --- client hints and dpr --------------------------------------------------------------------

def test_dimension_limit_still_bounds_the_output(pp: Pixelport) -> None:
    # 65,535 px is still a dimension ImageKit takes; the output pixel limit refuses it.
    assert failure(pp, "/tr:w-65535/photo.jpg").ik_error.startswith("ELIMIT")


def test_dpr_and_content_dpr(pp: Pixelport) -> None:
    response = get(pp, "/tr:w-100,dpr-2/photo.jpg")
    assert response.headers["content-dpr"] == "2"
    assert response.image().width == 200
    hinted = get(pp, "/tr:w-100,dpr-auto/photo.jpg", Sec_CH_DPR="3")
    assert hinted.image().width == 300 and "Sec-CH-DPR" in hinted.headers["vary"]
    assert failure(pp, "/tr:w-100,dpr-6/photo.jpg").ik_error.startswith("ELIMIT")


def test_width_auto_with_dpr_auto(pp: Pixelport) -> None:
    """ImageKit's client-hints page: for `tr:w-auto,dpr-auto` with "Sec-CH-DPR: 2" and
    "Sec-CH-Width: 600", "The browser sends `Sec-CH-Width` request header and also considers
    the DPR of the user-device while calculating the value of `Sec-CH-Width` header.
    Therefore, ImageKit ignores the `Sec-CH-DPR` value and delivers an image of width `600`";
    with "Sec-CH-Width: 212", "ImageKit rounds off `212` to 300 ... Content-DPR = 300/ (212 /
    2) = 2.83 ... ImageKit responds with a `300` pixels wide image and `Content-DPR` response
    header with a value `2.83`"."""
    wide = get(pp, "/tr:w-auto,dpr-auto/photo.jpg", Sec_CH_Width="600", Sec_CH_DPR="2")
    assert wide.image().width == 600 and wide.headers["content-dpr"] == "2"
    rounded = get(pp, "/tr:w-auto,dpr-auto/photo.jpg", Sec_CH_Width="212", Sec_CH_DPR="2")
    assert rounded.image().width == 300 and rounded.headers["content-dpr"] == "2.83"
    assert {"Sec-CH-Width", "Sec-CH-DPR"} <= set(rounded.headers["vary"].split(", "))
    # Another width rounded to the same 300 px is another Content-DPR: not the cached one.
    other = get(pp, "/tr:w-auto,dpr-auto/photo.jpg", Sec_CH_Width="250", Sec_CH_DPR="2")
    assert other.image().width == 300 and other.headers["content-dpr"] == "2.4"
    # w-auto alone: the hint rounded up, no Content-DPR; dpr-auto alone multiplies w.
    alone = get(pp, "/tr:w-auto/photo.jpg", Sec_CH_Width="212", Sec_CH_DPR="2")
    assert alone.image().width == 300 and "content-dpr" not in alone.headers
    extrinsic = get(pp, "/tr:w-100,dpr-auto/photo.jpg", Sec_CH_Width="600", Sec_CH_DPR="2")
    assert extrinsic.image().width == 200 and extrinsic.headers["content-dpr"] == "2"


def test_width_auto(pp: Pixelport) -> None:
    response = get(pp, "/tr:w-auto/photo.jpg", Sec_CH_Width="250")
    assert response.image().width == 300
    assert "Sec-CH-Width" in response.headers["vary"]
    assert get(pp, "/tr:w-auto/photo.jpg").image().width == 800


# --- output ----------------------------------------------------------------------------------

def test_progressive(pp: Pixelport) -> None:
    assert image(pp, "/tr:pr-true,f-jpg/photo.jpg").get("interlaced") == 1
    plain = image(pp, "/tr:f-jpg/photo.jpg")
    assert not plain.get_typeof("interlaced") or plain.get("interlaced") == 0


def test_lossless_webp(pp: Pixelport) -> None:
    source = image(pp, "/tr:f-png/noise.jpg")
    lossless = image(pp, "/tr:f-webp,lo-true/noise.jpg")
    assert (source - lossless).abs().max() == 0


def test_metadata_stripped_unless_asked(pp: Pixelport) -> None:
    stripped = image(pp, "/tr:f-jpg/rotated.jpg")
    assert not stripped.get_typeof("exif-data")
    kept = image(pp, "/tr:f-jpg,md-true/rotated.jpg")
    assert kept.get_typeof("exif-data")


def test_colour_profile(pp: Pixelport) -> None:
    converted = image(pp, "/tr:f-png/p3.jpg")
    assert not converted.get_typeof("icc-profile-data")
    assert near(pixel(converted, 5, 5), GREEN, 8)  # P3 green back in sRGB
    kept = image(pp, "/tr:f-png,cp-true/p3.jpg")
    assert kept.get_typeof("icc-profile-data")


def test_exif_orientation_is_applied(pp: Pixelport) -> None:
    img = image(pp, "/tr:f-png/rotated.jpg")
    assert (img.width, img.height) == (100, 300)
    assert image(pp, "/tr:w-50/rotated.jpg").height == 150
    # Shrink-on-load to exactly the target (w-100, w-200), with a resize after it (w-150),
    # a full decode (w-300) and no resize at all: the pixels are turned every time.
    for target in ("/tr:w-100/rotated-halves.jpg", "/tr:w-200/rotated-halves.jpg",
                   "/tr:w-150/rotated-halves.jpg", "/tr:w-300,f-png/rotated-halves.jpg",
                   "/rotated-halves.jpg"):
        img = image(pp, target)
        assert img.width == img.height
        assert near(pixel(img, img.width * 3 // 4, img.height // 8), (255, 0, 0), 40)
        assert near(pixel(img, img.width * 3 // 4, img.height * 7 // 8), (0, 0, 255), 40)


def test_best_format_and_vary(pp: Pixelport) -> None:
    response = get(pp, "/photo.jpg", Accept="image/webp,*/*")
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["vary"] == "Accept"
    assert get(pp, "/photo.jpg?tr=f-jpg").headers.get("vary") is None


def test_webp_size_limit(pp: Pixelport) -> None:
    response = failure(pp, "/tr:w-20000,h-10,c-force,f-webp/small.png")
    assert response.status == 400 and response.ik_error.startswith("ELIMIT")


# --- animation, pages, SVG -------------------------------------------------------------------

def test_animated_gif_stays_animated(pp: Pixelport) -> None:
    response = get(pp, "/tr:w-60/anim.gif")
    img = pyvips.Image.new_from_buffer(response.body, "", n=-1)
    assert response.headers["content-type"] == "image/gif"
    assert img.get("n-pages") == 3 and img.get("page-height") == 40 and img.width == 60
    webp = get(pp, "/tr:w-60,h-60/anim.gif", Accept="image/webp")
    animated = pyvips.Image.new_from_buffer(webp.body, "", n=-1)
    assert webp.headers["content-type"] == "image/webp" and animated.get("n-pages") == 3
    assert animated.get("page-height") == 60
    first = image(pp, "/tr:w-60,f-png/anim.gif")
    assert first.height == 40
    assert not first.get_typeof("n-pages") or first.get("n-pages") == 1


def test_animated_webp_stays_animated(pp: Pixelport) -> None:
    response = get(pp, "/tr:w-45/anim.webp", Accept="image/webp")
    img = pyvips.Image.new_from_buffer(response.body, "", n=-1)
    assert img.get("n-pages") == 4 and img.width == 45 and img.get("page-height") == 30


def test_frame_cap(pp: Pixelport, tmp_path: Path) -> None:
    from tests.media import animated_gif
    root = tmp_path / "lib"
    root.mkdir()
    (root / "long.gif").write_bytes(animated_gif(frames=8, width=10, height=10))
    small = Pixelport({"library": {"dir": str(root)}, "limits": {"max_frames": 5}})
    try:
        response = small.get("/tr:w-5/long.gif")
        assert response.status == 400 and response.ik_error.startswith("ELIMIT")
    finally:
        small.stop()


def test_page_selection(pp: Pixelport) -> None:
    first = image(pp, "/tr:pg-1,f-png/pages.tif")
    second = image(pp, "/tr:pg-2,f-png/pages.tif")
    assert near(pixel(first, 5, 5), RED) and near(pixel(second, 5, 5), BLUE)
    frame = image(pp, "/tr:pg-2,f-png/anim.gif")
    assert near(pixel(frame, 5, 5), GREEN)
    response = failure(pp, "/tr:pg-9/pages.tif")
    assert response.ik_error.startswith("EINVALID")


def test_svg_stays_svg_unless_rasterised(pp: Pixelport) -> None:
    response = get(pp, "/tr:w-300/logo.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
    raster = image(pp, "/tr:w-300,f-png/logo.svg")
    assert (raster.width, raster.height) == (300, 150)
    assert near(pixel(raster, 150, 75)[:3], BLUE)


# --- named, default image, refusals ----------------------------------------------------------

def test_default_image(pp: Pixelport) -> None:
    img = image(pp, "/tr:w-40,di-default.png/missing/file.jpg")
    assert (img.width, img.height) == (40, 40)
    response = failure(pp, "/tr:w-40,di-nothere.png/missing.jpg")
    assert response.status == 404 and response.ik_error.startswith("ENOENT")


def test_unknown_named_transformation(pp: Pixelport) -> None:
    response = failure(pp, "/tr:n-nope/photo.jpg")
    assert response.status == 400 and "nope" in response.ik_error


@pytest.mark.parametrize("tr", ["e-bgremove", "e-removedotbg", "e-upscale", "fo-person",
                                "bg-genfill", "e-distort-a-10"])
def test_unsupported_parameters_answer_400(pp: Pixelport, tr: str) -> None:
    response = failure(pp, f"/tr:{tr}/photo.jpg")
    assert response.status == 400 and response.ik_error.startswith("EINVALID")
    assert "not supported" in response.ik_error


# --- ImageKit's own transformation builder, one family at a time -----------------------------

@pytest.mark.parametrize(("transformation", "check"), [
    ({"width": 120, "height": 60, "crop": "force"}, lambda i: (i.width, i.height) == (120, 60)),
    ({"width": 100, "aspect_ratio": "4-3"}, lambda i: (i.width, i.height) == (100, 75)),
    ({"width": 100, "height": 100, "crop_mode": "pad_resize", "background": "FF0000"},
     lambda i: near(pixel(i, 50, 2), RED, 30)),
    ({"width": 100, "height": 100, "crop_mode": "extract", "focus": "bottom_right"},
     lambda i: (i.width, i.height) == (100, 100)),
    ({"width": 50, "dpr": 2}, lambda i: i.width == 100),
    ({"width": 100, "quality": 30, "format": "png"}, lambda i: i.get("vips-loader")
     .startswith("png")),
    ({"width": 100, "rotation": 90}, lambda i: (i.width, i.height) == (75, 100)),
    ({"width": 100, "flip": "h"}, lambda i: i.width == 100),
    ({"width": 100, "radius": 10, "format": "png"}, lambda i: pixel(i, 0, 0)[3] == 0),
    ({"width": 100, "border": "5_FF0000"}, lambda i: i.width == 110),
    ({"width": 100, "blur": 10}, lambda i: i.width == 100),
    ({"width": 100, "grayscale": True}, lambda i: len(set(pixel(i, 50, 30)[:3])) == 1),
    ({"width": 100, "trim": True}, lambda i: i.width == 100),
    ({"width": 100, "progressive": True, "format": "jpg"}, lambda i: i.get("interlaced") == 1),
    ({"width": 100, "opacity": 50, "format": "png"}, lambda i: i.hasalpha()),
    ({"width": 100, "named": "thumb"}, lambda i: (i.width, i.height) == (50, 50)),
    ({"width": "iw_div_4"}, lambda i: i.width == 200),
])
def test_sdk_transformation_builder(pp: Pixelport, transformation: dict[str, Any],
                                    check: Any) -> None:
    client = ImageKit(private_key="private_test_key")
    tr = client.helper.build_transformation_string([transformation])
    assert tr, transformation
    assert check(image(pp, f"/tr:{tr}/photo.jpg")), (tr, transformation)


# --- every transformation ImageKit's Python SDK can emit: served, or 400 naming it ------------

SDK_VALUES: dict[str, Any] = {
    "width": 100, "height": 80, "aspect_ratio": "4-3", "background": "FF0000", "border": "2_FF0000",
    "crop": "at_max", "crop_mode": "pad_resize", "dpr": 2, "focus": "top", "quality": 50,
    "x": 10, "x_center": 50, "y": 10, "y_center": 50, "format": "png", "video_codec": "h264",
    "audio_codec": "aac", "radius": 10, "rotation": 90, "blur": 5, "named": "thumb",
    "default_image": "default.png", "flip": "h", "original": True, "start_offset": 1,
    "end_offset": 2, "duration": 1, "streaming_resolutions": ["240"], "grayscale": True,
    "ai_upscale": True, "ai_retouch": True, "ai_variation": True, "ai_drop_shadow": True,
    "ai_change_background": "prompt-sky", "ai_remove_background": True,
    "ai_remove_background_external": True, "ai_edit": "prompt-hat", "contrast_stretch": True,
    "shadow": True, "sharpen": 5, "unsharp_mask": "2-2-0.8-0.024", "gradient": True,
    "color_replace": "FF0000", "colorize": "red", "distort": "a-10", "progressive": True,
    "lossless": True, "color_profile": True, "metadata": True, "density": 300, "opacity": 50,
    "trim": True, "zoom": 0.5, "page": 2, "font_size": 20, "font_family": "Lato",
    "font_color": "FF0000", "inner_alignment": "left", "padding": 10, "alpha": 5,
    "typography": "b", "line_height": 20, "font_outline": "2_red", "font_shadow": "red_2",
    "color": "red",
}


def test_every_sdk_transformation_is_served_or_named(pp: Pixelport) -> None:
    """docs/transformations.md promises: every transformation ImageKit's SDKs can emit is
    either implemented or answers 400 naming it."""
    from imagekitio.lib.helper import SUPPORTED_TRANSFORMS

    client = ImageKit(private_key="private_test_key")
    missing = sorted(set(SUPPORTED_TRANSFORMS) - set(SDK_VALUES) - {"raw"})
    assert missing == [], f"new SDK transformations to cover: {missing}"
    served, refused = [], []
    for name, value in SDK_VALUES.items():
        tr = client.helper.build_transformation_string([{name: value}])  # type: ignore[list-item]
        response = pp.get(f"/tr:{tr}/pages.tif" if name == "page" else f"/tr:{tr}/photo.jpg")
        if response.status == 200:
            served.append(name)
            continue
        key = tr.split("-", 1)[0] if not tr.startswith("e-") else tr.split("-", 2)[1]
        assert response.status == 400, (name, tr, response.status, response.ik_error)
        assert key in response.ik_error, (name, tr, response.ik_error)
        refused.append(name)
    # What the docs list as left (docs/transformations.md, "Not supported yet").
    assert set(refused) == {
        "video_codec", "audio_codec", "start_offset", "end_offset", "duration",
        "streaming_resolutions", "ai_upscale", "ai_retouch", "ai_variation", "ai_drop_shadow",
        "ai_change_background", "ai_remove_background", "ai_remove_background_external",
        "ai_edit", "colorize", "distort", "density", "font_size", "font_family", "font_color",
        "inner_alignment", "padding", "alpha", "typography", "line_height", "font_outline",
        "font_shadow", "color"}, refused
