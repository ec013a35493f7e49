"""Sub-accounts (`[[account]]`): each with its own keys, media library, origins, endpoints,
named transformations and purge scope, reached under its prefix or on its own domain; a key
of one account sees and changes nothing of another. Driven through ImageKit's Python SDK, on
SQLite and on PostgreSQL (a schema per sub-account)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from imagekitio import ImageKit, NotFoundError

from pixelport.config import ConfigError, from_dict
from tests.helpers import OriginServer, Pixelport, decode, make_image
from tests.library_support import PRIVATE_KEY, PUBLIC_KEY, library_config, row_count

pytestmark = pytest.mark.integration
STAGING_KEY, STAGING_PUBLIC = "private_staging_key", "public_staging_key"
SECRETS_KEY = "a test key of more than sixteen characters"
STAGING_HOST = "staging-img.example.test"


def two_accounts(root: Path, database_url: str) -> dict[str, Any]:
    """The default account's library in `root`, a staging account beside it."""
    config = library_config(root, database_url, security={"secrets_key": SECRETS_KEY})
    config["account"] = [{"name": "staging", "private_key": STAGING_KEY,
                          "public_key": STAGING_PUBLIC, "domains": [STAGING_HOST]}]
    return config


def sdk(pp: Pixelport, key: str) -> ImageKit:
    """ImageKit's SDK with one account's key."""
    return ImageKit(private_key=key, base_url=pp.url, max_retries=0)


def test_accounts_are_isolated(serve: Any, tmp_path: Path, database_url: str,
                               origin: OriginServer) -> None:
    root = tmp_path / "library"
    root.mkdir()
    pp: Pixelport = serve(two_accounts(root, database_url))
    main, staging = sdk(pp, PRIVATE_KEY), sdk(pp, STAGING_KEY)

    # Each account's uploads land in its own library, and are listed by its key only.
    mine = main.files.upload(file=make_image(200, 100), file_name="a.jpg",
                             use_unique_file_name=False)
    theirs = staging.files.upload(file=make_image(120, 90), file_name="b.jpg",
                                  use_unique_file_name=False, tags=["stage"])
    assert theirs.url == f"{pp.url}/staging/b.jpg"
    assert [f.name for f in main.assets.list()] == ["a.jpg"]
    assert [f.name for f in staging.assets.list()] == ["b.jpg"]
    assert (tmp_path / "accounts" / "staging").is_dir()
    for client, other in ((staging, mine.file_id), (main, theirs.file_id)):
        with pytest.raises(NotFoundError):
            client.files.get(other)
        with pytest.raises(NotFoundError):
            client.files.delete(other)
    assert main.files.get(mine.file_id).name == "a.jpg"

    # Delivery: the default account without a prefix, staging under its prefix or its host.
    assert decode(pp.get("/tr:w-50/a.jpg").body).width == 50
    assert decode(pp.get("/staging/tr:w-60/b.jpg").body).width == 60
    assert decode(pp.get("/tr:w-30/b.jpg", {"Host": STAGING_HOST}).body).width == 30
    assert pp.get("/tr:w-50/b.jpg").status == 404
    assert pp.get("/staging/tr:w-50/a.jpg").status == 404
    assert pp.get("/tr:w-50/a.jpg", {"Host": STAGING_HOST}).status == 404

    # Origins and endpoints: staging's own, invisible to and untouchable by the default key.
    origin.files["/shop/item.jpg"] = make_image(90, 60)
    shop = staging.accounts.origins.create(type="WEB_FOLDER", name="Shop",
                                           base_url=f"{origin.url}/shop")
    staging.accounts.url_endpoints.create(description="shop", url_prefix="shop",
                                          origins=[shop.id])
    assert decode(pp.get("/staging/shop/tr:w-45/item.jpg").body).width == 45
    assert decode(pp.get("/shop/tr:w-40/item.jpg", {"Host": STAGING_HOST}).body).width == 40
    assert pp.get("/shop/tr:w-40/item.jpg").status == 404  # not the default account's
    assert shop.id not in {o.id for o in main.accounts.origins.list()}
    with pytest.raises(NotFoundError):
        main.accounts.origins.delete(shop.id)
    # Neither may take the other's prefix or host.
    refused = httpx.post(f"{pp.url}/v1/accounts/url-endpoints", auth=(PRIVATE_KEY, ""),
                         json={"description": "x", "urlPrefix": "staging", "origins": []})
    assert refused.status_code == 400 and "another account" in refused.json()["message"]
    refused = httpx.post(f"{pp.url}/v1/accounts/url-endpoints", auth=(PRIVATE_KEY, ""),
                         json={"description": "x", "urlPrefix": "hijack", "origins": [],
                               "domains": [STAGING_HOST]})
    assert refused.status_code == 400 and "another account" in refused.json()["message"]

    # Named transformations are each account's own.
    made = httpx.post(f"{pp.url}/v1/named-transformations", auth=(STAGING_KEY, ""),
                      json={"name": "tiny", "transformation": "w-40,h-20"})
    assert made.status_code == 201, made.text
    image = decode(pp.get("/staging/tr:n-tiny/b.jpg").body)
    assert (image.width, image.height) == (40, 20)
    assert pp.get("/tr:n-tiny/a.jpg").status == 400
    listed = httpx.get(f"{pp.url}/v1/named-transformations", auth=(PRIVATE_KEY, "")).json()
    assert "tiny" not in {n["name"] for n in listed}

    # Purges: only the account's own URLs.
    assert staging.cache.invalidation.create(url=f"{pp.url}/staging/b.jpg").request_id
    for client, url in ((staging, f"{pp.url}/a.jpg"), (main, f"{pp.url}/staging/b.jpg")):
        answer = httpx.post(f"{pp.url}/v1/files/purge", json={"url": url},
                            auth=(STAGING_KEY if client is staging else PRIVATE_KEY, ""))
        assert answer.status_code == 400, url

    # Signed URLs: signed with the account's own key, not another's.
    staging.files.upload(file=make_image(80, 80), file_name="secret.jpg",
                         use_unique_file_name=False, is_private_file=True)
    assert pp.get("/staging/tr:w-20/secret.jpg").status == 401
    for key, status in ((STAGING_KEY, 200), (PRIVATE_KEY, 401)):
        url = sdk(pp, key).helper.build_url(src="/secret.jpg", url_endpoint=f"{pp.url}/staging",
                                            transformation=[{"width": 20}], signed=True)
        assert pp.get(url.removeprefix(pp.url)).status == status, key

    # An unknown key reaches no account.
    assert httpx.get(f"{pp.url}/v1/files", auth=("nobody", "")).status_code == 401

    # At rest: staging's rows in a database of its own (SQLite) or a schema (PostgreSQL).
    if database_url.startswith("sqlite"):
        assert row_count(f"sqlite:///{tmp_path / 'accounts' / 'staging.db'}", "files") == 2
    else:
        assert row_count(database_url, "account_staging.files") == 2
    assert row_count(database_url, "files") == 1


