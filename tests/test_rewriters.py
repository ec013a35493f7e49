"""URL rewriters: Cloudinary, imgix and Akamai URLs mapped onto pixelport's own chains."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixelport.api.purge import PurgeError, matcher
from pixelport.config import URL_REWRITERS, EndpointConfig
from pixelport.delivery.endpoints import Endpoint, EndpointTable
from pixelport.delivery.request import DeliveryRequest, parse_target
from pixelport.delivery.rewriters import REWRITERS, akamai, cloudinary, imgix
from pixelport.delivery.rewriters.base import hex_colour
from pixelport.errors import InvalidRequest, PixelportError
from pixelport.origins.chain import OriginChain
from pixelport.transform import registry


def test_every_configurable_rewriter_is_registered() -> None:
    assert tuple(REWRITERS) == URL_REWRITERS


def cld(path: str) -> tuple[str, str]:
    done = cloudinary.rewrite(path.split("/"), "")
    return done.chain, "/".join(done.segments)


def ix(query: str, path: str = "a.jpg") -> tuple[str, str]:
    done = imgix.rewrite(path.split("/"), query)
    return done.chain, done.query


def ak(query: str) -> tuple[str, str]:
    done = akamai.rewrite(["a.jpg"], query)
    return done.chain, done.query


# --- Cloudinary -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "chain", "file"), [
    # ImageKit's own example (docs/url-rewriters): the prefix, the chain, the path kept.
    ("image/upload/h_300,w_300,c_crop,g_north/folder/image.jpg",
     "w-300,h-300,cm-extract,fo-top", "folder/image.jpg"),
    ("image/upload/w_300,h_200,c_fill,g_north_east/v1712345678/a.jpg",
     "w-300,h-200,fo-top_right", "a.jpg"),
    ("w_300,h_200,c_fill/a.jpg", "w-300,h-200", "a.jpg"),  # no image/upload: ImageKit's form
    ("image/upload/v12/a.jpg", "", "a.jpg"),
    ("image/upload/a.jpg", "", "a.jpg"),
    ("w_300,h_200/a.jpg", "w-300,h-200,c-force", "a.jpg"),  # Cloudinary's default c_scale
    ("w_300,c_scale/a.jpg", "w-300", "a.jpg"),
    ("w_300,h_300,c_fit/a.jpg", "w-300,h-300,c-at_max_enlarge", "a.jpg"),
    ("w_300,h_300,c_limit/a.jpg", "w-300,h-300,c-at_max", "a.jpg"),
    ("w_300,h_300,c_pad,b_rgb:F3F3F3/a.jpg", "w-300,h-300,cm-pad_resize,bg-F3F3F3", "a.jpg"),
    ("w_300,h_300,c_pad,g_west/a.jpg", "w-300,h-300,cm-pad_resize,fo-left", "a.jpg"),
    ("w_300,h_300,c_lpad/a.jpg", "w-300,h-300,cm-pad_resize_no_enlarge", "a.jpg"),
    ("w_100,h_80,c_crop,x_10,y_20/a.jpg", "w-100,h-80,cm-extract,x-10,y-20", "a.jpg"),
    ("w_100,h_80,c_crop,g_north_west,x_10/a.jpg", "w-100,h-80,cm-extract,x-10,y-0", "a.jpg"),
    ("w_100,h_100,c_thumb,g_face/a.jpg", "w-100,h-100,fo-face", "a.jpg"),
    ("w_100,h_100,c_fill,g_faces,z_0.8/a.jpg", "w-100,h-100,fo-face,z-0.8", "a.jpg"),
    ("w_100,h_100,c_fill,g_auto/a.jpg", "w-100,h-100,fo-auto", "a.jpg"),
    ("w_100,h_100,c_fill,g_custom/a.jpg", "w-100,h-100,fo-custom", "a.jpg"),
    ("image/fetch/w_100/https:/x.test/a.jpg", "w-100", "https:/x.test/a.jpg"),
    ("w_400,ar_16:9,c_fill/a.jpg", "w-400,ar-16-9", "a.jpg"),
    ("w_400,ar_1.5,c_fill/a.jpg", "w-400,ar-1.5-1", "a.jpg"),
    ("w_0.5/a.jpg", "w-0.5", "a.jpg"),
    ("w_auto,c_scale/a.jpg", "w-auto", "a.jpg"),
    ("q_auto/a.jpg", "q-70", "a.jpg"),
    ("q_auto:low/a.jpg", "q-50", "a.jpg"),
    ("q_auto:best/a.jpg", "q-86", "a.jpg"),
    ("q_55,f_auto/a.jpg", "q-55,f-auto", "a.jpg"),
    ("f_jpeg/a.png", "f-jpg", "a.png"),
    ("e_grayscale/a.jpg", "e-grayscale", "a.jpg"),
    ("e_blur/a.jpg", "bl-1", "a.jpg"),
    ("e_blur:500/a.jpg", "bl-5", "a.jpg"),
    ("e_sharpen:500/a.jpg", "e-sharpen-5", "a.jpg"),
    ("e_unsharp_mask:250/a.jpg", "e-usm-0-2.5-1-0.05", "a.jpg"),
    ("e_contrast:100/a.jpg", "e-contrast", "a.jpg"),
    ("e_trim/a.jpg", "t-true", "a.jpg"),
    ("e_trim:20:red/a.jpg", "t-20", "a.jpg"),
    ("r_max/a.jpg", "r-max", "a.jpg"),
    ("r_20/a.jpg", "r-20", "a.jpg"),
    ("r_10:20/a.jpg", "r-10_20_10_20", "a.jpg"),
    ("r_10:20:30/a.jpg", "r-10_20_30_20", "a.jpg"),
    ("r_10:20:30:40/a.jpg", "r-10_20_30_40", "a.jpg"),
    # ImageKit's documented colour translations.
    ("bo_5px_solid_red/a.jpg", "b-5_red", "a.jpg"),
    ("bo_5px_solid_BLUE/a.jpg", "b-5_blue", "a.jpg"),
    ("bo_5px_solid_rgb:AAAA54/a.jpg", "b-5_AAAA54", "a.jpg"),
    ("bo_5px_solid_rgb:AAAA54A9/a.jpg", "b-5_AAAA5466", "a.jpg"),
    ("bo_5px_solid_rgb:B4F/a.jpg", "b-5_BB44FF", "a.jpg"),
    ("b_rgb:B4F9/a.jpg", "bg-BB44FF60", "a.jpg"),
    ("b_BLUE/a.jpg", "bg-blue", "a.jpg"),
    ("dpr_2.0,w_100/a.jpg", "w-100,dpr-2.0", "a.jpg"),
    ("a_90/a.jpg", "rt-90", "a.jpg"),
    ("a_-67/a.jpg", "rt-N67", "a.jpg"),
    ("a_hflip/a.jpg", "fl-h", "a.jpg"),
    ("o_50/a.jpg", "o-50", "a.jpg"),
    ("fl_progressive/a.jpg", "pr-true", "a.jpg"),
    ("fl_progressive:none/a.jpg", "pr-false", "a.jpg"),
    ("t_thumb,w_10/a.jpg", "n-thumb,w-10", "a.jpg"),
    ("video/upload/q_auto:low,so_2.5599,du_3/clip.mp4", "q-40,so-2.56,du-3", "clip.mp4"),
    ("video/upload/f_webm/clip.mp4", "f-webm", "clip.mp4"),
    # Components chain; the rest of the path is the file's.
    ("w_300/a_90/e_grayscale/folder/sub/a.jpg", "w-300:rt-90:e-grayscale", "folder/sub/a.jpg"),
    ("my_photos/a.jpg", "", "my_photos/a.jpg"),  # not a Cloudinary key: a folder
    ("w_1.jpg", "", "w_1.jpg"),  # the last segment is always the file
    ("w_100/tr:h-50/a.jpg", "w-100", "tr:h-50/a.jpg"),  # ImageKit syntax still follows
    ("ar_16%3A9,w_100/a.jpg", "w-100,ar-16-9,c-force", "a.jpg"),
])
def test_cloudinary_mappings(path: str, chain: str, file: str) -> None:
    assert cld(path) == (chain, file)
    registry.parse(chain, {"thumb": "w-100"})  # every mapping is a valid chain


@pytest.mark.parametrize(("path", "named"), [
    ("l_text:Arial_20:hi/a.jpg", "'l_text:Arial_20:hi'"),
    ("w_300,co_red/a.jpg", "'co_red'"),
    ("c_lfill,w_10,h_10/a.jpg", "'c_lfill'"),
    ("c_fill,g_xy_center,w_1,h_1/a.jpg", "'g_xy_center'"),
    ("w_10,x_5/a.jpg", "'x_5'"),  # offsets only with c_crop
    ("c_crop,g_south,x_5,w_10,h_10/a.jpg", "'g_south'"),
    ("w_abc/a.jpg", "'w_abc'"),
    ("w_-5/a.jpg", "'w_-5'"),
    ("q_0/a.jpg", "'q_0'"),
    ("q_auto:ultra/a.jpg", "'q_auto:ultra'"),
    ("f_tiff/a.jpg", "'f_tiff'"),
    ("e_sepia/a.jpg", "'e_sepia'"),
    ("e_grayscale:5/a.jpg", "'e_grayscale:5'"),
    ("bo_5px_dashed_red/a.jpg", "'bo_5px_dashed_red'"),
    ("b_notacolour/a.jpg", "'b_notacolour'"),
    ("a_auto_right/a.jpg", "'a_auto_right'"),
    ("fl_attachment/a.jpg", "'fl_attachment'"),
    ("w_10,zz_1/a.jpg", "'zz_1'"),
    ("w_/a.jpg", "'w_'"),
    ("o_300/a.jpg", "'o_300'"),
])
def test_cloudinary_refusals_name_the_parameter(path: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        cld(path)
    assert info.value.status == 400 and info.value.code == "EINVALID"
    assert named in info.value.message


def test_cloudinary_dpr_out_of_range_is_a_limit() -> None:
    with pytest.raises(PixelportError) as info:
        cld("w_10,dpr_9/a.jpg")
    assert info.value.code == "ELIMIT"


_KEYS = st.sampled_from(sorted(cloudinary.KEYS | {"zz", "wx"}))
_VALUES = st.text(st.sampled_from("abcdefgnorthswe_0123456789.:-"), min_size=0, max_size=12)
_COMPONENT = st.lists(st.tuples(_KEYS, _VALUES), min_size=1, max_size=4).map(
    lambda parts: ",".join(f"{k}_{v}" for k, v in parts))


@given(st.lists(_COMPONENT, max_size=4), st.sampled_from(["a.jpg", "f/a.jpg", "w_1.png"]))
@example(["w_300,h_200,c_fill,g_north"], "a.jpg")
@example(["v12"], "a.jpg")
def test_cloudinary_parser_maps_or_refuses_and_keeps_the_file(components: list[str],
                                                              file: str) -> None:
    """Whatever the components, the answer is a valid chain and the file's own path, or a
    400/ELIMIT; never another exception, and never a component left in the file's path
    unless it is not Cloudinary's."""
    try:
        chain, rest = cld("/".join(["image", "upload", *components, file]))
    except PixelportError as exc:
        assert exc.status == 400
        return
    try:
        registry.parse(chain)
    except PixelportError as exc:  # a valid spelling refused later for its value only
        assert exc.status == 400
    assert rest.endswith(file)


