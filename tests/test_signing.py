"""Signed URLs: ImageKit's algorithm, URLs from ImageKit's own SDK, refusals, rotation, CLI."""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, cast

import pytest
from imagekitio import ImageKit

from pixelport import cli
from pixelport.config import EndpointConfig, SecurityConfig, from_dict
from pixelport.delivery.endpoints import Endpoint, EndpointTable
from pixelport.delivery.request import DeliveryRequest, parse_target
from pixelport.errors import BadSignature
from pixelport.origins.chain import OriginChain
from pixelport.security import signing
from pixelport.security.signing import (
    check_request,
    check_signature,
    endpoint_prefix,
    sign,
    sign_url,
    split_query,
    string_to_sign,
)
from tests.helpers import OriginServer, make_image
from tests.test_delivery import config

KEY = "private_test_key"
VECTOR_KEY = "dummy-key"
VECTOR_SIGNATURE = "32dbbbfc5f945c0403c71b54c38e76896ef2d6b0"


def table(*endpoints: EndpointConfig) -> EndpointTable:
    return EndpointTable([Endpoint(e, OriginChain([])) for e in endpoints])


def parse(target: str, *endpoints: EndpointConfig, host: str | None = None) -> DeliveryRequest:
    path, _, query = target.partition("?")
    return parse_target(table(*(endpoints or (EndpointConfig("", ()),))), host, path, query)


# --- the algorithm ----------------------------------------------------------------------------

def test_imagekit_test_vector() -> None:
    message = string_to_sign("sdk-testing-files/future-search.png", None)
    assert message == b"sdk-testing-files/future-search.png9999999999"
    assert sign(VECTOR_KEY, message) == VECTOR_SIGNATURE
    signed = sign_url("https://ik.imagekit.io/demo/sdk-testing-files/future-search.png",
                      "https://ik.imagekit.io/demo/", VECTOR_KEY)
    assert signed.endswith(f"?ik-s={VECTOR_SIGNATURE}")


def test_our_signer_matches_the_sdk() -> None:
    sdk = ImageKit(private_key=VECTOR_KEY)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/sdk-testing-files/future-search.png", {}),
        ("/a b/ünï (1)+%.jpg", {"transformation": [{"width": 300}],
                                "transformation_position": "path"}),
        ("/a.jpg", {"transformation": [{"width": 300, "height": 200}],
                    "query_parameters": {"v": "2", "x": "y"}}),
    ]
    for src, options in cases:
        url = sdk.helper.build_url(src=src, url_endpoint="https://ik.imagekit.io/demo",
                                   signed=True, expires_in=300, **options)
        unsigned, _, _ = url.partition("ik-t=")
        expiry = int(url.split("ik-t=")[1].split("&")[0])
        ours = sign_url(unsigned.rstrip("?&"), "https://ik.imagekit.io/demo/", VECTOR_KEY,
                        expiry)
        assert ours == url


def test_split_query_keeps_everything_else_byte_for_byte() -> None:
    found = split_query("tr=w-100%2Ch-50&a=%20b+c&ik-t=123&x&ik-s=abc")
    assert found.query == "tr=w-100%2Ch-50&a=%20b+c&x"
    assert (found.signature, found.expiry) == ("abc", "123")
    # A percent-encoded name is still the signature parameter: it cannot hide in the query.
    assert split_query("ik%2Ds=abc&b=1") == signing.SignatureParams("b=1", "abc", None)
    assert split_query("") == signing.SignatureParams("", None, None)


def test_a_repeated_signature_parameter_is_refused() -> None:
    with pytest.raises(BadSignature):
        split_query("ik-s=a&ik-s=b")
    with pytest.raises(BadSignature):
        split_query("ik-t=1&ik-t=2&ik-s=c")


def test_signature_parameters_never_reach_the_query() -> None:
    request = parse("/tr:w-10/a.jpg?tr=h-5&v=1&ik-t=2000000000&ik-s=abc")
    assert request.query == (("tr", "h-5"), ("v", "1"))
    assert request.flag("ik-s") is None and request.flag("ik-t") is None
    assert (request.signature, request.expiry) == ("abc", "2000000000")
    assert request.signed_target == "tr:w-10/a.jpg?tr=h-5&v=1"
    assert request.transformation == "w-10:h-5"


