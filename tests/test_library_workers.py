"""The media library under `[server] workers = 2`, on SQLite and PostgreSQL: concurrent
uploads from both workers lose nothing and never share an id, and a change made through one
worker is seen at once through the other (no stale cached result)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest

from tests.helpers import decode, make_image
from tests.library_support import PRIVATE_KEY, PUBLIC_KEY, row_count
from tests.test_workers import _serve_config, _stop

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, database_url: str) -> Path:
    (tmp_path / "library").mkdir()
    path = tmp_path / "pixelport.toml"
    path.write_text(f'[server]\nworkers = 2\n[library]\ndir = "{tmp_path / "library"}"\n'
                    f'[database]\nurl = "{database_url}"\n[cache]\ndir = "{tmp_path / "cache"}"\n'
                    f'[security]\nprivate_key = "{PRIVATE_KEY}"\npublic_key = "{PUBLIC_KEY}"\n')
    return path


def _upload(url: str, name: str, data: bytes, unique: bool = True) -> httpx.Response:
    # A new connection each time: the kernel spreads them over both workers.
    return httpx.post(f"{url}/api/v1/files/upload", auth=(PRIVATE_KEY, "do_not_set"),
                      data={"fileName": name, "useUniqueFileName": str(unique).lower()},
                      files={"file": (name, data)}, timeout=30)


def test_concurrent_uploads_through_two_workers(tmp_path: Path, database_url: str) -> None:
    process, url = _serve_config(_config(tmp_path, database_url), workers=2)
    try:
        photo = make_image(64, 48)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            unique = list(pool.map(lambda i: _upload(url, f"u{i % 3}.jpg", photo), range(40)))
            # The same path from many requests at once: one file, one version per upload.
            same = list(pool.map(lambda i: _upload(url, "same.jpg", photo, unique=False),
                                 range(12)))
        assert all(r.status_code == 200 for r in unique + same), [
            r.text for r in unique + same if r.status_code != 200][:3]
        ids = [r.json()["fileId"] for r in unique]
        assert len(set(ids)) == 40
        assert len({r.json()["fileId"] for r in same}) == 1
        versions = sorted(int(r.json()["versionInfo"]["name"].split()[1]) for r in same)
        assert versions == list(range(1, 13))
        assert row_count(database_url, "files") == 41
        assert row_count(database_url, "file_versions") == 52
    finally:
        _stop(process)


def test_a_change_through_one_worker_is_seen_through_the_other(tmp_path: Path,
                                                                database_url: str) -> None:
    process, url = _serve_config(_config(tmp_path, database_url), workers=2)
    try:
        assert _upload(url, "c.jpg", make_image(400, 300), unique=False).status_code == 200
        for _ in range(20):  # cached by both workers (memory tiers and hot answers)
            assert decode(httpx.get(f"{url}/tr:w-100/c.jpg").content).height == 75
        assert _upload(url, "c.jpg", make_image(400, 100), unique=False).status_code == 200
        heights = {decode(httpx.get(f"{url}/tr:w-100/c.jpg").content).height
                   for _ in range(20)}
        assert heights == {25}, "a worker served a result of the replaced version"
        file_id = httpx.get(f"{url}/v1/files", auth=(PRIVATE_KEY, "")).json()[0]["fileId"]
        assert httpx.delete(f"{url}/v1/files/{file_id}",
                            auth=(PRIVATE_KEY, "")).status_code == 204
        statuses = {httpx.get(f"{url}/tr:w-100/c.jpg").status_code for _ in range(20)}
        assert statuses == {404}
    finally:
        _stop(process)


def test_an_endpoint_made_through_one_worker_serves_through_both(
        tmp_path: Path, database_url: str) -> None:
    """The accounts API applies a change in every worker before it answers."""
    from tests.helpers import OriginServer

    origin = OriginServer().start()
    config = _config(tmp_path, database_url)
    config.write_text(config.read_text() + 'secrets_key = "a key of sixteen characters or more"\n'
                      "allow_private_networks = true\n")
    process, url = _serve_config(config, workers=2)
    try:
        origin.files["/shop/item.jpg"] = make_image(90, 60)
        made = httpx.post(f"{url}/v1/accounts/origins", auth=(PRIVATE_KEY, ""),
                          json={"type": "WEB_FOLDER", "name": "Shop",
                                "baseUrl": f"http://127.0.0.1:{origin.port}/shop"})
        assert made.status_code == 201, made.text
        endpoint = httpx.post(f"{url}/v1/accounts/url-endpoints", auth=(PRIVATE_KEY, ""),
                              json={"description": "shop", "urlPrefix": "shop",
                                    "origins": [made.json()["id"]]})
        assert endpoint.status_code == 201, endpoint.text
        # New connections each: the kernel spreads them over both workers.
        widths = {decode(httpx.get(f"{url}/shop/tr:w-{20 + i}/item.jpg").content).width - i
                  for i in range(16)}
        assert widths == {20}
    finally:
        _stop(process)
        origin.stop()


def test_a_sub_account_change_through_one_worker_is_seen_through_the_other(
        tmp_path: Path, database_url: str) -> None:
    """A sub-account's overwrite and named transformation reach every worker's caches."""
    path = _config(tmp_path, database_url)
    key = "private_staging_key"
    path.write_text(path.read_text() + f'[[account]]\nname = "staging"\nprivate_key = "{key}"\n')
    process, url = _serve_config(path, workers=2)

    def upload(height: int) -> int:
        return httpx.post(f"{url}/api/v1/files/upload", auth=(key, ""),
                          data={"fileName": "s.jpg", "useUniqueFileName": "false"},
                          files={"file": ("s.jpg", make_image(400, height))},
                          timeout=30).status_code

    try:
        assert upload(300) == 200
        for _ in range(20):
            assert decode(httpx.get(f"{url}/staging/tr:w-100/s.jpg").content).height == 75
        assert upload(100) == 200
        heights = {decode(httpx.get(f"{url}/staging/tr:w-100/s.jpg").content).height
                   for _ in range(20)}
        assert heights == {25}, "a worker served a result of the replaced version"
        made = httpx.post(f"{url}/v1/named-transformations", auth=(key, ""),
                          json={"name": "small", "transformation": "w-40"})
        assert made.status_code == 201, made.text
        widths = {decode(httpx.get(f"{url}/staging/tr:n-small/s.jpg").content).width
                  for _ in range(20)}
        assert widths == {40}
        assert {httpx.get(f"{url}/tr:n-small/s.jpg").status_code for _ in range(6)} == {400}
    finally:
        _stop(process)


def test_a_sub_account_made_in_the_dashboard_is_served_by_every_worker(
        tmp_path: Path, database_url: str) -> None:
    import re

    path = _config(tmp_path, database_url)
    path.write_text(path.read_text() + 'secrets_key = "a secrets key for the workers test"\n')
    process, url = _serve_config(path, workers=2)
    try:
        with httpx.Client(base_url=url, timeout=30) as visitor:
            assert visitor.post("/dashboard/login", data={"key": PRIVATE_KEY}
                                ).status_code == 303
            page = visitor.get("/dashboard/accounts").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf is not None
            made = visitor.post("/dashboard/accounts", data={
                "csrf": csrf.group(1), "name": "team-b", "prefix": "b"})
            assert made.status_code == 201, made.text
            key = re.search(r'id="made-private" readonly value="([^"]+)"', made.text)
            assert key is not None
        private = key.group(1)
        # Every worker knows the new key and its prefix at once (new connections spread).
        for i in range(10):
            answer = httpx.post(f"{url}/api/v1/files/upload", auth=(private, ""), timeout=30,
                                data={"fileName": f"f{i}.jpg", "useUniqueFileName": "false"},
                                files={"file": (f"f{i}.jpg", make_image(50, 40))})
            assert answer.status_code == 200, answer.text
        assert {httpx.get(f"{url}/b/tr:w-20/f3.jpg").status_code for _ in range(20)} == {200}
        listed = httpx.get(f"{url}/v1/files", auth=(private, ""), params={"limit": 100})
        assert len(listed.json()) == 10
        assert httpx.get(f"{url}/v1/files", auth=(PRIVATE_KEY, "")).json() == []
    finally:
        _stop(process)
    # Stored: served again after a restart, its key unsealed with the secrets key.
    process, url = _serve_config(path, workers=2)
    try:
        assert {httpx.get(f"{url}/b/tr:w-20/f3.jpg").status_code for _ in range(10)} == {200}
        assert len(httpx.get(f"{url}/v1/files", auth=(private, "")).json()) == 10
    finally:
        _stop(process)
