"""The media library in an S3-compatible bucket (`[library] bucket`), through ImageKit's Python
SDK: uploads are stored in the bucket (nothing stays on the node), served, versioned, read
for metadata, deleted and scanned from it; a sub-account's files keep to their own prefix;
with the bucket down the API answers 503 and nothing is left half-written. The bucket is
moto's S3 server in a process of its own (killable), as for the shared cache tier.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imagekitio
import pytest

from pixelport.config import BucketConfig, ConfigError, from_dict
from pixelport.library.bucket import BucketStorage
from tests.helpers import Pixelport, decode, make_image
from tests.library_support import PRIVATE_KEY, client
from tests.test_shared_cache import BUCKET, Bucket, start_bucket

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
PIXELPORT = str(ROOT / ".venv" / "bin" / "pixelport")
STAGING_KEY = "private_staging_key"


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    started = start_bucket()
    yield started
    started.stop()


def bucket_keys(bucket: Bucket) -> dict[str, Any]:
    """`[library]`'s bucket keys, under the prefix `lib`."""
    return {"bucket": BUCKET, "endpoint": bucket.endpoint, "region": "us-east-1",
            "path_style": True, "prefix": "/lib/", "access_key_id": "test",
            "secret_access_key": "test"}


def config(tmp_path: Path, bucket: Bucket, **extra: Any) -> dict[str, Any]:
    """A node whose library is in the bucket; its own folder only receives uploads."""
    return {"library": {"dir": str(tmp_path / "node"), **bucket_keys(bucket)},
            "database": {"url": f"sqlite:///{tmp_path / 'library.db'}"},
            "security": {"private_key": PRIVATE_KEY, "allow_private_networks": True},
            **extra}


def size(body: bytes) -> tuple[int, int]:
    """An image's width and height."""
    image = decode(body)
    return image.width, image.height


def local_files(tmp_path: Path) -> list[Path]:
    """Files the node keeps in its library folder (uploads under way only)."""
    return [p for p in (tmp_path / "node").rglob("*") if p.is_file()]


def test_the_library_lives_in_the_bucket(tmp_path: Path, bucket: Bucket) -> None:
    pp = Pixelport(config(tmp_path, bucket), base=tmp_path)
    try:
        sdk = client(pp)
        first = sdk.files.upload(file=make_image(640, 480), file_name="shoe.jpg",
                                 use_unique_file_name=False, folder="/shop")
        (blob,) = bucket.keys("lib/.pixelport/blobs/")
        assert local_files(tmp_path) == []  # received locally, then stored and removed
        served = pp.get("/tr:w-100/shop/shoe.jpg")
        assert served.status == 200 and size(served.body) == (100, 75)
        # Metadata reads the stored bytes (from the bucket) and the upload's responseFields.
        meta = sdk.files.metadata.get(first.file_id)
        assert (meta.width, meta.height) == (640, 480)
        # An overwrite is a new object; the old version's stays and is served by version.
        sdk.files.upload(file=make_image(200, 100), file_name="shoe.jpg",
                         use_unique_file_name=False, folder="/shop")
        assert len(bucket.keys("lib/.pixelport/blobs/")) == 2
        assert size(pp.get("/shop/shoe.jpg").body) == (200, 100)
        old = pp.get(f"/shop/shoe.jpg?ik-obj-version={first.version_info.id}")
        assert old.status == 200 and size(old.body) == (640, 480)
        # A delete removes every version's object.
        sdk.files.delete(first.file_id)
        assert bucket.keys("lib/.pixelport/blobs/") == []
        assert pp.get("/shop/shoe.jpg").status == 404
        assert blob not in bucket.keys("")
        # Internals are never served by path.
        assert pp.get("/.pixelport/blobs/x.jpg").status == 404
    finally:
        pp.stop()


