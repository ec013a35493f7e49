"""URL rewriters over real HTTP: each vendor's URL answers the very bytes of its ImageKit
equivalent on a plain endpoint, refusals are 400 EINVALID, signing covers the URL as sent."""

from __future__ import annotations

from typing import Any

import pytest

from pixelport.security.signing import sign, string_to_sign
from tests.helpers import OriginServer, Pixelport, make_image, quadrants
from tests.test_delivery import config, web_origin

pytestmark = pytest.mark.integration

KEY = "private_rewriter_key"


@pytest.fixture
def pp(serve: Any, origin: OriginServer) -> Pixelport:
    origin.files["/photo.jpg"] = make_image(800, 600)
    origin.files["/folder/quad.png"] = quadrants(400, ".png")
    origin.files["/alpha.png"] = make_image(300, 200, ".png", alpha=True)
    server: Pixelport = serve(config(None, [web_origin("web", origin)], [
        {"identifier": "", "origins": ["web"]},
        {"identifier": "cl", "origins": ["web"], "url_rewriter": "cloudinary"},
        {"identifier": "ix", "origins": ["web"], "url_rewriter": "imgix"},
        {"identifier": "ak", "origins": ["web"], "url_rewriter": "akamai"},
        {"identifier": "signed", "origins": ["web"], "url_rewriter": "cloudinary",
         "require_signed_urls": True},
    ], security={"allow_private_networks": True, "private_key": KEY},
        transformations={"thumb": "w-120,h-120"}))
    return server


SAME = [
    # Cloudinary
    ("/cl/image/upload/w_300,h_200,c_fill,g_north/v1712345678/photo.jpg",
     "/tr:w-300,h-200,fo-top/photo.jpg"),
    ("/cl/image/upload/w_300,h_200/photo.jpg", "/tr:w-300,h-200,c-force/photo.jpg"),
    ("/cl/image/upload/w_250,h_250,c_fit/folder/quad.png",
     "/tr:w-250,h-250,c-at_max_enlarge/folder/quad.png"),
    ("/cl/image/upload/w_2000,h_2000,c_limit/folder/quad.png",
     "/tr:w-2000,h-2000,c-at_max/folder/quad.png"),
    ("/cl/image/upload/w_300,h_300,c_pad,b_rgb:F3F3F3/photo.jpg",
     "/tr:w-300,h-300,cm-pad_resize,bg-F3F3F3/photo.jpg"),
    ("/cl/image/upload/c_crop,w_100,h_100,x_150,y_50/folder/quad.png",
     "/tr:cm-extract,w-100,h-100,x-150,y-50/folder/quad.png"),
    ("/cl/image/upload/w_200,h_100,c_fill,g_south_east/folder/quad.png",
     "/tr:w-200,h-100,fo-bottom_right/folder/quad.png"),
    ("/cl/image/upload/w_300/e_grayscale,q_auto/r_max,f_png/photo.jpg",
     "/tr:w-300:e-grayscale,q-70:r-max,f-png/photo.jpg"),
    ("/cl/image/upload/w_200,e_blur:500,bo_4px_solid_red,a_90,dpr_2.0/photo.jpg",
     "/tr:w-200,bl-5,b-4_red,rt-90,dpr-2.0/photo.jpg"),
    ("/cl/image/upload/w_400,ar_16:9,c_fill,q_60/photo.jpg", "/tr:w-400,ar-16-9,q-60/photo.jpg"),
    ("/cl/image/upload/t_thumb/photo.jpg", "/tr:n-thumb/photo.jpg"),
    ("/cl/w_120,f_webp/photo.jpg", "/tr:w-120,f-webp/photo.jpg"),  # ImageKit's own form
    ("/cl/image/upload/photo.jpg", "/photo.jpg"),
    # imgix
    ("/ix/photo.jpg?w=300&h=200&fit=crop&crop=top,left",
     "/tr:w-300,h-200,fo-top_left/photo.jpg"),
    ("/ix/photo.jpg?w=300&h=300", "/tr:w-300,h-300,c-at_max_enlarge/photo.jpg"),
    ("/ix/folder/quad.png?w=1000&h=1000&fit=max", "/tr:w-1000,h-1000,c-at_max/folder/quad.png"),
    ("/ix/photo.jpg?w=300&h=100&fit=scale&q=55", "/tr:w-300,h-100,c-force,q-55/photo.jpg"),
    ("/ix/photo.jpg?w=300&h=300&fit=fill&fill-color=00FF00",
     "/tr:w-300,h-300,cm-pad_resize,bg-00FF00/photo.jpg"),
    ("/ix/photo.jpg?w=200&fm=png&blur=100&rot=90&flip=h&border=3,0000FF",
     "/tr:w-200,f-png,bl-5,rt-N90,fl-h,b-3_0000FF/photo.jpg"),
    ("/ix/photo.jpg?w=150&dpr=2&auto=format&ar=16:9&fit=crop",
     "/tr:w-150,dpr-2,f-auto,ar-16-9/photo.jpg"),
    ("/ix/alpha.png?w=100&bg=FF0000&fm=jpg", "/tr:w-100,bg-FF0000,f-jpg/alpha.png"),
    # Akamai
    ("/ak/photo.jpg?imwidth=320", "/tr:w-320/photo.jpg"),
    ("/ak/photo.jpg?im=Resize,width=300,height=300",
     "/tr:w-300,h-300,c-at_max_enlarge/photo.jpg"),
    ("/ak/photo.jpg?im=Resize=(300,100)", "/tr:w-300,h-100,c-at_max_enlarge/photo.jpg"),
    ("/ak/photo.jpg?im=Resize,width=300,height=100,aspect=fill",
     "/tr:w-300,h-100,c-at_least/photo.jpg"),
    ("/ak/photo.jpg?im=Resize,width=600;Resize,width=300&imheight=120",
     "/tr:w-600:w-300:h-120/photo.jpg"),
]