def test_signed_target_drops_the_endpoint_prefix() -> None:
    media = EndpointConfig("media/big", ())
    assert parse("/media/big/tr:w-1/a%20b.jpg", media).signed_target == "tr:w-1/a%20b.jpg"
    shop = EndpointConfig("shop", (), ("static.example.com",))
    on_domain = parse("/x/a.jpg?q=1", shop, host="static.example.com")
    assert on_domain.signed_target == "x/a.jpg?q=1"


def now_plus(seconds: int) -> str:
    return str(int(time.time()) + seconds)


def test_check_signature_outcomes() -> None:
    target = "tr:w-100/a.jpg?v=1"
    expiry = now_plus(60)
    good = sign(KEY, string_to_sign(target, expiry))
    check_signature(target, good, expiry, [KEY])
    check_signature(target, good.upper(), expiry, [KEY])
    check_signature(target, sign(KEY, string_to_sign(target, None)), None, [KEY])
    refusals = [
        (target.replace("100", "101"), good, expiry, [KEY], "does not match"),
        (target, good, now_plus(61), [KEY], "does not match"),
        (target, good, expiry, ["other"], "does not match"),
        (target, good, expiry, [], "does not match"),
        (target, None, expiry, [KEY], "no ik-s"),
        (target, good, "12ab", [KEY], "Unix time"),
        (target, good, "-1", [KEY], "Unix time"),
        (target, "", expiry, [KEY], "does not match"),
        (target, "é" * 40, expiry, [KEY], "does not match"),
    ]
    for signed_target, signature, when, keys, message in refusals:
        with pytest.raises(BadSignature) as caught:
            check_signature(signed_target, signature, when, keys)
        assert message in caught.value.message
        assert caught.value.status == 401 and caught.value.code == "ESIGNATURE"
        # Never a hint of the right answer.
        assert good not in caught.value.header


def test_a_signature_cannot_move_digits_from_the_path_to_the_expiry() -> None:
    # Signed string = target + ik-t: "doc-2024" + T is also "doc-202" + "4T".
    expiry = str(int(time.time()) + 3600)
    good = sign(KEY, string_to_sign("secure/doc-2024", expiry))
    check_signature("secure/doc-2024", good, expiry, [KEY])
    with pytest.raises(BadSignature, match="at most 10 digits"):
        check_signature("secure/doc-202", good, "4" + expiry, [KEY])
    with pytest.raises(BadSignature, match="at most 10 digits"):
        check_signature("secure/doc", good, "2024" + expiry, [KEY])
    no_expiry = sign(KEY, string_to_sign("a.jpg", signing.NO_EXPIRY))
    check_signature("a.jpg", no_expiry, signing.NO_EXPIRY, [KEY])  # still the never value


def test_expired_signature_is_refused() -> None:
    target = "a.jpg"
    past = now_plus(-5)
    with pytest.raises(BadSignature, match="expired"):
        check_signature(target, sign(KEY, string_to_sign(target, past)), past, [KEY])


def test_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    keys = ["first", "second", "third"]
    message = string_to_sign("a.jpg", None)
    assert signing.signature_matches(keys, message, sign("first", message))
    assert len(calls) == 3  # no early exit once the first key matched


def test_required_for_endpoint_wins_over_global() -> None:
    strict = SecurityConfig(private_key=KEY, require_signed_urls=True)
    lenient = SecurityConfig(private_key=KEY)
    open_endpoint = EndpointConfig("open", (), require_signed_urls=False)
    locked = EndpointConfig("locked", (), require_signed_urls=True)
    default = EndpointConfig("", ())
    assert not signing.required_for(open_endpoint, strict)
    assert signing.required_for(locked, lenient)
    assert signing.required_for(default, strict) and not signing.required_for(default, lenient)
    with pytest.raises(BadSignature, match="must be signed"):
        check_request(parse("/locked/a.jpg", locked), lenient)
    check_request(parse("/open/a.jpg", open_endpoint), strict)


def test_key_rotation_config() -> None:
    cfg = from_dict({"security": {"private_key": "new", "private_keys": ["old", "new"]}})
    assert cfg.security.keys == ("new", "old")
    assert "new" not in repr(cfg.security) and "old" not in repr(cfg.security)
    only_list = from_dict({"security": {"private_keys": ["a", "b"]}})
    assert only_list.security.keys == ("a", "b")


def test_key_list_reads_env_and_never_echoes_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_KEY", "from-env")
    cfg = from_dict({"security": {"private_keys": ["env:PP_TEST_KEY"]}})
    assert cfg.security.keys == ("from-env",)
    with pytest.raises(ValueError, match=r"private_keys\[0\]") as caught:
        from_dict({"security": {"private_keys": ["env:PP_TEST_MISSING"]}})
    assert "PP_TEST_MISSING" in str(caught.value)
    with pytest.raises(ValueError, match="list of strings"):
        from_dict({"security": {"private_keys": "not-a-list"}})


