"""Origins and URL endpoints as data, through ImageKit's SDK (accounts.origins,
accounts.url_endpoints), on SQLite and PostgreSQL: applied to delivery at once, secrets never
answered and sealed at rest, the config's read-only, an origin in use kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio import ImageKit

from pixelport.app import App
from pixelport.config import ConfigError, from_dict
from pixelport.security.secrets import WrongKey
from tests.helpers import OriginServer, Pixelport, make_image
from tests.library_support import PRIVATE_KEY, client, library_config

pytestmark = pytest.mark.integration
SECRETS_KEY = "a test key of more than sixteen characters"
AUTH = (PRIVATE_KEY, "")


def accounts_config(root: Path, database_url: str, origin: OriginServer,
                    key: str | None = SECRETS_KEY) -> dict[str, Any]:
    security = {"secrets_key": key} if key else {}
    config = library_config(root, database_url, security=security)
    config["origin"] = [{"name": "web", "type": "web_server",
                         "base_url": f"http://127.0.0.1:{origin.port}/configured"}]
    config["endpoint"] = [{"identifier": "", "origins": ["web"]}]
    return config


def stored(database_url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, read with the database's own client."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1]) as conn:
            return list(conn.execute(f"SELECT * FROM {table}").fetchall())
    import asyncpg

    async def rows() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
        finally:
            await conn.close()
    return asyncio.run(rows())


def test_origins_and_endpoints_through_the_sdk(serve: Any, tmp_path: Path, database_url: str,
                                              origin: OriginServer) -> None:
    origin.files["/configured/photo.jpg"] = make_image(60, 40)
    origin.files["/shop/item.jpg"] = make_image(90, 60)
    root = tmp_path / "library"
    root.mkdir()
    pp: Pixelport = serve(accounts_config(root, database_url, origin))
    sdk: ImageKit = client(pp)

    listed = sdk.accounts.origins.list()
    assert [(o.id, o.name, o.type) for o in listed] == [("config:web", "web", "WEB_FOLDER")]
    assert sdk.accounts.url_endpoints.list()[0].id == "default"

    # A web folder origin and an endpoint using it: served at once, no restart.
    assert pp.get("/shop/tr:w-30/item.jpg").status == 404
    made = sdk.accounts.origins.create(type="WEB_FOLDER", name="Shop",
                                       base_url=f"http://127.0.0.1:{origin.port}/shop")
    assert made.type == "WEB_FOLDER" and made.base_url.endswith("/shop")
    endpoint = sdk.accounts.url_endpoints.create(description="shop images", url_prefix="shop",
                                                 origins=[made.id])
    assert endpoint.url_prefix == "shop" and endpoint.origins == [made.id]
    answer = pp.get("/shop/tr:w-30/item.jpg")
    assert answer.status == 200, answer.ik_error
    assert answer.image().width == 30
    assert pp.get("/tr:w-30/photo.jpg").status == 200  # the config's endpoint still works

    # An S3-compatible origin's secrets: accepted, never answered, sealed in the database.
    secret = "s3cr3t-value-never-shown"
    bucket = sdk.accounts.origins.create(
        type="S3_COMPATIBLE", name="Bucket", bucket="media", access_key="AKIAEXAMPLE",
        secret_key=secret, endpoint="http://127.0.0.1:9", s3_force_path_style=True)
    raw = httpx.get(f"{pp.url}/v1/accounts/origins", auth=AUTH).text
    assert secret not in raw and "AKIAEXAMPLE" not in raw and "secretKey" not in raw
    assert bucket.bucket == "media" and bucket.s3_force_path_style is True
    rows = stored(database_url, "account_origins")
    assert all(secret.encode() not in (r[4] or b"") and secret not in str(r) for r in rows)
    # PUT without the secret keeps the stored one; the name changes.
    renamed = sdk.accounts.origins.update(bucket.id, type="S3_COMPATIBLE", name="Renamed",
                                          bucket="media", endpoint="http://127.0.0.1:9")
    assert renamed.name == "Renamed"
    assert sdk.accounts.origins.get(bucket.id).name == "Renamed"

    # An origin in use cannot go; the config's cannot change.
    refused = httpx.delete(f"{pp.url}/v1/accounts/origins/{made.id}", auth=AUTH)
    assert refused.status_code == 400 and "shop" in refused.json()["message"]
    assert httpx.delete(f"{pp.url}/v1/accounts/origins/config:web",
                        auth=AUTH).status_code == 400
    # The endpoint without origins, then deleted: gone from delivery at once (results already
    # cached stay until purged, as on ImageKit: a new variant shows the change).
    sdk.accounts.url_endpoints.update(endpoint.id, description="none", url_prefix="shop",
                                      origins=[])
    assert pp.get("/shop/tr:w-31/item.jpg").status == 404
    sdk.accounts.url_endpoints.delete(endpoint.id)
    sdk.accounts.origins.delete(made.id)
    assert [o.id for o in sdk.accounts.origins.list()] == ["config:web", bucket.id]


@pytest.mark.parametrize(("body", "words"), [
    ({"type": "NOPE", "name": "x"}, "type must be one of"),
    ({"type": "S3", "name": "x", "bucket": "b"}, "accessKey is required"),
    ({"type": "WEB_FOLDER", "name": "x", "baseUrl": "ftp://x"}, "base_url"),
    ({"type": "WEB_FOLDER", "name": "x", "baseUrl": "http://a", "bogus": 1}, "bogus"),
    ({"type": "WEB_FOLDER", "baseUrl": "http://a"}, "name is required"),
])
def test_bad_origins_are_400_naming_the_field(serve: Any, tmp_path: Path, database_url: str,
                                              origin: OriginServer, body: dict[str, Any],
                                              words: str) -> None:
    root = tmp_path / "library"
    root.mkdir()
    pp = serve(accounts_config(root, database_url, origin))
    answer = httpx.post(f"{pp.url}/v1/accounts/origins", json=body, auth=AUTH)
    assert answer.status_code == 400 and words in answer.json()["message"], answer.text


def test_endpoint_checks(serve: Any, tmp_path: Path, database_url: str,
                         origin: OriginServer) -> None:
    root = tmp_path / "library"
    root.mkdir()
    pp = serve(accounts_config(root, database_url, origin))
    for body, words in (({"description": "x", "urlPrefix": "", "origins": []}, "default"),
                        ({"description": "x", "urlPrefix": "v1", "origins": []}, "reserved"),
                        ({"description": "x", "urlPrefix": "a", "origins": ["nope"]},
                         "No origin"),
                        ({"description": "x", "urlPrefix": "a b"}, "letters")):
        answer = httpx.post(f"{pp.url}/v1/accounts/url-endpoints", json=body, auth=AUTH)
        assert answer.status_code == 400 and words in answer.json()["message"], answer.text
    first = httpx.post(f"{pp.url}/v1/accounts/url-endpoints", auth=AUTH,
                       json={"description": "a", "urlPrefix": "a", "origins": ["config:web"],
                             "domains": ["img.example.com"],
                             "urlRewriter": {"type": "IMGIX"}})
    assert first.status_code == 201, first.text
    assert first.json()["urlRewriter"] == {"type": "IMGIX"}
    again = httpx.post(f"{pp.url}/v1/accounts/url-endpoints", auth=AUTH,
                       json={"description": "b", "urlPrefix": "b",
                             "domains": ["img.example.com"]})
    assert again.status_code == 400 and "already bound" in again.json()["message"]
    origin.files["/configured/photo.jpg"] = make_image(60, 40)
    # The domain and the rewriter apply: an imgix query through the custom domain.
    served = pp.get("/photo.jpg?w=20", {"Host": "img.example.com"})
    assert served.status == 200 and served.image().width == 20


def test_secrets_need_a_key_and_a_sealed_database_needs_it_at_start(
        serve: Any, tmp_path: Path, database_url: str, origin: OriginServer) -> None:
    root = tmp_path / "library"
    root.mkdir()
    keyless = serve(accounts_config(root, database_url, origin, key=None))
    refused = httpx.post(f"{keyless.url}/v1/accounts/origins", auth=AUTH,
                         json={"type": "GCS", "name": "g", "bucket": "b",
                               "clientEmail": "a@b.c", "privateKey": "pem"})
    assert refused.status_code == 400 and "secrets_key" in refused.json()["message"]
    keyless.stop()
    keyed = serve(accounts_config(root, database_url, origin))
    made = httpx.post(f"{keyed.url}/v1/accounts/origins", auth=AUTH,
                      json={"type": "AZURE_BLOB", "name": "az", "accountName": "devstore",
                            "container": "c", "sasToken": "sv=1&sig=secret-sig"})
    assert made.status_code == 201, made.text
    assert "secret-sig" not in made.text
    keyed.stop()

    async def start(key: str | None) -> None:
        app = App(from_dict(accounts_config(root, database_url, origin, key=key),
                            base=tmp_path))
        assert app.media is not None
        try:
            await app.media.start()
        finally:
            await app.aclose()

    # Start-up refuses: no key for sealed secrets, or another key than theirs.
    with pytest.raises(ConfigError, match="none is set"):
        asyncio.run(start(None))
    with pytest.raises(WrongKey, match="secrets_key"):
        asyncio.run(start("another key of enough length"))
    asyncio.run(start(SECRETS_KEY))


def test_trying_an_origin_reports_the_outcome(serve: Any, tmp_path: Path, database_url: str,
                                              origin: OriginServer) -> None:
    origin.files["/configured/photo.jpg"] = make_image(60, 40)
    root = tmp_path / "library"
    root.mkdir()
    pp = serve(accounts_config(root, database_url, origin))

    def attempt(origin_id: str, path: str) -> dict[str, Any]:
        answer = httpx.post(f"{pp.url}/v1/accounts/origins/{origin_id}/test",
                            json={"path": path}, auth=AUTH)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    found = attempt("config:web", "photo.jpg")
    assert found["ok"] is True and found["size"] == len(origin.files["/configured/photo.jpg"])
    missing = attempt("config:web", "nope.jpg")
    assert missing["ok"] is False and missing["ikError"].startswith("ENOENT")
    made = httpx.post(f"{pp.url}/v1/accounts/origins", auth=AUTH,
                      json={"type": "WEB_FOLDER", "name": "closed",
                            "baseUrl": "http://127.0.0.1:9/"}).json()
    closed = attempt(made["id"], "x.jpg")
    assert closed["ok"] is False and closed["ikError"].startswith("ECONNREFUSED")
    assert httpx.post(f"{pp.url}/v1/accounts/origins/{made['id']}/test", json={"path": "../x"},
                      auth=AUTH).status_code == 400