# --- imgix ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "chain", "left"), [
    ("w=300", "w-300", ""),
    ("w=300&h=200", "w-300,h-200,c-at_max_enlarge", ""),  # imgix's default fit=clip
    ("w=300&h=200&fit=clip", "w-300,h-200,c-at_max_enlarge", ""),
    ("w=300&h=200&fit=max", "w-300,h-200,c-at_max", ""),
    ("w=300&h=200&fit=min", "w-300,h-200,c-maintain_ratio_no_enlarge", ""),
    ("w=300&h=200&fit=scale", "w-300,h-200,c-force", ""),
    ("w=300&h=200&fit=crop", "w-300,h-200", ""),
    ("w=300&h=200&fit=crop&crop=top,left", "w-300,h-200,fo-top_left", ""),
    ("w=300&h=200&fit=crop&crop=left,top", "w-300,h-200,fo-top_left", ""),
    ("w=300&h=200&fit=crop&crop=bottom", "w-300,h-200,fo-bottom", ""),
    ("w=300&h=200&fit=crop&crop=faces,center", "w-300,h-200,fo-face", ""),
    ("w=300&h=200&fit=crop&crop=entropy", "w-300,h-200,fo-auto", ""),
    ("w=300&h=200&fit=crop&crop=edges", "w-300,h-200,fo-auto", ""),
    ("w=100&h=100&fit=facearea&facepad=2", "w-100,h-100,fo-face,z-0.5", ""),
    ("w=300&h=300&fit=fill&fill-color=red", "w-300,h-300,cm-pad_resize,bg-red", ""),
    ("w=300&h=300&fit=fill&bg=red&fill-color=blue", "w-300,h-300,cm-pad_resize,bg-blue", ""),
    ("w=300&h=300&fit=fill&fill=blur", "w-300,h-300,cm-pad_resize,bg-blurred", ""),
    ("w=300&h=300&fit=fillmax", "w-300,h-300,cm-pad_resize_no_enlarge", ""),
    ("w=400&ar=16:9&fit=crop", "w-400,ar-16-9", ""),
    ("q=60", "q-60", ""),
    ("fm=jpg", "f-jpg", ""),
    ("fm=pjpg", "f-jpg,pr-true", ""),
    ("fm=png8", "f-png", ""),
    ("auto=format", "f-auto", ""),
    ("auto=format&fm=png", "f-png", ""),  # an explicit fm wins
    ("auto=compress", "q-45", ""),
    ("auto=format,compress&q=70", "q-70,f-auto", ""),
    ("w=100&dpr=2", "w-100,dpr-2", ""),
    ("blur=100", "bl-5", ""),
    ("blur=90", "bl-4", ""),  # ImageKit's 4.50, in pixelport's whole numbers
    ("blur=0", "", ""),
    ("rot=90", "rt-N90", ""),  # imgix turns counter-clockwise
    ("rot=0", "", ""),
    ("orient=6", "rt-90", ""),
    ("flip=h", "fl-h", ""),
    ("flip=hv", "fl-h_v", ""),
    ("bg=red", "bg-red", ""),
    ("bg=AAAA54", "bg-AAAA54", ""),
    ("bg=A9AAAA54", "bg-AAAA5466", ""),  # imgix puts alpha first
    ("bg=B4F", "bg-BB44FF", ""),
    ("bg=9B4F", "bg-BB44FF60", ""),
    ("bg=%23FF0000", "bg-FF0000", ""),
    ("border=5,FF0000", "b-5_FF0000", ""),
    ("border=5,red", "b-5_red", ""),
    ("con=30", "e-contrast", ""),
    ("trim=auto", "t-true", ""),
    ("w=300&v=2&ixlib=js-3.8.0", "w-300", "v=2"),  # other parameters stay for the origin
    ("w=300&tr=h-20", "w-300", "tr=h-20"),
])
def test_imgix_mappings(query: str, chain: str, left: str) -> None:
    assert ix(query) == (chain, left)
    registry.parse(chain)