def test_files_put_in_the_bucket_are_served_and_scanned(tmp_path: Path,
                                                        bucket: Bucket) -> None:
    s3 = bucket.client()
    s3.put_object(Bucket=BUCKET, Key="lib/catalog/direct.jpg", Body=make_image(300, 200))
    s3.put_object(Bucket=BUCKET, Key="lib/catalog/notes.txt", Body=b"hello")
    s3.put_object(Bucket=BUCKET, Key="elsewhere.jpg", Body=make_image(10, 10))  # no prefix
    settings = config(tmp_path, bucket)
    pp = Pixelport(settings, base=tmp_path)
    try:
        assert decode(pp.get("/tr:w-30/catalog/direct.jpg").body).width == 30  # by path
        assert pp.get("/elsewhere.jpg").status == 404  # outside the library's prefix
        path = tmp_path / "pixelport.toml"
        library = "".join(f'{k} = {v!r}\n'.replace("'", '"').replace("True", "true")
                          for k, v in settings["library"].items())
        path.write_text(f'[library]\n{library}[database]\nurl = "{settings["database"]["url"]}"\n')
        done = subprocess.run([PIXELPORT, "library", "scan", "--config", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "2 file(s) found, 2 indexed" in done.stdout
        listed = {f.file_path: f for f in client(pp).assets.list(path="/catalog")
                  if hasattr(f, "file_path")}
        assert set(listed) == {"/catalog/direct.jpg", "/catalog/notes.txt"}
        assert (listed["/catalog/direct.jpg"].width, listed["/catalog/direct.jpg"].height) \
            == (300, 200)
        again = subprocess.run([PIXELPORT, "library", "scan", "--config", str(path), "--quiet"],
                               capture_output=True, text=True, timeout=60)
        assert "0 indexed" in again.stdout
    finally:
        pp.stop()


def test_a_sub_accounts_files_keep_to_its_prefix(tmp_path: Path, bucket: Bucket) -> None:
    pp = Pixelport(config(tmp_path, bucket, account=[{
        "name": "staging", "private_key": STAGING_KEY, "public_key": "public_staging"}]),
        base=tmp_path)
    try:
        staging = imagekitio.ImageKit(private_key=STAGING_KEY, base_url=pp.url, max_retries=0)
        staging.files.upload(file=make_image(120, 80), file_name="s.jpg",
                             use_unique_file_name=False)
        (key,) = bucket.keys("lib/")
        assert key.startswith("lib/.pixelport/accounts/staging/.pixelport/blobs/")
        assert size(pp.get("/staging/s.jpg").body) == (120, 80)
        assert pp.get("/s.jpg").status == 404  # not the default account's
        inner = key.removeprefix("lib/")
        assert pp.get("/" + inner).status == 404  # nor its internals, by path
    finally:
        pp.stop()


def test_with_the_bucket_down_uploads_say_503_and_leave_nothing(tmp_path: Path,
                                                                bucket: Bucket) -> None:
    pp = Pixelport(config(tmp_path, bucket), base=tmp_path)
    try:
        sdk = client(pp)
        sdk.files.upload(file=make_image(64, 64), file_name="kept.jpg",
                         use_unique_file_name=False)
        ready = json.loads(pp.get("/readyz").body)
        assert ready["checks"]["library_bucket"]["state"] == "ok"
        bucket.stop()
        # Cached results still serve: degraded (200), the bucket named.
        answer = pp.get("/readyz")
        ready = json.loads(answer.body)
        assert answer.status == 200 and ready["status"] == "degraded"
        assert ready["checks"]["library_bucket"]["state"] == "degraded"
        answer = httpx.post(f"{pp.url}/api/v1/files/upload", auth=(PRIVATE_KEY, ""),
                            timeout=60, data={"fileName": "lost.jpg"},
                            files={"file": ("lost.jpg", make_image(64, 64))})
        assert answer.status_code == 503, answer.text
        assert set(answer.json()) >= {"message", "help"}
        assert "bucket" in answer.json()["message"]
        assert local_files(tmp_path) == []
        names = [f.name for f in sdk.assets.list() if hasattr(f, "file_path")]
        assert names == ["kept.jpg"]  # no row for the upload that was not stored
        failed = pp.get("/tr:w-20/kept.jpg")  # not cached at this size: the bucket is asked
        # ImageKit's answer to an origin that cannot be reached: 404 naming the cause.
        assert failed.status == 404 and failed.ik_error.startswith("ECONNREFUSED")
    finally:
        pp.stop()


def test_the_sweep_deletes_only_old_unreferenced_blobs(tmp_path: Path, bucket: Bucket) -> None:
    settings = bucket_keys(bucket)
    storage = BucketStorage(BucketConfig(**{k: v.strip("/") if k == "prefix" else v
                                            for k, v in settings.items()}), tmp_path)

    async def run() -> tuple[int, int]:
        try:
            kept, orphan = storage.new_key("a.jpg"), storage.new_key("b.jpg")
            for key in (kept, orphan):
                await storage.put(b"bytes", key)
            young = await storage.sweep([kept], older_than=3600)
            old = await storage.sweep([kept], older_than=0)
            return young, old
        finally:
            await storage.aclose()

    assert asyncio.run(run()) == (0, 1)
    assert len(bucket.keys("lib/.pixelport/blobs/")) == 1


@pytest.mark.parametrize(("library", "message"), [
    ({"dir": "", "bucket": "media"}, "library.dir: is needed with bucket"),
    ({"bucket": "a/b"}, "bucket: must be a bucket name"),
    ({"bucket": "media", "endpoint": "ftp://x"}, "endpoint: must be an http(s) URL"),
    ({"bucket": "media", "access_key_id": "AK"}, "secret_access_key: access_key_id and"),
    ({"endpoint": "https://s3.example.com"}, "endpoint"),  # bucket keys without a bucket
])
def test_config_errors(library: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        from_dict({"library": library}, source="node.toml")
    assert str(raised.value).startswith("node.toml: ") and message in str(raised.value)


def test_config_reads_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_SECRET", "s3cr3t")
    config = from_dict({"library": {
        "dir": "/srv/incoming", "bucket": "media", "endpoint": "https://s3.wasabisys.com/",
        "region": "eu-central-1", "prefix": "/lib/", "path_style": True,
        "access_key_id": "AK", "secret_access_key": "env:MEDIA_SECRET"}})
    assert config.library_bucket == BucketConfig(
        bucket="media", endpoint="https://s3.wasabisys.com", region="eu-central-1",
        prefix="lib", path_style=True, access_key_id="AK", secret_access_key="s3cr3t")
    assert "s3cr3t" not in repr(config)
    assert config.library_dir == Path("/srv/incoming")
    assert from_dict({}).library_bucket is None
