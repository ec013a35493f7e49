"""Query parameters other than `tr` and `ik-*`: part of the result key, sent on to web origins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelport.delivery.request import canonical_query, origin_query
from tests.helpers import OriginServer, make_image
from tests.test_delivery import config, web_origin


def test_origin_query_drops_only_our_parameters() -> None:
    assert origin_query("v=2&tr=w-100&ik-attachment=true&X-Amz-Signature=ab%2Fc") == (
        "v=2&X-Amz-Signature=ab%2Fc")
    assert origin_query("ik%2Dattachment=true&IK-foo=1&tr=&v") == "v"
    assert origin_query("") == ""
    assert canonical_query("b=1&a=2&b=0") == "a=2&b=1&b=0"  # a name's values keep their order


PART = st.tuples(st.sampled_from(["a", "b", "v", "tr", "ik-x", "Z"]),
                 st.text("xyz019%", max_size=3)).map("=".join)


@given(st.lists(PART, max_size=6), st.randoms())
def test_canonical_query_ignores_the_order_of_names(parts: list[str], random: Any) -> None:
    shuffled = parts[:]
    random.shuffle(shuffled)
    by_name: dict[str, list[str]] = {}
    for part in parts:
        by_name.setdefault(part.split("=")[0], []).append(part)
    # Reorder only between names: the values of one name keep their order.
    reordered: list[str] = []
    for name in dict.fromkeys(p.split("=")[0] for p in shuffled):
        reordered.extend(by_name[name])
    assert canonical_query(origin_query("&".join(reordered))) == canonical_query(
        origin_query("&".join(parts)))
    assert "tr=" not in "&" + origin_query("&".join(parts))
    assert "ik-" not in origin_query("&".join(parts))


@pytest.mark.integration
def test_versioned_urls_are_results_of_their_own(serve: Any, origin: OriginServer) -> None:
    origin.files["/hubble.jpg"] = make_image(200, 100, colour=(255, 0, 0))
    pp = serve(config(None, [web_origin("web", origin)]))
    first = pp.get("/tr:w-100/hubble.jpg?v=1")
    assert first.status == 200 and first.image().getpoint(5, 5)[0] > 200

    origin.files["/hubble.jpg"] = make_image(200, 100, colour=(0, 0, 255))
    second = pp.get("/tr:w-100/hubble.jpg?v=2")
    assert second.status == 200 and second.image().getpoint(5, 5)[2] > 200  # the new file
    assert pp.get("/tr:w-100/hubble.jpg?v=1").body == first.body  # still cached as it was
    assert [(r.path, r.query) for r in origin.requests] == [
        ("/hubble.jpg", "v=1"), ("/hubble.jpg", "v=2")]

    # The order of the parameters does not make another result; ours never reach the origin.
    assert pp.get("/tr:w-100/hubble.jpg?b=2&a=1").status == 200
    assert pp.get("/tr:w-100/hubble.jpg?a=1&b=2").status == 200
    assert pp.get("/hubble.jpg?a=1&tr=w-100&ik-attachment=false&b=2").status == 200
    assert [r.query for r in origin.requests[2:]] == ["b=2&a=1"]  # then two cache hits


@pytest.mark.integration
def test_forwarding_can_be_turned_off(serve: Any, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(50, 40)
    pp = serve(config(None, [web_origin("web", origin, forward_query=False)]))
    assert pp.get("/tr:w-10/a.jpg?v=1").status == 200
    assert pp.get("/tr:w-10/a.jpg?v=2").status == 200  # a result of its own all the same
    assert [r.query for r in origin.requests] == ["", ""]


@pytest.mark.integration
def test_web_proxy_forwards_a_signed_origin_query(serve: Any, origin: OriginServer) -> None:
    origin.files["/signed.jpg"] = make_image(50, 40)
    pp = serve(config(None, [{"name": "proxy", "type": "web_proxy", "allowed_hosts": ["*"]}]))
    target = f"/tr:w-10/{origin.url}/signed.jpg?Expires=99&Signature=a%2Bb~c&tr=h-5"
    response = pp.get(target)
    assert response.status == 200, response.ik_error
    assert response.image().height == 5
    assert origin.requests[-1].query == "Expires=99&Signature=a%2Bb~c"


@pytest.mark.integration
def test_saved_originals_are_kept_per_query(serve: Any, origin: OriginServer,
                                            tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(60, 40, colour=(255, 0, 0))
    cache = {"dir": str(tmp_path / "cache"), "save_originals": True}
    pp = serve(config(None, [web_origin("web", origin)], cache=cache))
    assert pp.get("/tr:w-10/a.jpg?v=1").status == 200
    origin.files["/a.jpg"] = make_image(60, 40, colour=(0, 0, 255))
    blue = pp.get("/tr:w-10/a.jpg?v=2")
    assert blue.image().getpoint(2, 2)[2] > 200  # not the copy saved for ?v=1
    assert [r.query for r in origin.requests] == ["v=1", "v=2"]