@pytest.mark.parametrize(("vendor", "imagekit"), SAME)
def test_rewritten_url_answers_the_same_bytes(pp: Pixelport, vendor: str,
                                              imagekit: str) -> None:
    rewritten = pp.get(vendor)
    plain = pp.get(imagekit)
    assert rewritten.status == plain.status == 200, rewritten.ik_error
    assert rewritten.headers["content-type"] == plain.headers["content-type"]
    assert rewritten.body == plain.body
    assert rewritten.headers["etag"] == plain.headers["etag"]


def test_accept_negotiation_is_the_same(pp: Pixelport) -> None:
    accept = {"Accept": "image/avif,image/webp,*/*"}
    rewritten = pp.get("/ix/photo.jpg?w=200&auto=format", accept)
    plain = pp.get("/tr:w-200,f-auto/photo.jpg", accept)
    assert rewritten.headers["content-type"] == plain.headers["content-type"] == "image/webp"
    assert rewritten.body == plain.body
    assert "accept" in rewritten.headers.get("vary", "").lower()


def test_what_a_rewriter_cannot_map_is_400_naming_it(pp: Pixelport, origin: OriginServer) -> None:
    before = len(origin.requests)
    for target, named in [("/cl/image/upload/w_300,l_text:Arial_20:hi/photo.jpg", "l_text"),
                          ("/cl/image/upload/e_sepia/photo.jpg", "e_sepia"),
                          ("/ix/photo.jpg?w=300&sat=40", "sat=40"),
                          ("/ix/photo.jpg?w=abc", "w="),
                          ("/ak/photo.jpg?im=Crop,width=100,height=100", "im=Crop")]:
        response = pp.get(target)
        assert response.status == 400, target
        assert response.ik_error.startswith("EINVALID - ") and named in response.ik_error
    assert len(origin.requests) == before  # refused before any origin contact


def test_origin_gets_the_file_path_and_only_foreign_query(pp: Pixelport,
                                                          origin: OriginServer) -> None:
    assert pp.get("/ix/photo.jpg?w=90&v=7&ixlib=js-3.8.0").status == 200
    assert pp.get("/cl/image/upload/w_91/v5/folder/quad.png").status == 200
    fetched = {(r.path, r.query) for r in origin.requests}
    assert ("/photo.jpg", "v=7") in fetched and ("/folder/quad.png", "") in fetched


def test_plain_paths_and_tr_still_work_on_rewritten_endpoints(pp: Pixelport) -> None:
    assert pp.get("/ix/photo.jpg?tr=w-50").image().width == 50
    assert pp.get("/cl/tr:w-60/photo.jpg").image().width == 60
    assert pp.get("/ak/photo.jpg").status == 200


def test_signatures_cover_the_url_as_sent(pp: Pixelport) -> None:
    target = "image/upload/w_100,c_scale/photo.jpg"
    assert pp.get(f"/signed/{target}").status == 401
    signature = sign(KEY, string_to_sign(target, None))
    response = pp.get(f"/signed/{target}?ik-s={signature}")
    assert response.status == 200 and response.image().width == 100
    # A signature of the rewritten (ImageKit) form is not one of the URL sent.
    other = sign(KEY, string_to_sign("tr:w-100/photo.jpg", None))
    assert pp.get(f"/signed/{target}?ik-s={other}").status == 401
