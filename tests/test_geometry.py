"""Output sizes per crop strategy and mode, upscale and downscale, without touching pixels."""

from __future__ import annotations

import pytest

from pixelport.errors import InvalidRequest
from pixelport.transform import registry
from pixelport.transform.geometry import Box, Context, Plan, gravity, plan, target
from pixelport.transform.step import Step


def make(tr: str, size: tuple[int, int], face: Box | None = None, **hints: float) -> Plan | None:
    step = registry.parse(tr)[0]
    assert isinstance(step, Step)
    ctx = Context(size[0], size[1], client_width=int(hints["width"]) if "width" in hints
                  else None, client_dpr=hints.get("dpr"))
    return plan(size[0], size[1], step, ctx, face)


@pytest.mark.parametrize(("size", "tr", "expected"), [
    ((800, 600), "w-400", (400, 300)),
    ((800, 600), "h-300", (400, 300)),
    ((800, 600), "w-1600", (1600, 1200)),          # maintain_ratio enlarges
    ((800, 600), "w-0.5", (400, 300)),
    ((800, 600), "w-0.5,h-0.5", (400, 300)),
    ((800, 600), "w-iw_div_4", (200, 150)),
    ((800, 600), "w-iw_div_2_add_100", (500, 375)),
    ((800, 600), "h-ih_mul_0.5", (400, 300)),
    ((800, 600), "w-300,h-300", (300, 300)),        # cover + centre crop
    ((800, 600), "w-300,h-300,c-maintain_ratio", (300, 300)),
    ((800, 600), "w-300,h-300,c-force", (300, 300)),
    ((800, 600), "w-400,h-400,c-at_max", (400, 300)),
    ((800, 600), "w-2000,h-2000,c-at_max", (800, 600)),   # never enlarges
    ((800, 600), "w-2000,c-at_max", (800, 600)),
    ((800, 600), "w-1600,h-1600,c-at_max_enlarge", (1600, 1200)),
    ((800, 600), "w-400,h-400,c-at_least", (533, 400)),
    ((800, 600), "w-1000,h-1000,c-at_least", (1333, 1000)),
    ((800, 600), "w-400,h-200,c-maintain_ratio_no_enlarge", (400, 200)),
    ((800, 600), "w-1000,h-500,c-maintain_ratio_no_enlarge", (800, 400)),
    ((100, 50), "w-200,h-200", (200, 200)),
    ((800, 600), "w-400,ar-1-1", (400, 400)),
    ((800, 600), "h-300,ar-16_9", (533, 300)),
    ((800, 600), "w-400,h-100,ar-1-1", (400, 100)),       # ar ignored when both are given
    ((800, 600), "w-200,dpr-2", (400, 300)),
    ((800, 600), "w-200,dpr-0.5", (100, 75)),
    ((800, 600), "w-3000,dpr-2", (3000, 2250)),          # > 5000 px: dpr ignored
    ((800, 600), "w-300,h-300,cm-pad_resize", (300, 300)),
    ((800, 600), "w-2000,h-2000,cm-pad_resize_no_enlarge", (2000, 2000)),
    ((800, 600), "w-200,h-100,cm-extract", (200, 100)),
    ((800, 600), "w-2000,h-100,cm-extract", (800, 100)),
    ((800, 600), "w-1000,h-1000,cm-pad_extract", (1000, 1000)),
])
def test_plan_sizes(size: tuple[int, int], tr: str, expected: tuple[int, int]) -> None:
    result = make(tr, size)
    assert result is not None
    assert (result.out_width, result.out_height) == expected


def test_no_size_means_no_resize() -> None:
    assert make("q-50", (800, 600)) is None


def test_w_auto_rounds_client_width_up_to_100() -> None:
    result = make("w-auto", (800, 600), width=333)
    assert result is not None and result.out_width == 400
    assert make("w-auto", (800, 600)) is None  # no hint: unchanged


def test_dpr_auto_uses_the_hint() -> None:
    result = make("w-100,dpr-auto", (800, 600), dpr=3)
    assert result is not None and result.out_width == 300