def test_endpoint_require_signed_urls_config() -> None:
    cfg = from_dict({"endpoint": [{"identifier": "a", "require_signed_urls": True},
                                  {"identifier": "b", "require_signed_urls": False},
                                  {"identifier": "c"}]})
    assert [e.require_signed_urls for e in cfg.endpoints] == [True, False, None]
    with pytest.raises(ValueError, match="reserved"):
        from_dict({"endpoint": [{"identifier": "v1"}]})
    with pytest.raises(ValueError, match="reserved"):
        from_dict({"endpoint": [{"identifier": "api/v1/files"}]})


def test_signing_of_an_absolute_url_path_for_web_proxy() -> None:
    """Web proxy URLs (an absolute URL as the path) verify in both spellings."""
    proxy = EndpointConfig("demo", ())
    security = SecurityConfig(private_key=KEY)
    # The SDK form: the absolute URL with its slashes, the transformation in the query.
    sdk = ImageKit(private_key=KEY)
    url = sdk.helper.build_url(src="/https://example.com/img dir/ü.jpg",
                               url_endpoint="https://ik.imagekit.io/demo",
                               transformation=[{"width": 100}], signed=True)
    target = url.removeprefix("https://ik.imagekit.io")
    request = parse(target, proxy)
    assert request.signed_target.startswith("https://example.com/img%20dir/")
    check_request(request, security)
    # The percent-encoded form ImageKit's docs describe for web proxy signing.
    encoded = sign_url("https://ik.imagekit.io/demo/https%3A%2F%2Fexample.com%2Fa.jpg",
                       "https://ik.imagekit.io/demo/", KEY)
    check_request(parse(encoded.removeprefix("https://ik.imagekit.io"), proxy), security)
    tampered = encoded.replace("a.jpg", "b.jpg").removeprefix("https://ik.imagekit.io")
    with pytest.raises(BadSignature):
        check_request(parse(tampered, proxy), security)


def test_endpoint_prefix_for_cli() -> None:
    endpoints = (EndpointConfig("", ()), EndpointConfig("media", ()),
                 EndpointConfig("media/big", ()), EndpointConfig("shop", (), ("cdn.shop.test",)))
    assert endpoint_prefix("https://x.test/a.jpg", endpoints) == "https://x.test/"
    assert endpoint_prefix("https://x.test/media/a.jpg", endpoints) == "https://x.test/media/"
    assert endpoint_prefix("https://x.test/media/big/a.jpg",
                           endpoints) == "https://x.test/media/big/"
    assert endpoint_prefix("https://cdn.shop.test:8443/media/a.jpg",
                           endpoints) == "https://cdn.shop.test:8443/"
    with pytest.raises(ValueError):
        endpoint_prefix("https://x.test/a.jpg", (EndpointConfig("only", ()),))
    with pytest.raises(ValueError):
        endpoint_prefix("ftp://x.test/a.jpg", endpoints)


# --- served: URLs from ImageKit's Python SDK ----------------------------------------------------

def signed_config(library: Path, **security: Any) -> dict[str, Any]:
    data = config(library)
    data["security"].update({"private_key": KEY, "require_signed_urls": True, **security})
    return data


@pytest.fixture
def sdk() -> ImageKit:
    return ImageKit(private_key=KEY)


def target_of(url: str, base: str) -> str:
    assert url.startswith(base), url
    return url[len(base):]


@pytest.mark.integration
@pytest.mark.parametrize("position", ["path", "query"])
@pytest.mark.parametrize("expires_in", [None, 300])
def test_sdk_signed_urls_are_served(serve: Any, library: Path, sdk: ImageKit, position: str,
                                    expires_in: int | None) -> None:
    pp = serve(signed_config(library))
    where = cast(Literal["path", "query"], position)
    expiry: dict[str, Any] = {"expires_in": expires_in} if expires_in else {}
    for src in ("/photo.jpg", "/sub dir/ünï cödé (1)+%.jpg"):
        url = sdk.helper.build_url(src=src, url_endpoint=pp.url, signed=True, **expiry,
                                   transformation=[{"width": 40}], transformation_position=where)
        assert ("ik-t=" in url) == (expires_in is not None)
        response = pp.get(target_of(url, pp.url))
        assert response.status == 200, (url, response.ik_error)
        assert response.image().width == 40
        unsigned = sdk.helper.build_url(src=src, url_endpoint=pp.url,
                                        transformation=[{"width": 40}],
                                        transformation_position=where)
        refused = pp.get(target_of(unsigned, pp.url))
        assert refused.status == 401 and refused.ik_error.startswith("ESIGNATURE - ")