def test_client_side_uploads_find_their_account_by_public_key(serve: Any, tmp_path: Path,
                                                            database_url: str) -> None:
    root = tmp_path / "library"
    root.mkdir()
    pp: Pixelport = serve(two_accounts(root, database_url))

    def post(public: str, key: str, name: str) -> httpx.Response:
        token, expire = uuid.uuid4().hex, int(time.time()) + 600
        signature = hmac.new(key.encode(), f"{token}{expire}".encode(),
                             hashlib.sha1).hexdigest()
        return httpx.post(f"{pp.url}/api/v1/files/upload", data={
            "fileName": name, "publicKey": public, "signature": signature,
            "expire": str(expire), "token": token, "useUniqueFileName": "false"},
            files={"file": (name, make_image(40, 40))})

    assert post(STAGING_PUBLIC, STAGING_KEY, "s.jpg").status_code == 200
    assert post(PUBLIC_KEY, PRIVATE_KEY, "m.jpg").status_code == 200
    assert post(STAGING_PUBLIC, PRIVATE_KEY, "x.jpg").status_code == 403  # the wrong key
    assert [f.name for f in sdk(pp, STAGING_KEY).assets.list()] == ["s.jpg"]
    assert [f.name for f in sdk(pp, PRIVATE_KEY).assets.list()] == ["m.jpg"]
    assert pp.get("/staging/s.jpg").status == 200
    assert pp.get("/m.jpg").status == 200


def test_an_account_accepts_its_rotated_keys(serve: Any, tmp_path: Path) -> None:
    root = tmp_path / "library"
    root.mkdir()
    config = two_accounts(root, f"sqlite:///{tmp_path / 'library.db'}")
    config["account"][0]["private_keys"] = ["previous_staging_key"]
    pp: Pixelport = serve(config)
    sdk(pp, "previous_staging_key").files.upload(file=make_image(64, 48), file_name="r.jpg",
                                                 use_unique_file_name=False)
    # The same account's library, whichever of its keys is used; no other account's.
    assert [f.name for f in sdk(pp, STAGING_KEY).assets.list()] == ["r.jpg"]
    assert [f.name for f in sdk(pp, PRIVATE_KEY).assets.list()] == []


def test_account_config_errors(tmp_path: Path) -> None:
    base = library_config(tmp_path / "library", "sqlite:///lib.db")

    def error(*accounts: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as caught:
            from_dict({**base, "account": list(accounts)}, source="p.toml", base=tmp_path)
        return str(caught.value)

    assert "account[0].private_key: is required" in error({"name": "a"})
    assert "account[0].name" in error({"name": "Bad Name", "private_key": "k"})
    assert "account[0].prefix" in error({"name": "a", "prefix": "v1", "private_key": "k"})
    assert "keys of its own" in error({"name": "a", "private_key": PRIVATE_KEY})
    assert "keys of its own" in error({"name": "a", "private_key": "k",
                                       "private_keys": [PRIVATE_KEY]})
    assert "keys of its own" in error({"name": "a", "private_key": "k1"},
                                      {"name": "b", "private_key": "k2", "private_keys": ["k1"]})
    assert "defined twice" in error({"name": "a", "private_key": "k1"},
                                    {"name": "a", "prefix": "b", "private_key": "k2"})
    assert "already" in error({"name": "a", "private_key": "k1", "domains": ["x.test"]},
                              {"name": "b", "private_key": "k2", "domains": ["x.test"]})
    config = from_dict({**base, "account": [{"name": "eu-prod", "private_key": "s3cr3t"}]},
                       source="p.toml", base=tmp_path)
    (account,) = config.accounts
    assert (account.prefix, account.library_dir) == ("eu-prod", tmp_path / "accounts" / "eu-prod")
    assert account.database.url.endswith("/accounts/eu-prod.db")
    assert "s3cr3t" not in repr(account)
