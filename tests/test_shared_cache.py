"""The shared cache tier (`[cache.shared]`): two nodes (separate cache folders) on one bucket.

The bucket is moto's S3 server in a process of its own on 127.0.0.1 (its state and its
credential settings apart from the in-process `moto_s3` fixture's, and killable: the bucket
going down). The nodes are real pixelport servers, the origin a real HTTP server that records
what it was asked.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from pixelport.cache import shared as shared_module
from pixelport.cache.entry import BodyFile, Entry
from pixelport.cache.purgelog import PurgeScope
from pixelport.cache.shared import SharedTier
from pixelport.config import ConfigError, SharedCacheConfig, from_dict
from tests.cloud_servers import wait_for_port
from tests.helpers import OriginServer, Pixelport, free_port, make_image, server_timing
from tests.library_support import client as library_client
from tests.library_support import library_config

pytestmark = pytest.mark.integration
KEY = "private_shared_cache_key"
BUCKET = "shared-cache"


@dataclass
class Bucket:
    """moto's S3 server in its own process, with one bucket."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        """Path-style endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        """A boto3 client of the bucket (moto takes any credentials here)."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix`."""
        listed = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """The keys under `prefix` once there are `count` (written in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            keys = self.keys(prefix)
            if len(keys) >= count:
                return keys
            time.sleep(0.05)
        raise AssertionError(f"no {count} objects under {prefix!r}: {self.keys()}")

    def stop(self) -> None:
        """The bucket goes down."""
        self.process.kill()
        self.process.wait(10)


def start_bucket() -> Bucket:
    """A fresh moto server with the bucket."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    bucket = Bucket(port, process)
    bucket.client().create_bucket(Bucket=BUCKET)
    return bucket


@pytest.fixture(scope="module")
def bucket() -> Iterator[Bucket]:
    """One bucket for the module's nodes (each test uses paths of its own)."""
    started = start_bucket()
    yield started
    started.stop()


def node_config(origin: OriginServer, endpoint: str, **cache: Any) -> dict[str, Any]:
    """One node: the origin, the shared tier at `endpoint` (prefix `nodes`)."""
    shared = {"bucket": BUCKET, "endpoint": endpoint, "region": "us-east-1",
              "path_style": True, "prefix": "/nodes/", "access_key_id": "test",
              "secret_access_key": "test", **cache.pop("shared", {})}
    return {
        "security": {"allow_private_networks": True, "private_key": KEY},
        "library": {"dir": ""},
        "cache": {**cache, "shared": shared},
        "origin": [{"name": "web", "type": "web_server", "base_url": origin.url}],
        "endpoint": [{"identifier": "", "origins": ["web"]}],
    }


def cache_state(answer: Any) -> object:
    return server_timing(answer.headers["server-timing"])["cache"]


