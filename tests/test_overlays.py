"""Layers (l-image, l-text, solid blocks; nested) through the HTTP path, checked by pixels.

Bases are solid colours so every expected colour at a computed position is exact; the layer
files live in the media library (and one behind a web origin) as any original does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st
from imagekitio import ImageKit

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.errors import PixelportError
from pixelport.transform import engine, registry
from pixelport.transform import text as text_layers
from tests.helpers import Pixelport, Response

pytestmark = pytest.mark.integration

SPECIAL_B64 = base64.b64encode("logos/special dir/logo (1)+ü.png".encode()).decode()
FONTS = Path(text_layers.__file__).with_name("fonts")
RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def solid(width: int, height: int, colour: tuple[int, ...], fmt: str = ".png") -> bytes:
    image = pyvips.Image.black(width, height).new_from_image(list(colour)).cast("uchar")
    interpretation = "srgb" if len(colour) >= 3 else "b-w"
    return bytes(image.copy(interpretation=interpretation).write_to_buffer(fmt))


def framed_logo() -> bytes:
    """A 40x40 green square in a 10-px transparent frame (60x60): trimmed to 40x40."""
    square = pyvips.Image.black(40, 40).new_from_image([0, 255, 0, 255]).cast("uchar")
    framed = square.embed(10, 10, 60, 60, extend="background", background=[0, 0, 0, 0])
    return bytes(framed.copy(interpretation="srgb").pngsave_buffer())


BASE_PNG = solid(120, 80, BLUE)
RENDER_OPTIONS = engine.RenderOptions(
    "image/png", ImagesConfig(), LimitsConfig(max_output_pixels=4_000_000),
    layer_files={"logo.png": framed_logo()})


@pytest.fixture(scope="module")
def pp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pixelport]:
    root = tmp_path_factory.mktemp("media") / "library"
    (root / "logos" / "special dir").mkdir(parents=True)
    (root / "fonts").mkdir()
    (root / "blue.png").write_bytes(solid(300, 200, BLUE))
    (root / "white.png").write_bytes(solid(400, 200, WHITE))
    (root / "logo.png").write_bytes(framed_logo())
    (root / "logos" / "special dir" / "logo (1)+ü.png").write_bytes(solid(30, 30, GREEN))
    (root / "big.png").write_bytes(solid(2000, 1000, RED))
    (root / "fonts" / "mono.ttf").write_bytes((FONTS / "DejaVuSansMono.ttf").read_bytes())
    (root / "notes.txt").write_bytes(b"not an image")
    server = Pixelport({"library": {"dir": str(root)},
                        "limits": {"max_input_pixels": 1_500_000}})
    yield server
    server.stop()


def get(pp: Pixelport, target: str) -> Response:
    response = pp.get(quote(target, safe="/:,@=-_.~!$&'()*+;?%"))
    assert response.status == 200, (target, response.status, response.ik_error)
    return response


def image(pp: Pixelport, target: str) -> Any:
    return pyvips.Image.new_from_buffer(get(pp, target).body, "")


def pixel(img: Any, x: int, y: int) -> tuple[int, ...]:
    return tuple(round(v) for v in img(x, y))


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def failure(pp: Pixelport, target: str, status: int = 400) -> Response:
    response = pp.get(quote(target, safe="/:,@=-_.~!$&'()*+;?%"))
    assert response.status == status, (target, response.status, response.ik_error)
    return response


# --- image layers: position, trimming, size, expressions -------------------------------------

@pytest.mark.parametrize(("tr", "inside", "outside"), [
    # lx/ly: the layer's top-left corner; trimmed to its 40x40 green square.
    ("l-image,i-logo.png,lx-10,ly-20,l-end", (12, 22), (52, 22)),
    # N: counted from the opposite edge (N0: flush right/bottom).
    ("l-image,i-logo.png,lx-N0,ly-N0,l-end", (299, 199), (259, 159)),
    ("l-image,i-logo.png,lx-N10,ly-5,l-end", (289, 6), (291, 6)),
    # lfo (default centre) when lx/ly are not set.
    ("l-image,i-logo.png,l-end", (150, 100), (125, 100)),
    ("l-image,i-logo.png,lfo-bottom_left,l-end", (1, 198), (41, 198)),
    # lxc/lyc: where the layer's centre goes.
    ("l-image,i-logo.png,lxc-50,lyc-50,l-end", (31, 31), (29, 31)),
    # lap: the base's anchor the offsets count from.
    ("l-image,i-logo.png,lap-bottom_right,lx-5,ly-5,l-end", (294, 194), (296, 194)),
    # Expressions with the base's (bw, bh) and the layer's (cw, ch) sizes.
    ("l-image,i-logo.png,lx-bw_sub_cw_sub_20,ly-bh_div_2,l-end", (279, 101), (281, 101)),
    # The layer's own chain: w-20 makes it 20x20.
    ("l-image,i-logo.png,w-20,lx-0,ly-0,l-end", (19, 19), (21, 5)),
    # t-false keeps the frame: the square starts 10 px in.
    ("l-image,i-logo.png,t-false,lx-0,ly-0,l-end", (11, 11), (9, 9)),
    # Layer paths: '@@' for '/', and the SDK's base64 form.
    ("l-image,i-logos@@special dir@@logo (1)+ü.png,lx-0,ly-0,l-end", (29, 29), (31, 31)),
    (f"l-image,ie-{quote(SPECIAL_B64, safe='')},lx-0,ly-0,l-end", (29, 29), (31, 31)),
])
def test_image_layer_positions(pp: Pixelport, tr: str, inside: tuple[int, int],
                               outside: tuple[int, int]) -> None:
    img = image(pp, f"/tr:{tr},f-png/blue.png")
    assert (img.width, img.height) == (300, 200)
    assert near(pixel(img, *inside), GREEN), (tr, pixel(img, *inside))
    assert near(pixel(img, *outside), BLUE), (tr, pixel(img, *outside))


def test_layer_goes_on_the_resized_base_of_its_step(pp: Pixelport) -> None:
    img = image(pp, "/tr:w-150,h-100,c-force,l-image,i-logo.png,lx-N0,ly-N0,l-end,f-png/blue.png")
    assert (img.width, img.height) == (150, 100)
    assert near(pixel(img, 149, 99), GREEN) and near(pixel(img, 109, 59), BLUE)
    # In a later step, the layer is scaled with the rest by that step.
    img = image(pp, "/tr:l-image,i-logo.png,lx-0,ly-0,l-end:w-150,f-png/blue.png")
    assert near(pixel(img, 15, 15), GREEN) and near(pixel(img, 25, 25), BLUE)


# --- solid blocks, opacity, blend modes, nesting ----------------------------------------------

def test_solid_block_size_colour_and_default_size(pp: Pixelport) -> None:
    img = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,w-100,h-50,lfo-bottom_right,l-end,"
                    "f-png/blue.png")
    assert near(pixel(img, 201, 151), RED) and near(pixel(img, 199, 149), BLUE)
    whole = image(pp, "/tr:l-image,i-ik_canvas,bg-00FF00,l-end,f-png/blue.png")
    assert near(pixel(whole, 0, 0), GREEN) and near(pixel(whole, 299, 199), GREEN)
    half = image(pp, "/tr:l-image,i-ik_canvas,bg-red,w-bw_mul_0.5,h-bh,lx-0,ly-0,l-end,"
                     "f-png/blue.png")
    assert near(pixel(half, 149, 100), RED) and near(pixel(half, 151, 100), BLUE)


def test_layer_opacity_blends(pp: Pixelport) -> None:
    img = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,o-50,l-end,f-png/blue.png")
    assert near(pixel(img, 150, 100), (128, 0, 127), 3)
    alpha = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,al-5,l-end,f-png/blue.png")
    assert near(pixel(alpha, 150, 100), (128, 0, 127), 3)


def test_blend_modes(pp: Pixelport) -> None:
    multiply = image(pp, "/tr:l-image,i-ik_canvas,bg-808080,lm-multiply,l-end,f-png/white.png")
    assert near(pixel(multiply, 10, 10), (128, 128, 128), 3)
    cutout = image(pp, "/tr:l-image,i-ik_canvas,bg-000000,w-100,h-100,lx-0,ly-0,lm-cutout,"
                       "l-end,f-png/blue.png")
    assert cutout.bands == 4
    assert pixel(cutout, 50, 50)[3] == 0 and pixel(cutout, 150, 50) == (*BLUE, 255)
    cutter = image(pp, "/tr:l-image,i-ik_canvas,bg-000000,w-100,h-100,lx-0,ly-0,lm-cutter,"
                       "l-end,f-png/blue.png")
    assert pixel(cutter, 50, 50) == (*BLUE, 255) and pixel(cutter, 150, 50)[3] == 0


def test_displace_moves_base_pixels_by_the_layers_red_band(pp: Pixelport) -> None:
    # A base half red (left), half blue; a layer all red=255 shifts pixels 20 px leftwards
    # reading: each output pixel samples its x + 20 -> the red/blue edge moves left by 20.
    plain = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,w-200,h-200,lx-0,ly-0,l-end,"
                      "f-png/white.png")
    assert near(pixel(plain, 199, 10), RED) and near(pixel(plain, 201, 10), WHITE)
    moved = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,w-200,h-200,lx-0,ly-0,l-end:"
                      "l-image,i-ik_canvas,bg-FF8080,x-20,lm-displace,l-end,f-png/white.png")
    assert near(pixel(moved, 170, 10), RED) and near(pixel(moved, 185, 10), WHITE)
    response = failure(pp, "/tr:l-image,i-ik_canvas,bg-FF8080,lm-displace,l-end/white.png")
    assert "x-" in response.ik_error


def test_nested_layers(pp: Pixelport) -> None:
    tr = ("l-image,i-ik_canvas,bg-FF0000,w-100,h-100,lx-50,ly-50,"
          "l-image,i-ik_canvas,bg-00FF00,w-bw_div_10,h-10,lx-N0,ly-0,l-end,l-end")
    img = image(pp, f"/tr:{tr},f-png/blue.png")
    assert near(pixel(img, 145, 55), GREEN)  # the inner block, flush right in the red one
    assert near(pixel(img, 60, 60), RED) and near(pixel(img, 20, 20), BLUE)
    three = ("l-image,i-ik_canvas,bg-FF0000,w-90,h-90,lx-0,ly-0,"
             "l-image,i-ik_canvas,bg-00FF00,w-60,h-60,lx-0,ly-0,"
             "l-image,i-ik_canvas,bg-0000FF,w-30,h-30,lx-0,ly-0,l-end,l-end,l-end")
    deep = image(pp, f"/tr:{three},f-png/white.png")
    assert [near(pixel(deep, x, x), c) for x, c in
            [(5, BLUE), (45, GREEN), (75, RED), (95, WHITE)]] == [True] * 4


def test_chained_steps_inside_a_layer(pp: Pixelport) -> None:
    # The SDK joins a layer's steps with ':' inside l-…,l-end; rt-90 turns the 40x20 block.
    img = image(pp, "/tr:l-image,i-ik_canvas,bg-FF0000,w-40,h-20,lx-0,ly-0,r-0:rt-90,l-end,"
                    "f-png/blue.png")
    assert near(pixel(img, 10, 35), RED) and near(pixel(img, 30, 5), BLUE)


# --- text layers ------------------------------------------------------------------------------

def ink(img: Any, colour: tuple[int, int, int]) -> int:
    """How many pixels are within 60 of `colour`."""
    rgb = img.extract_band(0, n=3).cast("int")
    distance = ((rgb - list(colour)) ** 2).bandmean()
    return round((distance < 1200).avg() / 255 * img.width * img.height)


def test_text_layer_draws_its_text_in_its_colour(pp: Pixelport) -> None:
    img = image(pp, "/tr:l-text,i-Hello,fs-40,co-FF0000,lx-10,ly-10,l-end,f-png/white.png")
    red = ink(img, RED)
    assert 300 < red < 6000  # a word of ink, not a block
    big = image(pp, "/tr:l-text,i-Hello,fs-80,co-FF0000,lx-10,ly-10,l-end,f-png/white.png")
    assert 3 < ink(big, RED) / red < 5.5  # twice the size: about four times the ink


def test_text_background_padding_and_alignment(pp: Pixelport) -> None:
    img = image(pp, "/tr:l-text,i-Hi,fs-30,co-FFFFFF,bg-000000,pa-20,lx-0,ly-0,l-end,"
                    "f-png/white.png")
    assert near(pixel(img, 5, 5), BLACK)  # the padding is the background's
    padded = ink(img, BLACK)
    plain = ink(image(pp, "/tr:l-text,i-Hi,fs-30,co-FFFFFF,bg-000000,lx-0,ly-0,l-end,"
                          "f-png/white.png"), BLACK)
    assert padded > plain + 2000
    # pa-10_40: 10 above and below, 40 left and right.
    box = image(pp, "/tr:l-text,i-Hi,fs-30,bg-000000,pa-10_40,lx-0,ly-0,l-end,f-png/white.png")
    assert near(pixel(box, 39, 5), BLACK) and near(pixel(box, 5, 12), BLACK)


def test_text_wraps_at_its_width(pp: Pixelport) -> None:
    one_line = image(pp, "/tr:l-text,i-word word word word,fs-20,bg-000000,lx-0,ly-0,l-end,"
                         "f-png/white.png")
    wrapped = image(pp, "/tr:l-text,i-word word word word,fs-20,w-70,bg-000000,lx-0,ly-0,"
                        "l-end,f-png/white.png")
    def box(img: Any) -> tuple[int, int]:
        _, _, width, height = img.extract_band(0).find_trim(threshold=50, background=[255])
        return width, height
    (w1, h1), (w2, h2) = box(one_line), box(wrapped)
    assert w2 <= 70 < w1 and h2 > 2.5 * h1


def test_text_typography_and_fonts_change_the_rendering(pp: Pixelport) -> None:
    def drawn(extra: str) -> int:
        return ink(image(pp, f"/tr:l-text,i-Typography,fs-40{extra},lx-0,ly-0,l-end,"
                             "f-png/white.png"), BLACK)
    plain = drawn("")
    assert drawn(",tg-b") > plain * 1.2  # bold: more ink
    assert drawn(",tg-strikethrough") > plain  # the line through
    assert drawn(",tg-i") != plain and drawn(",tg-b_i") > plain
    assert drawn(",ff-PT_Mono") != plain  # ImageKit's names map to the shipped families
    assert drawn(",ff-fonts@@mono.ttf") == drawn(",ff-PT_Mono")  # the same font file


def test_text_unicode_and_base64(pp: Pixelport) -> None:
    text = "Grüße, Ωμέγα & Привет: 100%"
    encoded = quote(base64.b64encode(text.encode()).decode(), safe="")
    img = image(pp, f"/tr:l-text,ie-{encoded},fs-30,lx-0,ly-0,l-end,f-png/white.png")
    assert ink(img, BLACK) > 1000
    # Pango markup in the text is text, not markup.
    marked = image(pp, "/tr:l-text,ie-" + quote(base64.b64encode(b"<b>x</b>").decode(), safe="")
                   + ",fs-30,lx-0,ly-0,l-end,f-png/white.png")
    assert ink(marked, BLACK) > 200


def test_text_limits(pp: Pixelport) -> None:
    response = failure(pp, "/tr:l-text,i-" + "a" * 2001 + ",l-end/white.png")
    assert "2000" in response.ik_error
    long = base64.b64encode(b"b" * 1900).decode()  # 2,536 characters
    response = failure(pp, f"/tr:l-text,ie-{quote(long, safe='')},l-end/white.png")
    assert "2500" in response.ik_error
    response = failure(pp, "/tr:l-text,i-" + "W" * 400 + ",fs-200,l-end/white.png")
    assert response.ik_error.startswith("ELIMIT") and "16383" in response.ik_error


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tr", "words"), [
    ("w-100,l-image,i-logo.png", ["not closed", "position 7"]),
    ("l-image,i-ik_canvas,l-image,i-ik_canvas,l-image,i-ik_canvas,l-image,i-ik_canvas,"
     "l-end,l-end,l-end,l-end", ["3 deep", "position 61"]),
    ("w-100,oi-logo.png", ["retired", "position 7"]),
    ("ot-Hello,otc-FF0000", ["retired"]),
    ("w-100,l-end", ["closes no layer"]),
    ("l-image,i-..@@blue.png,l-end", ["'..'"]),
    ("l-image,lx-10,l-end", ["no input"]),
    ("l-shape,i-x,l-end", ["l-shape"]),
    ("l-image,i-logo.png,lm-screen,l-end", ["lm-screen"]),
    ("l-video,i-clip.mp4,l-end", ["videos"]),
    ("l-image,i-notes.txt,l-end", ["notes.txt"]),
    ("l-image,i-ik_canvas,w-0.0001,l-end", ["below one pixel"]),
    ("l-image,i-logo.png,fs-20,l-end", ["fs-20 applies to text layers"]),
    ("l-text,i-Hi,w-50:lx-5,l-end", ["lx-5 goes in its layer's first step"]),
    ("fs-20", ["applies inside a layer"]),
])
def test_bad_layers_are_400_naming_the_problem(pp: Pixelport, tr: str, words: list[str]) -> None:
    response = failure(pp, f"/tr:{tr}/blue.png")
    assert response.ik_error.split(" - ")[0] in ("EINVALID", "EFORMAT"), response.ik_error
    for word in words:
        assert word in response.ik_error, (tr, response.ik_error)


def test_missing_layer_file_and_pixel_bomb(pp: Pixelport) -> None:
    response = failure(pp, "/tr:l-image,i-nowhere.png,l-end/blue.png", 404)
    assert response.ik_error.startswith("ENOENT") and "nowhere.png" in response.ik_error
    response = failure(pp, "/tr:l-image,i-big.png,l-end/blue.png")
    assert response.ik_error.startswith("ELIMIT")
    # A URL is a path like any other: this endpoint's library has no such file (a web proxy
    # fetches it if its allow-list lets it: tests/test_cloud_origins.py).
    url = base64.b64encode(b"https://example.com/x.png").decode()
    response = failure(pp, f"/tr:l-image,ie-{url},l-end/blue.png", 404)
    assert response.ik_error.startswith("ENOENT")


# --- ImageKit's SDK: its overlay option, in the query and in the path -------------------------

# The SDKs drop a position of 0 (`if (x)`), so these place layers at 1.
SDK_OVERLAYS: list[tuple[dict[str, Any], tuple[int, int], tuple[int, ...]]] = [
    ({"type": "image", "input": "logo.png", "position": {"x": 10, "y": 10}}, (20, 20), GREEN),
    ({"type": "image", "input": "/logos/special dir/logo (1)+ü.png",
      "position": {"x": 1, "y": 1}}, (5, 5), GREEN),
    ({"type": "image", "input": "logo.png", "position": {"focus": "bottom_right"},
      "transformation": [{"width": 20}]}, (295, 195), GREEN),
    ({"type": "solidColor", "color": "FF0000", "position": {"x": 1, "y": 1},
      "transformation": [{"width": 50, "height": 50}]}, (25, 25), RED),
    ({"type": "text", "text": "Hello", "position": {"x": 1, "y": 1},
      "transformation": [{"font_size": 30, "background": "000000", "padding": 10}]},
     (3, 3), BLACK),
    ({"type": "text", "text": "Special: ü & <b>, 100%", "position": {"x": 1, "y": 1},
      "transformation": [{"font_size": 30, "background": "FF0000", "padding": "10_20"}]},
     (3, 3), RED),
]


@pytest.mark.parametrize("position", ["query", "path"])
@pytest.mark.parametrize(("overlay", "at", "colour"), SDK_OVERLAYS)
def test_sdk_overlay_urls(pp: Pixelport, position: str, overlay: dict[str, Any],
                          at: tuple[int, int], colour: tuple[int, ...]) -> None:
    client = ImageKit(private_key="private_test_key")
    url = client.helper.build_url(src="/blue.png", url_endpoint=pp.url,
                                  transformation=[{"overlay": overlay}, {"format": "png"}],
                                  transformation_position=position)  # type: ignore[arg-type]
    assert "l-end" in url
    img = image(pp, url.removeprefix(pp.url))
    assert near(pixel(img, *at), colour), (url, pixel(img, *at))


# The same overlays through ImageKit's Node SDK (its option names are camelCase).
NODE_OVERLAYS: list[tuple[dict[str, Any], tuple[int, int], tuple[int, ...]]] = [
    ({"type": "image", "input": "/logos/special dir/logo (1)+ü.png",
      "position": {"x": 1, "y": 1}}, (5, 5), GREEN),
    ({"type": "image", "input": "logo.png", "position": {"focus": "bottom_right"},
      "transformation": [{"width": 20}]}, (295, 195), GREEN),
    ({"type": "solidColor", "color": "FF0000", "position": {"x": 1, "y": 1},
      "transformation": [{"width": 50, "height": 50}]}, (25, 25), RED),
    ({"type": "text", "text": "Special: ü & <b>, 100%", "position": {"x": 1, "y": 1},
      "transformation": [{"fontSize": 30, "background": "FF0000", "padding": "10_20"}]},
     (3, 3), RED),
]


def test_node_sdk_overlay_urls(pp: Pixelport, node_sdk: object) -> None:
    import json

    from tests.node_sdk import run_node

    cases = [{"overlay": o, "position": p} for p in ("query", "path")
             for o, _, _ in NODE_OVERLAYS]
    done = run_node("overlays.mjs", {"IK_OVERLAYS": json.dumps(cases), "IK_ENDPOINT": pp.url})
    assert done.returncode == 0, done.stderr
    urls = json.loads(done.stdout)
    expected = [(at, colour) for _ in ("query", "path") for _, at, colour in NODE_OVERLAYS]
    assert len(urls) == len(expected)
    for url, (at, colour) in zip(urls, expected, strict=True):
        assert "l-end" in url
        img = image(pp, url.removeprefix(pp.url))
        assert near(pixel(img, *at), colour), (url, pixel(img, *at))


# --- no layer chain crashes the render: it renders, or is a PixelportError -------------------

RENDER_PIECES = [
    "l-image", "l-text", "l-end", "i-logo.png", "i-ik_canvas", "i-nothing.png", "ie-SGk=",
    "i-Hello", "lx-10", "ly-N5", "lx-N0", "lxc-bw_div_2", "lyc-N3", "lfo-bottom", "lap-center",
    "lm-multiply", "lm-displace", "lm-cutout", "lm-cutter", "fs-20", "fs-0.5", "fs-bh",
    "ff-PT_Mono", "co-FF000080", "pa-1_2_3", "pa-N5", "tg-b_i", "tg-strikethrough", "al-5",
    "lh-30", "w-100", "w-0.5", "h-3", "bg-00FF00", "t-false", "o-50", "rt-45", "r-max", "x-5",
    "y-N5", "bl-3", "e-grayscale", "b-2_red", "cm-pad_resize", "c-force", "ia-center", "w-1",
    "lso-1", "f-png", "q-50",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(RENDER_PIECES), st.sampled_from([",", ",", ":"])),
                min_size=1, max_size=12))
def test_generated_layer_chains_render_or_fail_cleanly(pieces: list[tuple[str, str]]) -> None:
    text = "".join(p + s for p, s in pieces)
    try:
        chain = registry.parse(text)
        engine.render(BASE_PNG, chain, RENDER_OPTIONS)
    except PixelportError as error:
        assert error.status in (400, 404), (text, error)
