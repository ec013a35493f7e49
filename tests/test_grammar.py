"""The tr grammar: splitting, typed steps, expressions, conditionals, named transformations,
canonical form; property-based robustness."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pixelport.errors import InvalidRequest, LimitExceeded, PixelportError
from pixelport.transform import expr, registry
from pixelport.transform.colours import Colour
from pixelport.transform.colours import parse as parse_colour
from pixelport.transform.grammar import Param, split_chain
from pixelport.transform.step import Conditional, Step


def one(tr: str) -> Step:
    item = registry.parse(tr)[0]
    assert isinstance(item, Step)
    return item


def test_split_chain_steps_and_params() -> None:
    assert split_chain("w-300,h-200:q-50") == [
        (Param("w", "300"), Param("h", "200")), (Param("q", "50"),)]
    # The key ends at the first '-'; values keep theirs.
    assert split_chain("ar-4-3") == [(Param("ar", "4-3"),)]
    assert split_chain("w-10,,:") == [(Param("w", "10"),)]


def test_typed_steps() -> None:
    steps = registry.parse("w-300,h-0.5,c-at_max,q-60,f-jpeg:orig-true")
    first, second = steps
    assert isinstance(first, Step) and isinstance(second, Step)
    assert first.width is not None and first.width.constant == 300
    assert first.height is not None and first.height.constant == 0.5
    assert first.crop == "at_max" and first.quality == 60 and first.format == "jpg"
    assert second.original is True


def test_last_repeated_key_wins_and_canonical_is_stable() -> None:
    steps = registry.parse("h-20,w-10,w-30")
    assert registry.canonical(steps) == "h-20,w-30"
    assert registry.canonical(registry.parse("w-30,h-20")) == "h-20,w-30"


@pytest.mark.parametrize(("text", "value"), [
    ("300", 300), ("N20", -20), ("iw_div_2", 400), ("iw_div_2_add_100", 500),
    ("ih_mul_0.5_sub_N10", 310), ("iw_add_ih_mul_2", 2000), ("iw_mod_300", 200),
    ("2_pow_3_add_1", 16), ("car_mul_100", 133.33333333333334), ("iar", 800 / 600),
])
def test_expressions(text: str, value: float) -> None:
    values = {"iw": 800, "ih": 600, "iar": 800 / 600, "cw": 400, "ch": 300, "car": 4 / 3}
    assert expr.parse(text, "test").evaluate(values) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["iw_div", "iw__2", "iw_plus_2", "foo", "1_div_0", ""])
def test_bad_expressions(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        expr.parse(bad, "test").evaluate({"iw": 1})


def test_conditionals() -> None:
    item = registry.parse("if-iw_gt_800_and_ih_gt_600_or_ar_eq_1,w-100,if-else,w-50,if-end")[0]
    assert isinstance(item, Conditional) and item.otherwise is not None
    assert registry.holds(item.condition, {"iw": 1000, "ih": 700, "ar": 2})
    assert not registry.holds(item.condition, {"iw": 1000, "ih": 500, "ar": 2})
    assert registry.holds(item.condition, {"iw": 10, "ih": 10, "ar": 1})
    for bad in ["if-iw_gt_800,w-100", "w-1,if-iw_gt_1,w-2,if-end", "if-zz_gt_1,w-1,if-end",
                "if-iw_gt_x,w-1,if-end", "if-iw_gt_1,w-1,if-else,w-2,if-else,w-3,if-end"]:
        with pytest.raises(InvalidRequest):
            registry.parse(bad)


@pytest.mark.parametrize(("condition", "values", "expected"), [
    # ImageKit's conditional-transformations page: "`if-h_gte_100_and_h_lte_400_or_ar_lt_4-3`
    # evaluates to true only if the image height is between 100 and 400, or the aspect ratio
    # is less than 4:3", and for ar and iar: "Fraction - an aspect ratio of 4:3 can be
    # specified as 4-3".
    ("h_gte_100_and_h_lte_400_or_ar_lt_4-3", {"h": 600, "ar": 1.2}, True),
    ("h_gte_100_and_h_lte_400_or_ar_lt_4-3", {"h": 600, "ar": 4 / 3}, False),
    ("h_gte_100_and_h_lte_400_or_ar_lt_4-3", {"h": 300, "ar": 2}, True),
    ("ar_eq_4-3", {"ar": 800 / 600}, True),
    ("iar_gte_16-9", {"iar": 1.7}, False),
    ("iar_gte_16-9", {"iar": 1.8}, True),
    ("ar_lt_1.5-1", {"ar": 1.4}, True),
])
def test_condition_fractions(condition: str, values: dict[str, float],
                             expected: bool) -> None:
    item = registry.parse(f"if-{condition},w-100,if-end")[0]
    assert isinstance(item, Conditional)
    assert registry.holds(item.condition, values) is expected


@pytest.mark.parametrize("bad", ["ar_lt_4-0", "ar_lt_4-N3", "ar_lt_N4-3", "ar_lt_4-x",
                                 "ar_lt_4-", "w_gt_4-3", "ih_eq_1-2"])
def test_condition_fractions_refused(bad: str) -> None:
    # Fractions are documented for ar and iar only; w, h, iw and ih take "Numbers".
    with pytest.raises(InvalidRequest):
        registry.parse(f"if-{bad},w-100,if-end")


def test_named_transformations() -> None:
    named = {"thumb": "w-100,h-100", "two": "w-10:h-5", "loop": "n-thumb"}
    assert registry.canonical(registry.parse("n-thumb", named)) == "h-100,w-100"
    assert registry.canonical(registry.parse("n-thumb,h-50", named)) == "h-50,w-100"
    assert registry.canonical(registry.parse("n-two,q-20", named)) == "w-10:h-5,q-20"
    with pytest.raises(InvalidRequest, match="Unknown named"):
        registry.parse("n-nope", named)
    with pytest.raises(InvalidRequest, match="another"):
        registry.parse("n-loop", named)


def test_colours() -> None:
    assert parse_colour("FF0000", "t") == Colour(255, 0, 0)
    assert parse_colour("ff000050", "t").alpha == round(50 * 255 / 99)
    assert parse_colour("red", "t") == Colour(255, 0, 0)
    assert parse_colour("abc", "t") == Colour(0xAA, 0xBB, 0xCC)
    for bad in ["GG0000", "FF00", "notacolour", "FF0000AA"]:
        with pytest.raises(InvalidRequest):
            parse_colour(bad, "t")


@pytest.mark.parametrize(("tr", "check"), [
    ("ar-4-3", lambda s: s.aspect.constant == pytest.approx(4 / 3)),
    ("ar-16_9", lambda s: s.aspect.constant == pytest.approx(16 / 9)),
    ("dpr-2", lambda s: s.dpr == 2),
    ("dpr-auto", lambda s: s.dpr_auto),
    ("w-auto", lambda s: s.width_auto),
    ("cm-pad_resize", lambda s: s.crop_mode == "pad_resize"),
    ("fo-top_left", lambda s: s.focus == "top_left"),
    ("z-0.5", lambda s: s.zoom == 0.5),
    ("x-N10", lambda s: s.x.constant == -10),
    ("pr-true", lambda s: s.progressive),
    ("lo-true", lambda s: s.lossless),
    ("md-true", lambda s: s.metadata),
    ("cp-true", lambda s: s.colour_profile),
    ("bl-10", lambda s: s.blur == 10),
    ("o-50", lambda s: s.opacity == 50),
    ("e-grayscale", lambda s: s.grayscale),
    ("e-contrast", lambda s: s.contrast),
    ("e-sharpen", lambda s: s.sharpen == 50),
    ("e-sharpen-10", lambda s: s.sharpen == 10),
    ("e-usm-2-2-0.8-0.024", lambda s: s.unsharp.amount == 0.8),
    ("e-shadow", lambda s: s.shadow.blur == 10),
    ("e-shadow-bl-5_st-60_x-N4_y-3", lambda s: (s.shadow.x, s.shadow.y) == (-4, 3)),
    ("e-gradient-ld-top_from-red_to-blue_sp-0.5", lambda s: s.gradient.angle == 0),
    ("cr-FF0000_20_00FF00", lambda s: s.colour_replace.tolerance == 20),
    ("t-true", lambda s: s.trim == 10),
    ("t-25", lambda s: s.trim == 25),
    ("rt-90", lambda s: s.rotate == 90),
    ("rt-N90", lambda s: s.rotate == 270),
    ("fl-v_h", lambda s: s.flip == "h_v"),
    ("r-20", lambda s: s.radius.corners is not None),
    ("r-max", lambda s: s.radius.maximum),
    ("r-1_2_3_4", lambda s: s.radius.corners[3].constant == 4),
    ("bg-FF0000", lambda s: s.background.colour == Colour(255, 0, 0)),
    ("bg-blurred_20_N50", lambda s: (s.background.blur_amount, s.background.brightness)
     == (20, -50)),
    ("bg-dominant", lambda s: s.background.dominant),
    ("b-5_FF0000", lambda s: s.border.width.constant == 5),
    ("b-5-A94D34", lambda s: s.border.colour == Colour(0xA9, 0x4D, 0x34)),
    ("b-ih_div_20_red", lambda s: str(s.border.width) == "ih_div_20"),
    ("di-folder@@default.jpg", lambda s: s.default_image == "folder/default.jpg"),
    ("pg-2", lambda s: s.page == 2),
])
def test_each_parameter(tr: str, check: object) -> None:
    assert callable(check) and check(one(tr))


@pytest.mark.parametrize("bad", ["w", "-3", "w-", "w-abc", "w-0", "w-1.5", "W-10", "q-0",
                                 "q-101", "q-5.5", "c-nope", "f-bmp", "orig-yes", "zz-1",
                                 "cm-squash", "fo-car", "e-bgremove",
                                 "e-upscale", "l-image", "oi-logo.png", "bg-genfill",
                                 "e-usm-1-2", "rt-400", "fl-x", "r-1_2", "b-5", "cr-zz",
                                 "bl-0", "bl-101", "o-101", "t-100", "pg-0", "di-..@@x.jpg",
                                 "e-shadow-zz-1", "e-nope", "ar-0-1"])
def test_invalid_parameters(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        registry.parse(bad)


@pytest.mark.parametrize("tr", ["w-70000", "h-65536", "w-70000,h-70000"])
def test_dimensions_over_65535_are_ignored(tr: str) -> None:
    # ImageKit's limits page: "Max image transformation dimensions (dimensions greater than
    # this in the transformation string will get ignored) | 65535 px".
    step = one(tr)
    assert step.width is None and step.height is None and not step.resizes
    assert one("w-65535").width is not None


def test_dpr_out_of_range_is_a_limit() -> None:
    with pytest.raises(LimitExceeded):
        registry.parse("w-100,dpr-6")


KEYS = sorted(registry.HANDLERS)
VALUES = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(
    ["auto", "true", "false", "max", "iw_div_2", "N10", "0.5", "FF0000", "red", "at_max",
     "pad_resize", "face", "grayscale", "shadow-bl-3", "blurred", "h_v", "a@@b.jpg", "4-3",
     "ih_mul_", "", "-", "_", "x", "ar_lt_4-3", "iar_gte_16-9_or_h_lt_N2", "ar_eq_4-0"]))
PARAM = st.builds(lambda k, v: f"{k}-{v}", st.sampled_from([*KEYS, "if", "n", "zz"]), VALUES)
CHAIN = st.lists(st.lists(PARAM, min_size=1, max_size=4).map(",".join), min_size=1,
                 max_size=3).map(":".join)


@settings(max_examples=1500, deadline=None)
@given(CHAIN)
@example("if-h_gte_100_and_h_lte_400_or_ar_lt_4-3,w-100,if-end")
@example("if-ar_lt_4-0,w-1,if-end")
@example("if-w_gt_4-3,w-1,if-end:w-70000")
def test_generated_chains_parse_or_are_einvalid(text: str) -> None:
    try:
        registry.parse(text, {"x": "w-1"})
    except PixelportError as exc:
        assert exc.code in ("EINVALID", "ELIMIT") and exc.status == 400


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        registry.parse(text)


# --- layers: l-<type>,…,l-end as one parameter -----------------------------------------------

def test_a_layer_is_one_parameter_with_its_own_chain() -> None:
    steps = split_chain("w-300:l-image,i-a.png,w-100:rt-90,l-text,i-Hi,l-end,l-end,lx-3:q-40")
    assert steps == [(Param("w", "300"),),
                     (Param("l", "image,i-a.png,w-100:rt-90,l-text,i-Hi,l-end"),
                      Param("lx", "3")),
                     (Param("q", "40"),)]
    step = one("l-image,i-a@@b.png,lx-N10,lfo-top,w-50:rt-90,l-end")
    (layer,) = step.layers
    assert layer.kind == "image" and layer.source == "a/b.png" and len(layer.steps) == 2
    assert layer.x is not None and layer.x.constant == -10 and layer.focus == "top"


def test_layers_keep_their_order_in_the_canonical_form() -> None:
    ab = registry.canonical(registry.parse("w-10,l-text,i-A,l-end,l-text,i-B,l-end"))
    ba = registry.canonical(registry.parse("l-text,i-B,l-end,w-10,l-text,i-A,l-end"))
    assert ab == "w-10,l-text,i-A,l-end,l-text,i-B,l-end" and ab != ba
    # the same layer twice is drawn twice
    assert len(one("l-text,i-A,l-end,l-text,i-A,l-end").layers) == 2


@pytest.mark.parametrize(("bad", "words"), [
    ("l-image,i-a.png", "position 1 is not closed"),
    ("w-1,l-end", "closes no layer"),
    ("w-1,oi-logo.png", "position 5"),
    ("l-text,i-a,l-text,i-b,l-text,i-c,l-text,i-d,l-end,l-end,l-end,l-end", "position 34"),
    ("l-image,i-a.png,zz,l-end", "position 17"),
])
def test_layer_syntax_errors_name_the_position(bad: str, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        registry.parse(bad)


LAYER_PIECES = st.sampled_from([
    "l-image", "l-text", "l-end", "l-video", "i-a.png", "i-ik_canvas", "ie-SGk=", "ie-!!",
    "i-Hello", "lx-10", "ly-N5", "lxc-bw_div_2", "lfo-top", "lap-center", "lm-multiply",
    "lm-displace", "fs-20", "ff-PT_Mono", "ff-a@@b.ttf", "co-red", "pa-1_2_3", "tg-b_i", "al-5",
    "lh-30", "w-100", "h-0.5", "bg-00FF00", "t-false", "o-50", "rt-90", "x-5", "oi-x", ""])
LAYERED = st.lists(st.tuples(LAYER_PIECES, st.sampled_from([",", ":"])), max_size=14).map(
    lambda pairs: "".join(p + s for p, s in pairs))


@settings(max_examples=1500, deadline=None)
@given(LAYERED)
def test_generated_layers_parse_or_are_einvalid(text: str) -> None:
    try:
        registry.parse(text)
    except PixelportError as exc:
        assert exc.code in ("EINVALID", "ELIMIT") and exc.status == 400