def shared_lookups(pp: Pixelport, result: str) -> float:
    """`pixelport_cache_lookups_total{tier="shared"}` of this process (servers in the test
    process share one registry: compare before and after)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(pp.get("/metrics").body.decode()):
        for sample in family.samples:
            if (sample.name == "pixelport_cache_lookups_total"
                    and sample.labels == {"tier": "shared", "result": result}):
                return float(sample.value)
    return 0.0


def purge(pp: Pixelport, url: str) -> int:
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", pp.port, timeout=10)
    try:
        conn.request("POST", "/v1/files/purge", json.dumps({"url": url}),
                     {"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_a_result_made_on_one_node_is_a_hit_on_another(serve: Any, origin: OriginServer,
                                                        bucket: Bucket) -> None:
    origin.files["/hit/a.jpg"] = make_image(400, 300)
    a = serve(node_config(origin, bucket.endpoint))
    b = serve(node_config(origin, bucket.endpoint))
    made = a.get("/tr:w-100/hit/a.jpg")
    assert made.status == 200 and cache_state(made) == "miss"
    keys = bucket.wait_for("nodes/results/~/hit/a.jpg/")
    assert len(keys) == 1
    asked = len(origin.requests)
    hits = shared_lookups(b, "hit")
    found = b.get("/tr:w-100/hit/a.jpg")
    assert found.status == 200 and cache_state(found) == "shared"
    assert shared_lookups(b, "hit") == hits + 1  # counted in /metrics as a shared-tier hit
    # Neither fetched nor rendered on B: no origin request, no download or render timing.
    assert len(origin.requests) == asked
    timing = server_timing(found.headers["server-timing"])
    assert "transformation" not in timing and "download" not in timing
    assert found.body == made.body and found.headers["etag"] == made.headers["etag"]
    assert found.headers["content-type"] == made.headers["content-type"]
    assert found.headers.get("last-modified") == made.headers.get("last-modified")
    # Kept on B too: its next answer is a local hit.
    assert cache_state(b.get("/tr:w-100/hit/a.jpg")) == "hit"


def test_saved_originals_are_shared(serve: Any, origin: OriginServer, bucket: Bucket) -> None:
    origin.files["/orig/b.jpg"] = make_image(400, 300)
    a = serve(node_config(origin, bucket.endpoint, save_originals=True))
    b = serve(node_config(origin, bucket.endpoint, save_originals=True))
    assert a.get("/tr:w-100/orig/b.jpg").status == 200
    assert origin.paths().count("/orig/b.jpg") == 1
    bucket.wait_for("nodes/originals/~/orig/b.jpg/")
    # Another variant on B: made there from the shared original, the origin not asked.
    other = b.get("/tr:w-50/orig/b.jpg")
    assert other.status == 200 and cache_state(other) == "miss"
    assert other.image().width == 50
    assert origin.paths().count("/orig/b.jpg") == 1


def test_a_purge_removes_the_shared_entries(serve: Any, origin: OriginServer,
                                            bucket: Bucket) -> None:
    for name in ("/gone/x.jpg", "/gone/x.jpg/y.jpg", "/gone/dir/sub/p.jpg",
                 "/gone/dir/sub/q.jpg", "/gone/keep.jpg"):
        origin.files[name] = make_image(100, 80)
    a = serve(node_config(origin, bucket.endpoint, save_originals=True))
    for name in ("/gone/x.jpg", "/gone/x.jpg/y.jpg", "/gone/dir/sub/p.jpg",
                 "/gone/dir/sub/q.jpg", "/gone/keep.jpg"):
        for width in (10, 20):
            assert a.get(f"/tr:w-{width}{name}").status == 200
    bucket.wait_for("nodes/results/~/gone/", 10)
    bucket.wait_for("nodes/originals/~/gone/", 5)
    # A file: every variant and its saved original, and nothing of the file "under" it.
    assert purge(a, f"{a.url}/tr:w-10/gone/x.jpg") == 201
    assert bucket.keys("nodes/results/~/gone/x.jpg/") == bucket.keys(
        "nodes/results/~/gone/x.jpg/y.jpg/")
    assert len(bucket.keys("nodes/results/~/gone/x.jpg/y.jpg/")) == 2
    assert bucket.keys("nodes/originals/~/gone/x.jpg/") == bucket.keys(
        "nodes/originals/~/gone/x.jpg/y.jpg/")
    # A prefix.
    assert purge(a, f"{a.url}/gone/dir/*") == 201
    assert bucket.keys("nodes/results/~/gone/dir/") == []
    assert bucket.keys("nodes/originals/~/gone/dir/") == []
    assert len(bucket.keys("nodes/results/~/gone/keep.jpg/")) == 2
    # A node that never saw the file fetches and renders it anew: the bucket forgot it.
    # (A's own tiers went with A's purge; another node's local tiers are purged by a purge
    # sent to it: reaching every node is the cluster's fan-out, [cluster] redis_url.)
    c = serve(node_config(origin, bucket.endpoint, save_originals=True))
    asked = origin.paths().count("/gone/x.jpg")
    assert cache_state(c.get("/tr:w-10/gone/x.jpg")) == "miss"
    assert origin.paths().count("/gone/x.jpg") == asked + 1
    assert cache_state(c.get("/tr:w-10/gone/keep.jpg")) == "shared"
    # The purging node itself remembers the purge: an object made before it is not read.
    assert cache_state(a.get("/tr:w-20/gone/dir/sub/p.jpg")) == "miss"


def test_a_library_overwrite_removes_the_shared_entries(bucket: Bucket, tmp_path: Path) -> None:
    shared = {"bucket": BUCKET, "endpoint": bucket.endpoint, "path_style": True,
              "prefix": "library", "access_key_id": "t", "secret_access_key": "t"}
    config = library_config(tmp_path / "library", f"sqlite:///{tmp_path / 'library.db'}",
                            cache={"dir": str(tmp_path / "cache"), "shared": shared})
    pp = Pixelport(config, base=tmp_path)
    try:
        sdk = library_client(pp)
        sdk.files.upload(file=make_image(400, 300), file_name="cover.jpg",
                         use_unique_file_name=False)
        assert pp.get("/tr:w-40/cover.jpg").status == 200
        bucket.wait_for("library/results/~/cover.jpg/")
        # A new version: the library purges the path (here, and in the bucket).
        sdk.files.upload(file=make_image(200, 100), file_name="cover.jpg",
                         use_unique_file_name=False)
        assert bucket.keys("library/results/~/cover.jpg/") == []
        assert pp.get("/tr:w-40/cover.jpg").image().height == 20
    finally:
        pp.stop()


def test_bucket_down_local_tiers_and_origins_serve(serve: Any, origin: OriginServer) -> None:
    own = start_bucket()
    try:
        for index in range(8):
            origin.files[f"/down/{index}.jpg"] = make_image(120, 90)
        a = serve(node_config(origin, own.endpoint, shared={"timeout": 1.0}))
        assert a.get("/tr:w-30/down/0.jpg").status == 200
        own.wait_for("nodes/results/~/down/0.jpg/")
    finally:
        own.stop()
    # Down: the local hit is as before; new URLs come from the origin, none waits past the
    # timeout (1 s) plus its own time, and once the breaker is open none waits at all.
    began = time.monotonic()
    assert cache_state(a.get("/tr:w-30/down/0.jpg")) == "hit"
    assert time.monotonic() - began < 0.5
    times = []
    for index in range(1, 8):
        began = time.monotonic()
        answer = a.get(f"/tr:w-30/down/{index}.jpg")
        times.append(time.monotonic() - began)
        assert answer.status == 200 and cache_state(answer) == "miss", answer.headers
    assert max(times) < 1.0 + 1.0, times
    assert max(times[3:]) < 0.6, times  # the breaker is open: not asked at all
    # A purge is answered too (the bucket's part is kept and sent again once it is back).
    began = time.monotonic()
    assert purge(a, f"{a.url}/down/0.jpg") == 201
    assert time.monotonic() - began < 1.0 + 1.0
    assert cache_state(a.get("/tr:w-30/down/0.jpg")) == "miss"


def test_bucket_that_never_answers(serve: Any, origin: OriginServer) -> None:
    # Connections are taken (the listen backlog) but never answered: every wait is a timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for index in range(6):
            origin.files[f"/silent/{index}.jpg"] = make_image(120, 90)
        a = serve(node_config(origin, endpoint, shared={"timeout": 1.0}))
        times = []
        for index in range(6):
            began = time.monotonic()
            answer = a.get(f"/tr:w-30/silent/{index}.jpg")
            times.append(time.monotonic() - began)
            assert answer.status == 200, answer.headers
        assert max(times) < 1.0 + 1.0, times
        assert max(times[4:]) < 0.6, times  # the breaker is open: the bucket is not asked
        assert cache_state(a.get("/tr:w-30/silent/0.jpg")) == "hit"


def test_keys_name_endpoint_and_path() -> None:
    tier = SharedTier(SharedCacheConfig(bucket="b", prefix="p"))
    key = tier.key("results", "shop/eu", "a b/c.jpg", "0123")
    assert key == "p/results/~shop%2Feu/a b/c.jpg/0123"
    assert tier.where(key) == ("shop/eu", "a b/c.jpg")
    assert tier.where(tier.key("originals", "", "x.jpg", "9") or "") == ("", "x.jpg")
    assert tier.key("results", "", "x" * 1100, "k") is None  # S3 keys end at 1024 bytes
    assert tier.key("results", "", "a//b.jpg", "k") is None
    assert tier.key("results", "", "dir/", "k") is None
    assert tier.key("results", "", "bad\udc80.jpg", "k") is None
    exact = PurgeScope(frozenset({""}), frozenset({"x.jpg"}))
    assert tier._prefixes(exact)[0] == ("p/results/~/x.jpg/", True)
    prefix = PurgeScope(frozenset({""}), frozenset({"dir/"}), prefix=True)
    assert prefix("", "dir/a.jpg") and not prefix("", "dirt.jpg") and not prefix("e", "dir/a")


def test_a_remembered_purge_keeps_older_entries_out() -> None:
    asyncio.run(remembered_purges())


async def remembered_purges() -> None:
    tier = SharedTier(SharedCacheConfig(bucket="b"))
    before = time.time() - 1
    await tier.forget(PurgeScope(frozenset({""}), frozenset({"a.jpg"})), {"a.jpg"})
    await tier.forget(PurgeScope(frozenset({"e"}), frozenset({"d/"}), prefix=True))
    assert tier.stale("", "a.jpg", before) and not tier.stale("", "b.jpg", before)
    assert tier.stale("e", "d/x.jpg", before) and not tier.stale("", "d/x.jpg", before)
    assert not tier.stale("", "a.jpg", time.time() + 1)  # made after the purge: fresh
    entry = Entry(b"x", {}, '"e"', "", "a.jpg")
    assert entry.shared is False
    await tier.close()


def test_a_purge_the_bucket_missed_is_sent_again(bucket: Bucket,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_module, "COOLDOWN", 0.2)  # not 10 s between tries
    live = SharedCacheConfig(bucket=BUCKET, endpoint=bucket.endpoint, path_style=True,
                             prefix="retry", access_key_id="t", secret_access_key="t")
    down = replace(live, endpoint=f"http://127.0.0.1:{free_port()}", timeout=0.3)
    made = time.time() - 5
    entry = Entry(b"bytes", {"content-type": "image/jpeg"}, '"e"', "", "r.jpg", created=made)
    key = "retry/results/~/r.jpg/k1"
    bucket.client().put_object(Bucket=BUCKET, Key=key, Body=entry.head() + entry.body)

    async def run() -> None:
        tier = SharedTier(down)
        await tier.start()
        began = time.monotonic()
        scope = PurgeScope(frozenset({""}), frozenset({"r.jpg"}))
        assert await tier.purge(scope, scope.paths) == 0
        assert time.monotonic() - began < 0.3 + 0.5  # the API's answer waits no longer
        if tier.purging:  # a loaded machine: the refusal may come after the answer
            await asyncio.wait(tier.purging)
        assert len(tier.pending) == 1 and tier.stale("", "r.jpg", made)
        assert await tier.get_result("", "r.jpg", "k1") is None
        # The bucket is back (the same bucket through a working client): the purge goes.
        await tier.s3.aclose()
        tier.s3 = SharedTier(live).s3
        deadline = time.monotonic() + 10
        while tier.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not tier.pending
        await tier.close()

    asyncio.run(run())
    assert bucket.keys("retry/") == []


@pytest.mark.parametrize(("shared", "message"), [
    ({"bucket": "b", "bucket_name": "x"}, "cache.shared.bucket_name: unknown key"),
    ({"endpoint": "http://127.0.0.1:9000"}, "cache.shared.bucket: is required"),
    ({"bucket": "a/b"}, "cache.shared.bucket: must be a bucket name"),
    ({"bucket": "b", "endpoint": "s3.example.com"}, "cache.shared.endpoint: must be an http(s)"),
    ({"bucket": "b", "access_key_id": "k"}, "cache.shared.secret_access_key: "),
    ({"bucket": "b", "timeout": -1}, "cache.shared.timeout: must be a number"),
    ({"bucket": "b", "path_style": "maybe"}, "cache.shared.path_style: must be true or false"),
    ({"bucket": "b", "secret_access_key": "env:PIXELPORT_NO_SUCH_VARIABLE",
      "access_key_id": "k"}, "environment variable PIXELPORT_NO_SUCH_VARIABLE is not set"),
])
def test_config_errors(shared: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        from_dict({"cache": {"shared": shared}}, source="node.toml")
    assert str(raised.value).startswith("node.toml: ") and message in str(raised.value)


def test_config_reads_every_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHARED_SECRET", "s3cr3t")
    config = from_dict({"cache": {"shared": {
        "bucket": "cache", "endpoint": "https://s3.wasabisys.com/", "region": "eu-central-1",
        "prefix": "/pixelport/", "path_style": True, "access_key_id": "AK",
        "secret_access_key": "env:SHARED_SECRET", "timeout": 0.25}}})
    shared = config.cache.shared
    assert shared == SharedCacheConfig(
        bucket="cache", endpoint="https://s3.wasabisys.com", region="eu-central-1",
        prefix="pixelport", path_style=True, access_key_id="AK", secret_access_key="s3cr3t",
        timeout=0.25)
    assert "s3cr3t" not in repr(shared)
    assert from_dict({}).cache.shared is None


def test_a_body_kept_on_disk_goes_in_pieces_and_comes_back_into_a_file(
        bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video's entry: uploaded from its file in multipart pieces, read back into a file,
    checked by length and CRC-32 (a damaged object is not served); its file gone: not
    written, and not counted against the bucket."""
    monkeypatch.setattr(shared_module, "PART_BYTES", 5 * 2**20)  # S3's smallest part
    body = os.urandom(11 * 2**20)  # three parts
    source = tmp_path / "made.entry"
    source.write_bytes(b"h" * 100 + body)  # as in the disk tier: a head, then the body
    entry = Entry(b"", {"content-type": "video/mp4"}, '"e"', "", "big.mp4",
                  body_file=BodyFile(source, 100, len(body)))
    config = SharedCacheConfig(bucket=BUCKET, endpoint=bucket.endpoint, path_style=True,
                               prefix="streamed", access_key_id="t", secret_access_key="t")
    back = tmp_path / "back"

    async def run() -> None:
        tier = SharedTier(config)
        await tier.start()
        assert await tier.store_result(entry, "k1", time.time() - 1)
        found = await tier.get_result_streamed("", "big.mp4", "k1", back)
        assert found is not None and found.body_file == BodyFile(back, 0, len(body))
        assert found.headers == entry.headers and found.etag == entry.etag
        assert back.read_bytes() == body
        whole = await tier.get_result("", "big.mp4", "k1")  # the same form as any object
        assert whole is not None and whole.body == body
        client = bucket.client()
        damaged = bytearray(client.get_object(Bucket=BUCKET, Key="streamed/results/~/big.mp4/k1")
                            ["Body"].read())
        damaged[-1000] ^= 1
        client.put_object(Bucket=BUCKET, Key="streamed/results/~/big.mp4/k1", Body=bytes(damaged))
        assert await tier.get_result_streamed("", "big.mp4", "k1", back) is None
        source.unlink()
        assert not await tier.store_result(entry, "k2", time.time() - 1)
        assert tier.failures == 0
        await tier.close()

    asyncio.run(run())
    assert bucket.keys("streamed/results/~/big.mp4/") == ["streamed/results/~/big.mp4/k1"]
    assert not bucket.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads")