@pytest.mark.integration
def test_sdk_signed_url_with_extra_query_parameters(serve: Any, library: Path,
                                                    sdk: ImageKit) -> None:
    pp = serve(signed_config(library))
    url = sdk.helper.build_url(src="/photo.jpg", url_endpoint=pp.url, signed=True,
                               expires_in=120, transformation=[{"height": 30}],
                               query_parameters={"v": "123", "ik-attachment": "true"})
    response = pp.get(target_of(url, pp.url))
    assert response.status == 200, response.ik_error
    assert response.image().height == 30
    assert response.headers["content-disposition"].startswith("attachment")
    # The extra parameters are signed too.
    refused = pp.get(target_of(url.replace("v=123", "v=124"), pp.url))
    assert refused.status == 401


@pytest.mark.integration
def test_sdk_signed_url_on_a_named_endpoint_and_a_custom_domain(serve: Any, library: Path,
                                                                sdk: ImageKit) -> None:
    pp = serve(config(library, endpoints=[
        {"identifier": "media", "origins": [], "require_signed_urls": True},
        {"identifier": "shop", "origins": [], "domains": ["static.example.com"],
         "require_signed_urls": True},
        {"identifier": "", "origins": []},
    ], security={"allow_private_networks": True, "private_key": KEY}))
    url = sdk.helper.build_url(src="/photo.jpg", url_endpoint=pp.url + "/media", signed=True,
                               transformation=[{"width": 30}], transformation_position="path")
    assert "/media/tr:w-30/photo.jpg?ik-s=" in url
    assert pp.get(target_of(url, pp.url)).image().width == 30
    assert pp.get("/media/tr:w-30/photo.jpg").status == 401
    assert pp.get("/tr:w-30/photo.jpg").status == 200  # the default endpoint is not locked
    # ImageKit's scheme does not sign the endpoint: the same rest of the URL verifies on any
    # endpoint that shares the key (documented in SECURITY.md).
    moved = target_of(url, pp.url).replace("/media/", "/", 1)
    assert pp.get(moved).status == 200

    domain_url = sdk.helper.build_url(src="/photo.jpg", url_endpoint="https://static.example.com",
                                      signed=True, transformation=[{"width": 20}])
    target = target_of(domain_url, "https://static.example.com")
    assert pp.get(target, {"Host": "static.example.com"}).image().width == 20
    assert pp.get(target.split("?")[0] + "?tr=w-20",
                  {"Host": "static.example.com"}).status == 401


@pytest.mark.integration
def test_sdk_signed_web_proxy_urls_are_served(serve: Any, origin: OriginServer,
                                              sdk: ImageKit) -> None:
    origin.files["/dir/a b.jpg"] = make_image(80, 60)
    pp = serve(config(None, [{"name": "proxy", "type": "web_proxy",
                              "allowed_hosts": [f"127.0.0.1:{origin.port}"]}],
                      [{"identifier": "proxy", "origins": ["proxy"],
                        "require_signed_urls": True}],
                      security={"allow_private_networks": True, "private_key": KEY}))
    remote = f"{origin.url}/dir/a b.jpg"
    urls = [
        # src as a path under the endpoint, transformation in the path or the query
        sdk.helper.build_url(src="/" + remote, url_endpoint=pp.url + "/proxy", signed=True,
                             transformation=[{"width": 30}], transformation_position="path"),
        sdk.helper.build_url(src="/" + remote, url_endpoint=pp.url + "/proxy", signed=True,
                             expires_in=60, transformation=[{"width": 30}]),
        # src as the full proxied URL (the SDK then always puts tr in the query)
        sdk.helper.build_url(src=f"{pp.url}/proxy/{origin.url}/dir/a%20b.jpg",
                             url_endpoint=pp.url + "/proxy", signed=True,
                             transformation=[{"width": 30}]),
    ]
    for url in urls:
        response = pp.get(target_of(url, pp.url))
        assert response.status == 200, (url, response.ik_error)
        assert response.image().width == 30
        tampered = target_of(url, pp.url).replace("a%20b", "a%20c")
        assert pp.get(tampered).status == 401, tampered
    assert pp.get(f"/proxy/tr:w-30/{origin.url}/dir/a%20b.jpg").status == 401