@pytest.mark.parametrize(("query", "named"), [
    ("w=300&sat=20", "sat=20"),
    ("txt=hello", "txt=hello"),
    ("fit=facearea2", "fit=facearea2"),
    ("w=10&h=10&fit=fill&fill=gen", "fill=gen"),
    ("crop=focalpoint&fit=crop&w=1&h=1", "crop=focalpoint"),
    ("crop=top,bottom&fit=crop&w=1&h=1", "crop=top,bottom"),
    ("fm=jxr", "fm=jxr"),
    ("auto=enhance", "auto=enhance"),
    ("rot=45", "rot=45"),
    ("flip=x", "flip=x"),
    ("q=0", "q="),
    ("w=abc", "w="),
    ("blur=5000", "blur="),
    ("bg=nothex", "bg="),
    ("border=5", "border="),
    ("ar=16", "ar="),
])
def test_imgix_refusals_name_the_parameter(query: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ix(query)
    assert info.value.status == 400 and info.value.code == "EINVALID"
    assert named in info.value.message


_IMGIX = st.sampled_from(sorted((*imgix.MAPPED, "sat", "v", "ixlib")))
_IMGIX_VALUES = st.text(st.sampled_from("0123456789.,:abcdefhilmoprstvxz#-"), max_size=10)


@given(st.lists(st.tuples(_IMGIX, _IMGIX_VALUES), max_size=6))
@example([("w", "300"), ("h", "200"), ("fit", "crop"), ("crop", "faces")])
def test_imgix_parser_maps_or_refuses(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    try:
        chain, left = ix(query)
    except PixelportError as exc:
        assert exc.status == 400
        return
    registry.parse(chain)
    assert set(left.split("&")) - {""} == {f"{quote(k)}={quote(v)}" for k, v in pairs
                                          if k in ("v", "tr")} - {""}


# --- Akamai -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "chain", "left"), [
    ("imwidth=300", "w-300", ""),
    ("imheight=200", "h-200", ""),
    ("imwidth=300&imheight=200&x=1", "w-300,h-200", "x=1"),
    ("im=Resize,width=300", "w-300", ""),
    ("im=Resize,height=200", "h-200", ""),
    ("im=Resize,width=300,height=200", "w-300,h-200,c-at_max_enlarge", ""),
    ("im=Resize=(300,200)", "w-300,h-200,c-at_max_enlarge", ""),
    ("im=Resize,size=(300,200)", "w-300,h-200,c-at_max_enlarge", ""),
    ("im=Resize,width=300,height=200,aspect=fill", "w-300,h-200,c-at_least", ""),
    ("im=Resize,width=300,height=200,aspect=ignore", "w-300,h-200,c-force", ""),
    ("im=Resize,width=300,height=200,type=downsize", "w-300,h-200,c-at_max", ""),
    ("im=Resize,width=300,type=downsize", "w-300,c-at_max", ""),
    ("im=Resize%2Cwidth%3D300", "w-300", ""),
    ("im=Resize,width=600;Resize,width=300&imwidth=100", "w-600:w-300:w-100", ""),
])
def test_akamai_mappings(query: str, chain: str, left: str) -> None:
    assert ak(query) == (chain, left)
    registry.parse(chain)


