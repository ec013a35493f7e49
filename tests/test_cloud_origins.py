"""Cloud storage origins end to end: S3 (moto), Azure Blob (Azurite), GCS (emulator), web proxy.

One pixelport serves every origin under its own endpoint (identifier = origin name), so the
emulators and pixelport start once for the module.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from pixelport.config import from_dict
from pixelport.origins.base import FetchOptions, Original, Shared
from pixelport.origins.cloud import OriginSession
from pixelport.origins.http import HttpClient
from pixelport.origins.registry import build_origin
from tests.cloud_servers import (
    SPECIAL_NAMES,
    Azurite,
    GcsServers,
    MotoS3,
    corpus,
    new_private_key,
    pem,
)
from tests.helpers import OriginServer, Pixelport, free_port, make_image, server_timing

pytestmark = pytest.mark.integration

PROVIDERS = ("s3", "azure", "gcs")
SLOW = 2.0  # seconds the faulty origin waits; read timeouts are 0.3 s


@pytest.fixture(scope="module")
def faulty() -> Iterator[OriginServer]:
    """A plain HTTP server standing in for a provider that answers 5xx or too slowly."""
    server = OriginServer().start()
    for prefix in ("/photos/gallery", "/devstoreaccount1/photos/gallery"):
        server.statuses[f"{prefix}/boom.jpg"] = 503
        server.files[f"{prefix}/slow.jpg"] = b"late"
        server.delays[f"{prefix}/slow.jpg"] = SLOW
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web() -> Iterator[OriginServer]:
    """A web server origin at the end of the chain."""
    server = OriginServer().start()
    server.files["/chain/only-web.jpg"] = make_image(110, 70)
    server.delays["/chain/only-web.jpg"] = 0.25
    server.files["/huge.jpg"] = b"\0" * 1_500_000
    yield server
    server.stop()


def s3_origins(moto: MotoS3, faulty: OriginServer) -> list[dict[str, Any]]:
    """S3 origins: both addressing styles, both credential sources, faults."""
    key, secret = moto.reader
    creds = {"access_key_id": key, "secret_access_key": secret}
    compatible = {"type": "s3_compatible", "bucket": "photos", "path_style": True,
                  "endpoint": moto.endpoint, **creds}
    closed = f"http://127.0.0.1:{free_port()}"
    return [
        {"name": "s3", **compatible, "prefix": "gallery"},
        {"name": "s3-virtual", **compatible, "path_style": False,
         "endpoint": moto.virtual_endpoint, "prefix": "/gallery/"},
        # type s3 reaches moto through botocore's AWS_ENDPOINT_URL_S3 (set for the module).
        {"name": "s3-aws", "type": "s3", "bucket": "photos", "prefix": "gallery/", **creds},
        {"name": "s3-chain", "type": "s3", "bucket": "photos", "prefix": "gallery"},
        {"name": "s3-root", **compatible, "prefix": ""},
        {"name": "s3-slash", **compatible, "prefix": "/"},
        {"name": "s3-archive", **compatible, "bucket": "archive",
         "access_key_id": moto.archivist[0], "secret_access_key": moto.archivist[1]},
        {"name": "s3-archivist", **compatible, "prefix": "gallery",
         "access_key_id": moto.archivist[0], "secret_access_key": moto.archivist[1]},
        {"name": "s3-wrong-secret", **compatible, "secret_access_key": "not-the-secret"},
        {"name": "s3-unknown-key", **compatible, "access_key_id": "AKIAUNKNOWN0000000000"},
        {"name": "s3-closed", **compatible, "endpoint": closed},
        {"name": "s3-faulty", **compatible, "endpoint": faulty.url, "prefix": "gallery",
         "read_timeout": 0.3},
    ]


def azure_origins(az: Azurite, faulty: OriginServer) -> list[dict[str, Any]]:
    """Azure origins: account and container SAS, bad SAS, faults."""
    base = {"type": "azure_blob", "account_name": "devstoreaccount1", "container": "photos",
            "endpoint": az.endpoint, "sas_token": az.account_sas()}
    past = az.account_sas(expiry=datetime(2001, 1, 1, tzinfo=UTC))
    wrong_key = az.account_sas(key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=")
    return [
        {"name": "azure", **base, "prefix": "gallery"},
        {"name": "azure-root", **base},
        {"name": "azure-container-sas", **base, "sas_token": az.container_sas(),
         "prefix": "/gallery/"},
        {"name": "azure-expired", **base, "sas_token": past, "prefix": "gallery"},
        {"name": "azure-wrong-key", **base, "sas_token": wrong_key, "prefix": "gallery"},
        {"name": "azure-closed", **base, "endpoint": f"http://127.0.0.1:{free_port()}/x"},
        {"name": "azure-faulty", **base, "endpoint": f"{faulty.url}/devstoreaccount1",
         "prefix": "gallery", "read_timeout": 0.3},
    ]


def gcs_origins(gcs: GcsServers, faulty: OriginServer) -> list[dict[str, Any]]:
    """GCS origins: key file and inline key, a key the token endpoint rejects, faults."""
    base = {"type": "gcs", "bucket": "photos", "endpoint": gcs.endpoint,
            "credentials_file": str(gcs.credentials_file)}
    return [
        {"name": "gcs", **base, "prefix": "gallery"},
        {"name": "gcs-root", **base},
        {"name": "gcs-inline", "type": "gcs", "bucket": "photos", "endpoint": gcs.endpoint,
         "prefix": "gallery/", "client_email": gcs.client_email,
         "private_key": gcs.private_key.replace("\n", "\\n"), "token_uri": gcs.token_uri},
        {"name": "gcs-wrong-key", "type": "gcs", "bucket": "photos", "endpoint": gcs.endpoint,
         "client_email": gcs.client_email, "private_key": pem(new_private_key()),
         "token_uri": gcs.token_uri},
        {"name": "gcs-closed", **base, "endpoint": f"http://127.0.0.1:{free_port()}"},
        {"name": "gcs-faulty", **base, "endpoint": faulty.url, "prefix": "gallery",
         "read_timeout": 0.3},
    ]


@pytest.fixture(scope="module")
def pp(moto_s3: MotoS3, azurite: Azurite, gcs_servers: GcsServers, faulty: OriginServer,
       web: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pixelport]:
    """pixelport with every cloud origin, each under its own endpoint, plus a chain."""
    library = tmp_path_factory.mktemp("library")
    (library / "chain").mkdir()
    (library / "chain" / "only-library.jpg").write_bytes(make_image(40, 30))
    origins = (s3_origins(moto_s3, faulty) + azure_origins(azurite, faulty)
               + gcs_origins(gcs_servers, faulty)
               + [{"name": "web", "type": "web_server", "base_url": web.url},
                  {"name": "proxy", "type": "web_proxy",
                   "allowed_hosts": ["127.0.0.1", "*.example.org"], "read_timeout": 0.3}])
    endpoints = [{"identifier": o["name"], "origins": [o["name"]], "library": False}
                 for o in origins]
    endpoints.append({"identifier": "chain", "origins": ["s3", "azure-root", "gcs-root", "web"]})
    endpoints.append({"identifier": "two-s3", "origins": ["s3-root", "s3-archive"],
                      "library": False})
    config = {"security": {"allow_private_networks": True}, "library": {"dir": str(library)},
              "origin": origins, "endpoint": endpoints, "limits": {"max_input_bytes": "1MB"}}
    env = {"AWS_ENDPOINT_URL_S3": moto_s3.endpoint, "AWS_ACCESS_KEY_ID": moto_s3.reader[0],
           "AWS_SECRET_ACCESS_KEY": moto_s3.reader[1], "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            mp.delenv(name, raising=False)
        server = Pixelport(config)
        yield server
        server.stop()


# --- serving ----------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["s3", "s3-virtual", "s3-aws", "s3-chain", "azure",
                                      "azure-container-sas", "gcs", "gcs-inline"])
def test_image_is_fetched_and_transformed(pp: Pixelport, endpoint: str) -> None:
    response = pp.get(f"/{endpoint}/tr:w-60/photo.jpg")
    assert response.status == 200, response.ik_error
    assert response.image().width == 60
    assert "last-modified" in response.headers or endpoint.startswith("gcs")


@pytest.mark.parametrize("endpoint", ["s3", "azure", "gcs", "proxy"])
def test_an_original_past_the_cap_is_never_transformed(pp: Pixelport, web: OriginServer,
                                                       endpoint: str) -> None:
    path = f"{web.url}/huge.jpg" if endpoint == "proxy" else "huge.jpg"
    refused = pp.get(f"/{endpoint}/tr:w-10/{path}")
    assert refused.status == 400 and refused.ik_error.startswith("ELIMIT - "), refused.ik_error
    served = pp.get(f"/{endpoint}/{path}")  # no transformation: streamed as it is
    assert served.status == 200 and served.body == b"\0" * 1_500_000


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_special_character_keys(pp: Pixelport, provider: str, name: str) -> None:
    response = pp.get(f"/{provider}/special/{quote(name)}")
    assert response.status == 200, response.ik_error
    assert response.body == f"file {name}\n".encode()


@pytest.mark.parametrize(("endpoint", "path"), [
    ("s3", "photo.jpg"),  # prefix "gallery"
    ("s3-virtual", "photo.jpg"),  # "/gallery/"
    ("s3-aws", "photo.jpg"),  # "gallery/"
    ("s3-root", "gallery/photo.jpg"),  # ""
    ("s3-slash", "gallery/photo.jpg"),  # "/"
    ("s3-root", "top.txt"),
    ("azure-root", "top.txt"),
    ("azure-container-sas", "notes.txt"),  # "/gallery/"
    ("gcs-root", "top.txt"),
    ("gcs-inline", "notes.txt"),  # "gallery/"
])
def test_prefixes_join_safely(pp: Pixelport, endpoint: str, path: str) -> None:
    response = pp.get(f"/{endpoint}/{path}")
    assert response.status == 200, response.ik_error
    key = path if endpoint.endswith(("root", "slash")) else f"gallery/{path}"
    if key.endswith(".jpg"):  # images are re-encoded even without a transformation
        assert response.image().width == 120
    else:
        assert response.body == corpus()[key].data


@pytest.mark.parametrize("provider", PROVIDERS)
def test_range_is_passed_to_the_provider(pp: Pixelport, provider: str) -> None:
    response = pp.get(f"/{provider}/notes.txt", {"Range": "bytes=6-9"})
    assert response.status == 206, response.ik_error
    assert response.body == b"from"
    size = len(corpus()["gallery/notes.txt"].data)
    assert response.headers["content-range"] == f"bytes 6-9/{size}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_range_is_forwarded_and_a_range_past_the_end_is_416(
        pp: Pixelport, provider: str) -> None:
    response = pp.get(f"/{provider}/clip.mp4", {"Range": "bytes=6-9"})
    assert response.status == 206, response.ik_error
    assert response.body == bytes([6, 7, 8, 9])
    assert response.headers["content-range"] == "bytes 6-9/1024"
    if provider == "gcs":
        return  # gcp-storage-emulator answers 206 "bytes 5000-1023/1024" where GCS says 416
    past = pp.get(f"/{provider}/clip.mp4", {"Range": "bytes=5000-"})
    assert past.status == 416 and past.body == b"" and not past.ik_error
    if provider == "azure":  # moto sends no size with InvalidRange
        assert past.headers["content-range"] == "bytes */1024"


def test_s3_addressing_styles(pp: Pixelport, moto_s3: MotoS3) -> None:
    assert pp.get("/s3/notes.txt").status == 200  # path style on http://127.0.0.1:PORT
    assert pp.get("/s3-virtual/notes.txt").status == 200
    # Virtual-hosted: the bucket became part of the host name (the only name looked up).
    assert moto_s3.resolved == {"photos.localhost"}


def test_two_s3_origins_with_different_credentials(pp: Pixelport, moto_s3: MotoS3) -> None:
    # Each user may read one bucket only, so a shared client would be refused one of them.
    assert pp.get("/two-s3/tr:w-20/archived.jpg").image().width == 20
    assert pp.get("/two-s3/tr:w-20/gallery/photo.jpg").image().width == 20
    denied = pp.get("/s3-archivist/photo.jpg")  # the archive's user on the photos bucket
    assert denied.status == 404 and denied.ik_error.startswith("EACCES - "), denied.ik_error


def test_chain_library_s3_azure_gcs_web(pp: Pixelport) -> None:
    assert pp.get("/chain/tr:w-10/chain/only-library.jpg").status == 200
    assert pp.get("/chain/tr:w-10/chain/only-azure.jpg").image().width == 10
    response = pp.get("/chain/tr:w-10/chain/only-gcs.jpg")
    assert response.status == 200, response.ik_error
    assert response.image().width == 10
    began = time.monotonic()
    response = pp.get("/chain/tr:w-10/chain/only-web.jpg")
    elapsed = (time.monotonic() - began) * 1000
    assert response.status == 200, response.ik_error
    download = server_timing(response.headers["server-timing"])["download"]
    # The web server waits 250 ms: the download entry covers every source tried before it.
    assert isinstance(download, float) and 250 <= download <= elapsed
    missing = pp.get("/chain/chain/nowhere.jpg")
    assert missing.status == 404 and missing.ik_error.startswith("ENOENT - ")


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "path", "code"), [
    ("s3", "missing.jpg", "ENOENT"),
    ("s3-wrong-secret", "gallery/photo.jpg", "EACCES"),
    ("s3-unknown-key", "gallery/photo.jpg", "EACCES"),
    ("s3-closed", "photo.jpg", "ECONNREFUSED"),
    ("s3-faulty", "boom.jpg", "UNIDENTIFIED"),
    ("s3-faulty", "slow.jpg", "UNIDENTIFIED"),
    ("azure", "missing.jpg", "ENOENT"),
    ("azure-expired", "photo.jpg", "EACCES"),
    ("azure-wrong-key", "photo.jpg", "EACCES"),
    ("azure-closed", "photo.jpg", "ECONNREFUSED"),
    ("azure-faulty", "boom.jpg", "UNIDENTIFIED"),
    ("azure-faulty", "slow.jpg", "UNIDENTIFIED"),
    ("gcs", "missing.jpg", "ENOENT"),
    ("gcs-wrong-key", "gallery/photo.jpg", "EACCES"),
    ("gcs-closed", "photo.jpg", "ECONNREFUSED"),
    ("gcs-faulty", "boom.jpg", "UNIDENTIFIED"),
    ("gcs-faulty", "slow.jpg", "UNIDENTIFIED"),
])
def test_error_codes(pp: Pixelport, moto_s3: MotoS3, endpoint: str, path: str,
                     code: str) -> None:
    began = time.monotonic()
    response = pp.get(f"/{endpoint}/tr:w-10/{path}")
    assert time.monotonic() - began < SLOW - 0.2  # timeouts are the origin's, not the server's
    assert response.status == 404
    assert response.ik_error.startswith(f"{code} - "), response.ik_error
    assert repr(endpoint) in response.ik_error or code == "ENOENT"
    for secret in (moto_s3.reader[1], "not-the-secret", "sig=", "BEGIN PRIVATE"):
        assert secret not in response.ik_error


def test_gcs_token_is_fetched_once_and_reused(pp: Pixelport, gcs_servers: GcsServers) -> None:
    before = gcs_servers.token_requests.get(gcs_servers.client_email, 0)
    for _ in range(3):
        assert pp.get("/gcs-root/top.txt").status == 200
    assert gcs_servers.token_requests[gcs_servers.client_email] - before <= 1


# --- web proxy --------------------------------------------------------------------------------

def test_web_proxy_serves_allowed_hosts(pp: Pixelport, web: OriginServer) -> None:
    web.files["/proxied/a b.jpg"] = make_image(80, 60)
    host = f"127.0.0.1:{web.port}"
    for target in (f"/proxy/tr:w-30/http://{host}/proxied/a%20b.jpg",
                   f"/proxy/http://{host}/proxied/a%20b.jpg?tr=w-30",
                   f"/proxy/tr:w-30/http:/{host}/proxied/a%20b.jpg"):  # a collapsed slash
        response = pp.get(target)
        assert response.status == 200, (target, response.ik_error)
        assert response.image().width == 30
    assert web.paths()[-1] == "/proxied/a b.jpg"
    assert web.requests[-1].headers["x-req-from"] == "pixelport"


def test_web_proxy_refuses_other_hosts(pp: Pixelport) -> None:
    for target in ("/proxy/https://evil.example.com/x.jpg", "/proxy/https://example.org/x.jpg",
                   "/proxy/https://localhost/x.jpg"):
        response = pp.get(target)
        assert response.status == 404
        assert response.ik_error.startswith("EACCES - ") and "allowed_hosts" in response.ik_error
    response = pp.get("/proxy/not-a-url.jpg")
    assert response.status == 404 and response.ik_error.startswith("ENOENT - ")


def test_web_proxy_layers_follow_the_allow_list(pp: Pixelport, web: OriginServer) -> None:
    import base64

    import pyvips

    web.files["/proxied/base.png"] = make_image(100, 100, ".png")
    web.files["/proxied/mark.png"] = bytes(pyvips.Image.black(20, 20).new_from_image(
        [255, 0, 0]).cast("uchar").copy(interpretation="srgb").pngsave_buffer())
    base = f"http://127.0.0.1:{web.port}/proxied/base.png"

    def layer(url: str) -> str:
        encoded = base64.b64encode(url.encode()).decode()
        return f"/proxy/tr:l-image,ie-{encoded},lx-0,ly-0,l-end,f-png/{base}"

    allowed = pp.get(layer(f"http://127.0.0.1:{web.port}/proxied/mark.png"))
    assert allowed.status == 200, allowed.ik_error
    assert allowed.image()(10, 10)[:3] == [255, 0, 0]
    refused = pp.get(layer("https://evil.example.com/mark.png"))
    assert refused.status == 404 and refused.ik_error.startswith("EACCES - ")
    assert "allowed_hosts" in refused.ik_error


def test_web_proxy_checks_redirect_hops(pp: Pixelport, web: OriginServer) -> None:
    web.redirects["/hop.jpg"] = "http://elsewhere.invalid/x.jpg"
    response = pp.get(f"/proxy/http://127.0.0.1:{web.port}/hop.jpg")
    assert response.status == 404 and response.ik_error.startswith("EACCES - ")


def test_web_proxy_refuses_private_addresses_by_default(web: OriginServer) -> None:
    web.files["/private.jpg"] = make_image(10, 10)
    config = {"library": {"dir": ""},
              "origin": [{"name": "proxy", "type": "web_proxy", "allowed_hosts": ["*"]}],
              "endpoint": [{"identifier": "", "origins": ["proxy"]}]}
    server = Pixelport(config)
    try:
        for host in (f"127.0.0.1:{web.port}", f"localhost:{web.port}"):
            response = server.get(f"/http://{host}/private.jpg")
            assert response.status == 404
            assert response.ik_error.startswith("ECONNREFUSED - "), response.ik_error
        assert "/private.jpg" not in web.paths()
    finally:
        server.stop()


# --- what the origins report (called directly) ------------------------------------------------

def direct_fetches(origin: dict[str, Any], path: str,
                   options: list[FetchOptions]) -> list[tuple[Original, bytes]]:
    """Build one origin and fetch `path` once per options, in one event loop."""
    config = from_dict({"library": {"dir": ""}, "origin": [origin]}, base=Path.cwd())
    built = build_origin(config.origins[0], Shared(config, HttpClient(
        allow_private_networks=True)))

    async def run() -> list[tuple[Original, bytes]]:
        results = []
        try:
            for option in options:
                original = await built.fetch(path, option)
                body = b"".join([chunk async for chunk in original.chunks()])
                await original.close()
                results.append((original, body))
        finally:
            await built.aclose()
        return results

    return asyncio.run(run())


@pytest.fixture
def direct_origins(moto_s3: MotoS3, azurite: Azurite, gcs_servers: GcsServers,
                   faulty: OriginServer) -> dict[str, dict[str, Any]]:
    """The main origin of each provider as config."""
    every = (s3_origins(moto_s3, faulty) + azure_origins(azurite, faulty)
             + gcs_origins(gcs_servers, faulty))
    return {o["name"]: o for o in every if o["name"] in PROVIDERS}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_metadata_conditionals_and_private_flag(direct_origins: dict[str, dict[str, Any]],
                                                provider: str) -> None:
    origin = direct_origins[provider]
    item = corpus()["gallery/notes.txt"]
    [(first, body)] = direct_fetches(origin, "notes.txt", [FetchOptions()])
    assert body == item.data and first.status == 200 and first.source == provider
    assert first.content_type == "text/plain"
    assert first.size == len(item.data)
    assert first.private is False
    if provider != "gcs":  # the GCS emulator sends no validators; GCS itself does
        assert first.etag and first.last_modified is not None
        modified = first.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
        results = direct_fetches(origin, "notes.txt", [
            FetchOptions(if_none_match=first.etag),
            FetchOptions(if_modified_since=modified),
            FetchOptions(byte_range="bytes=0-4"),
        ])
        assert [r[0].status for r in results] == [304, 304, 206]
        assert results[0][1] == b"" and results[2][1] == b"hello"
        assert results[2][0].content_range == f"bytes 0-4/{len(item.data)}"
    [(private, _)] = direct_fetches(origin, "private.jpg", [FetchOptions()])
    assert private.private is True and private.content_type == "image/jpeg"


def test_gcs_application_default_credentials(gcs_servers: GcsServers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcs_servers.credentials_file))
    origin = {"name": "gcs-adc", "type": "gcs", "bucket": "photos",
              "endpoint": gcs_servers.endpoint}
    [(original, body)] = direct_fetches(origin, "top.txt", [FetchOptions()])
    assert original.status == 200 and body == corpus()["top.txt"].data


def test_cloud_origin_sessions_keep_no_cookies_either() -> None:
    # A cookie one answer sets must not ride on later fetches (tests/test_delivery.py shows
    # it through a web origin); the cloud origins' pools come from the same factory.
    async def sessions() -> None:
        pool = OriginSession(connect_timeout=1, read_timeout=1)
        try:
            assert isinstance(pool.session().cookie_jar, aiohttp.DummyCookieJar)
        finally:
            await pool.aclose()

    asyncio.run(sessions())