@pytest.mark.parametrize(("tr", "hints", "size", "dpr"), [
    # ImageKit's client-hints page: "w-auto,dpr-auto" with "Sec-CH-DPR: 2" and
    # "Sec-CH-Width: 600": "ImageKit ignores the Sec-CH-DPR value and delivers an image of
    # width 600"; with "Sec-CH-Width: 212": "ImageKit rounds off 212 to 300 ... Content-DPR
    # = 300/ (212 / 2) = 2.83".
    ("w-auto,dpr-auto", {"width": 600, "dpr": 2}, (600, 450), 2),
    ("w-auto,dpr-auto", {"width": 212, "dpr": 2}, (300, 225), 2.83),
    ("w-auto,dpr-2", {"width": 212}, (300, 225), 2.83),
    ("w-auto,ar-2-1,dpr-auto", {"width": 600, "dpr": 2}, (600, 300), 2),
    ("w-auto,h-100,dpr-auto", {"width": 600, "dpr": 2}, (600, 200), 2),  # h is CSS pixels
    ("w-auto,dpr-auto", {"width": 600}, (600, 450), None),  # no Sec-CH-DPR
    ("w-auto", {"width": 212, "dpr": 2}, (300, 225), None),
    ("w-100,dpr-auto", {"width": 600, "dpr": 2}, (200, 150), 2),
])
def test_client_width_is_in_device_pixels(tr: str, hints: dict[str, float],
                                          size: tuple[int, int], dpr: float | None) -> None:
    step = registry.parse(tr)[0]
    assert isinstance(step, Step)
    ctx = Context(800, 600, client_width=int(hints["width"]), client_dpr=hints.get("dpr"))
    result = plan(800, 600, step, ctx)
    assert result is not None and (result.out_width, result.out_height) == size
    assert target(800, 600, step, ctx).dpr == dpr


def test_cover_crop_uses_focus_position() -> None:
    top = make("w-400,h-100,fo-top", (800, 600))
    bottom = make("w-400,h-100,fo-bottom", (800, 600))
    assert top is not None and top.crop == Box(0, 0, 400, 100)
    assert bottom is not None and bottom.crop == Box(0, 200, 400, 100)
    left = make("w-100,h-300,fo-left", (800, 600))
    right = make("w-100,h-300,fo-right", (800, 600))
    assert left is not None and left.crop == Box(0, 0, 100, 300)
    assert right is not None and right.crop == Box(300, 0, 100, 300)


def test_pad_resize_moves_padding_with_focus() -> None:
    centred = make("w-400,h-400,cm-pad_resize", (800, 600))
    assert centred is not None and centred.scale == (400, 300)
    assert centred.canvas == Box(0, 50, 400, 400)
    top = make("w-400,h-400,cm-pad_resize,fo-top", (800, 600))
    assert top is not None and top.canvas == Box(0, 0, 400, 400)
    no_enlarge = make("w-2000,h-2000,cm-pad_resize_no_enlarge", (800, 600))
    assert no_enlarge is not None and no_enlarge.scale == (800, 600)


@pytest.mark.parametrize(("extra", "box"), [
    ("", Box(350, 250, 100, 100)),
    (",x-10,y-20", Box(10, 20, 100, 100)),
    (",x-N110,y-N100", Box(690, 500, 100, 100)),
    (",xc-100,yc-100", Box(50, 50, 100, 100)),
    (",x-iw_div_2,y-0", Box(400, 0, 100, 100)),
    (",fo-bottom_right", Box(700, 500, 100, 100)),
])
def test_extract_positions(extra: str, box: Box) -> None:
    result = make("w-100,h-100,cm-extract" + extra, (800, 600))
    assert result is not None and result.crop == box


def test_extract_outside_the_image_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="outside"):
        make("w-100,h-100,cm-extract,xc-10,yc-10", (800, 600))


def test_pad_extract_places_the_image_on_a_larger_canvas() -> None:
    result = make("w-1000,h-800,cm-pad_extract", (800, 600))
    assert result is not None and result.canvas == Box(100, 100, 1000, 800)


def test_face_crop_is_centred_on_the_face() -> None:
    face = Box(600, 100, 100, 100)
    cover = make("w-300,h-300,fo-face", (800, 600), face)
    assert cover is not None and cover.precrop == Box(200, 0, 600, 600)
    tight = make("w-300,h-300,fo-face,z-1", (800, 600), face)
    assert tight is not None and tight.precrop == Box(600, 100, 100, 100)
    zoomed_out = make("w-300,h-300,fo-face,z-0.5", (800, 600), face)
    assert zoomed_out is not None and zoomed_out.precrop == Box(550, 50, 200, 200)
    no_box = make("fo-face", (800, 600), face)
    assert no_box is not None and no_box.precrop == Box(600, 100, 100, 100)


def test_gravity() -> None:
    assert gravity("center", 10, 20) == (5, 10)
    assert gravity("top_left", 10, 20) == (0, 0)
    assert gravity("bottom_right", 10, 20) == (10, 20)