@pytest.mark.parametrize(("query", "named"), [
    ("im=Crop,width=300,height=200", "im=Crop"),
    ("im=Rotate,degrees=90", "im=Rotate"),
    ("im=Resize", "im=Resize"),
    ("im=Resize,width=300,height=200,type=upsize", "type=upsize"),
    ("im=Resize,width=300,colour=red", "colour"),
    ("im=Resize=(300)", "(300)"),
    ("im=Resize,width", "width"),
    ("imwidth=abc", "imwidth="),
    ("im=,", "','"),
])
def test_akamai_refusals_name_the_parameter(query: str, named: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ak(query)
    assert info.value.status == 400 and info.value.code == "EINVALID"
    assert named in info.value.message


@given(st.text(st.sampled_from("Resizewidthg=(),;0123456789 "), max_size=40))
@example("Resize,width=300,height=200")
@example("Resize=(1,2)")
def test_akamai_im_parser_maps_or_refuses(text: str) -> None:
    try:
        chain, _ = ak("im=" + quote(text))
    except PixelportError as exc:
        assert exc.status == 400
        return
    registry.parse(chain)


# --- colours ----------------------------------------------------------------------------------

@given(st.integers(0, 255), st.integers(0, 0xFFFFFF))
def test_alpha_becomes_an_opacity_from_0_to_99(alpha: int, rgb: int) -> None:
    mapped = hex_colour(f"{rgb:06X}{alpha:02X}")
    assert mapped is not None and mapped[:6] == f"{rgb:06X}"
    assert 0 <= int(mapped[6:]) <= 99
    assert hex_colour(f"{alpha:02X}{rgb:06X}", alpha_first=True) == mapped


# --- in the request parser ----------------------------------------------------------------------

def parse(target: str, rewriter: str, identifier: str = "old") -> DeliveryRequest:
    endpoints = [EndpointConfig("", ()), EndpointConfig(identifier, (), url_rewriter=rewriter)]
    table = EndpointTable([Endpoint(e, OriginChain([])) for e in endpoints])
    path, _, query = target.partition("?")
    return parse_target(table, None, path, query)


def test_rewritten_request_keeps_the_signed_target_as_sent() -> None:
    request = parse("/old/image/upload/w_300,c_fill/v3/f%20older/a.jpg?ik-s=abc&v=2",
                    "cloudinary")
    assert request.transformation == "w-300"
    assert request.file_path == "f older/a.jpg" and request.raw_file_path == "f%20older/a.jpg"
    assert request.signed_target == "image/upload/w_300,c_fill/v3/f%20older/a.jpg?v=2"
    assert request.signature == "abc" and request.origin_query == "v=2"
    assert request.prefix == "old/"


def test_imgix_parameters_leave_the_origin_query_and_tr_still_chains() -> None:
    request = parse("/old/a.jpg?w=300&v=2&tr=h-100&ik-attachment=true", "imgix")
    assert request.transformation == "w-300:h-100"
    assert request.origin_query == "v=2"
    assert request.flag("ik-attachment") == "true"
    assert request.flag("w") is None


def test_endpoints_without_a_rewriter_are_untouched() -> None:
    request = parse("/a.jpg?w=300", "imgix")  # the default endpoint has none
    assert request.transformation == "" and request.origin_query == "w=300"


def test_thumbnail_suffix_after_a_rewritten_path() -> None:
    request = parse("/old/video/upload/w_200/clip.mp4/ik-thumbnail.jpg", "cloudinary")
    assert request.transformation == "w-200" and request.file_path == "clip.mp4"
    assert request.derivative == "thumbnail"


def test_purge_urls_in_the_vendors_form_name_the_file() -> None:
    endpoints = [EndpointConfig("", ()), EndpointConfig("cl", (), url_rewriter="cloudinary"),
                 EndpointConfig("ix", (), url_rewriter="imgix")]
    table = EndpointTable([Endpoint(e, OriginChain([])) for e in endpoints])
    exact = matcher(table, "https://cdn.test/cl/image/upload/w_300,c_fill/v12/folder/a.jpg")
    assert exact("cl", "folder/a.jpg") and not exact("cl", "image/upload/folder/a.jpg")
    assert matcher(table, "https://cdn.test/cl/folder/a.jpg")("cl", "folder/a.jpg")
    assert matcher(table, "https://cdn.test/ix/folder/a.jpg?w=300")("ix", "folder/a.jpg")
    prefix = matcher(table, "https://cdn.test/cl/image/upload/folder/*")
    assert prefix("cl", "folder/b.jpg") and not prefix("cl", "other/b.jpg")
    with pytest.raises(PurgeError, match="l_text"):
        matcher(table, "https://cdn.test/cl/image/upload/l_text:x/a.jpg")