@pytest.mark.integration
def test_tampered_and_expired_urls_are_refused(serve: Any, library: Path, sdk: ImageKit,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pp = serve(signed_config(library, require_signed_urls=False))
    url = target_of(sdk.helper.build_url(
        src="/photo.jpg", url_endpoint=pp.url, signed=True, expires_in=600,
        transformation=[{"width": 50}], transformation_position="path"), pp.url)
    assert pp.get(url).status == 200
    expiry = url.split("ik-t=")[1].split("&")[0]
    tampered = {
        "path": url.replace("photo.jpg", "alpha.png"),
        "tr": url.replace("w-50", "w-500"),
        "added tr": url + "&tr=w-60",
        "expiry": url.replace(f"ik-t={expiry}", f"ik-t={int(expiry) + 1}"),
        "no expiry": url.replace(f"ik-t={expiry}&", ""),
        "signature": url[:-1] + ("0" if url[-1] != "0" else "1"),
        "wrong key": target_of(ImageKit(private_key="wrong").helper.build_url(
            src="/photo.jpg", url_endpoint=pp.url, signed=True, expires_in=600,
            transformation=[{"width": 50}], transformation_position="path"), pp.url),
    }
    for what, target in tampered.items():
        response = pp.get(target)
        assert response.status == 401, what
        assert response.ik_error.startswith("ESIGNATURE - "), what
        assert response.headers["cache-control"] == "no-store", what

    # An expired URL, built by the SDK with its clock 20 minutes behind.
    behind = SimpleNamespace(time=lambda: time.time() - 1200)
    monkeypatch.setattr("imagekitio.lib.helper.time", behind)
    old = target_of(sdk.helper.build_url(src="/photo.jpg", url_endpoint=pp.url, signed=True,
                                         expires_in=600), pp.url)
    monkeypatch.undo()
    response = pp.get(old)
    assert response.status == 401 and "expired" in response.ik_error


@pytest.mark.integration
def test_a_signature_is_checked_even_when_not_required(serve: Any, library: Path,
                                                       sdk: ImageKit) -> None:
    pp = serve(signed_config(library, require_signed_urls=False))
    assert pp.get("/photo.jpg?tr=w-10").status == 200
    assert pp.get("/photo.jpg?tr=w-10&ik-s=0000").status == 401
    assert pp.get("/photo.jpg?tr=w-10&ik-t=9999999999").status == 401
    no_key = serve(config(library))
    assert no_key.get("/photo.jpg?ik-s=" + "0" * 40).status == 401


@pytest.mark.integration
def test_rotated_keys_are_all_accepted(serve: Any, library: Path) -> None:
    pp = serve(signed_config(library, private_key="new-key", private_keys=["old-key"]))
    for key, status in (("new-key", 200), ("old-key", 200), ("retired-key", 401)):
        url = ImageKit(private_key=key).helper.build_url(src="/photo.jpg", url_endpoint=pp.url,
                                                          signed=True)
        assert pp.get(target_of(url, pp.url)).status == status, key


@pytest.mark.integration
def test_sign_url_command(serve: Any, library: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    pp = serve(signed_config(library))
    config_file = tmp_path / "signing.toml"
    config_file.write_text(f'[security]\nprivate_key = "{KEY}"\n\n[[endpoint]]\nidentifier = ""\n')
    for extra in ([], ["--expires-in", "60"]):
        assert cli.main(["sign-url", pp.url + "/tr:w-20/sub dir/ünï cödé (1)+%25.jpg",
                         "--config", str(config_file), *extra]) == 0
        signed = capsys.readouterr().out.strip()
        assert ("ik-t=" in signed) == bool(extra)
        response = pp.get(target_of(signed, pp.url))
        assert response.status == 200, (signed, response.ik_error)
        assert response.image().width == 20
    # Without --config the key comes from PIXELPORT_PRIVATE_KEY; without either, an error.
    monkeypatch.setenv("PIXELPORT_PRIVATE_KEY", KEY)
    assert cli.main(["sign-url", pp.url + "/photo.jpg"]) == 0
    assert pp.get(target_of(capsys.readouterr().out.strip(), pp.url)).status == 200
    monkeypatch.delenv("PIXELPORT_PRIVATE_KEY")
    assert cli.main(["sign-url", pp.url + "/photo.jpg"]) == 2
    assert "private_key" in capsys.readouterr().err
