"""Video across nodes: two real nodes (one process each, a cache folder each) on one Redis and
one shared bucket (moto's S3 server), a web origin that records what it was asked, real
ffmpeg. The same video result asked on both at once runs ffmpeg once in the cluster; a
result, thumbnail or stream made on one node is served by the other from the bucket without
a job; a node killed mid-job has its job taken over; a br form made on one node is served by
the other without compressing again; with Redis down each node makes what it needs.

What ran where is read from each node's `/metrics`: `pixelport_video_jobs_total` counts the
jobs that ran ffmpeg (or a thumbnail's frame decode) on the node, and those read from the
bucket instead.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx
import pytest

from tests.helpers import OriginServer, decode, server_timing
from tests.redis_server import RedisServer
from tests.test_cluster import shared_node
from tests.test_shared_cache import BUCKET, Bucket, start_bucket
from tests.test_workers import _serve_config, _stop
from tests.video_media import make_clip, probe_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.remove()


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    started = start_bucket()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s 320x240 H.264/AAC clip (50 frames)."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


def start_node(tmp_path: Path, name: str, bucket: Bucket, redis: RedisServer,
               origin: OriginServer) -> tuple[subprocess.Popen[bytes], str]:
    """A node of the web origin, the bucket and Redis (one process); a request waits for
    its video job up to the request's own deadline (27 s), not 10 s."""
    config = shared_node(tmp_path, name, bucket, redis, origin)
    config.write_text(config.read_text() + "[video]\nwait = 60\n")
    return _serve_config(config, workers=0)


@pytest.fixture
def nodes(tmp_path: Path, bucket: Bucket, redis: RedisServer,
          origin: OriginServer) -> Iterator[list[str]]:
    """Two nodes' base URLs."""
    processes, urls = [], []
    try:
        for name in ("a", "b"):
            process, url = start_node(tmp_path, name, bucket, redis, origin)
            processes.append(process)
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            _stop(process)


def video_jobs(node: str, kind: str, outcome: str) -> float:
    """`pixelport_video_jobs_total{kind, outcome}` of a node."""
    text = httpx.get(f"{node}/metrics", timeout=10).text
    found = re.search(rf'^pixelport_video_jobs_total\{{kind="{kind}",outcome="{outcome}"\}} '
                      r"(\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def cache_state(answer: httpx.Response) -> str:
    return str(server_timing(answer.headers["server-timing"])["cache"])


def until_ready(url: str, seconds: float = 60) -> httpx.Response:
    """The answer once it is no longer 202 (a stream being encoded)."""
    deadline = time.monotonic() + seconds
    while (answer := httpx.get(url, timeout=30)).status_code == 202:
        assert time.monotonic() < deadline, "not made in time"
        time.sleep(0.2)
    return answer


def test_the_same_video_asked_on_two_nodes_at_once_runs_ffmpeg_once(
        nodes: list[str], origin: OriginServer, bucket: Bucket, redis: RedisServer,
        clip: bytes, tmp_path: Path) -> None:
    origin.files["/v/clip.mp4"] = clip
    origin.delays["/v/clip.mp4"] = 0.5  # the second request comes while the first is made
    target = "/v/clip.mp4?tr=w-160"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda node: httpx.get(node + target, timeout=60), nodes))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    probed = probe_bytes(answers[0].content, tmp_path)
    assert (probed.width, probed.height, probed.frames) == (160, 120, 50)
    # One node ran ffmpeg; the other read its result from the bucket.
    assert sum(video_jobs(n, "transcode", "ran") for n in nodes) == 1
    assert sum(video_jobs(n, "transcode", "shared") for n in nodes) == 1
    assert sorted(cache_state(answer) for answer in answers) == ["miss", "shared"]
    assert origin.paths().count("/v/clip.mp4") == 1
    assert len(bucket.keys("results/~/v/clip.mp4/")) == 1

    # Redis down: each node claims on its own (no error), and still answers.
    redis.stop()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        alone = list(pool.map(lambda node: httpx.get(f"{node}/v/clip.mp4?tr=w-96", timeout=60),
                              nodes))
    assert [answer.status_code for answer in alone] == [200, 200]
    assert {probe_bytes(answer.content, tmp_path).width for answer in alone} == {96}


def test_results_made_on_one_node_are_served_by_the_other_from_the_bucket(
        nodes: list[str], origin: OriginServer, bucket: Bucket, clip: bytes,
        tmp_path: Path) -> None:
    a, b = nodes
    origin.files["/m/clip.mp4"] = clip
    made = httpx.get(f"{a}/m/clip.mp4?tr=w-120", timeout=60)
    thumb = httpx.get(f"{a}/m/clip.mp4/ik-thumbnail.jpg?tr=w-40,so-1", timeout=60)
    assert made.status_code == thumb.status_code == 200
    stream = "/m/clip.mp4/ik-master.m3u8?tr=sr-240"
    assert httpx.get(a + stream, timeout=30).status_code == 202
    hls = until_ready(a + stream)
    assert hls.status_code == 200
    asked = origin.paths().count("/m/clip.mp4")

    # B never saw these URLs: each is a shared-tier hit, and B runs no job at all.
    found = httpx.get(f"{b}/m/clip.mp4?tr=w-120", timeout=60)
    assert found.status_code == 200 and cache_state(found) == "shared"
    assert found.content == made.content
    assert found.headers["etag"] == made.headers["etag"]
    assert probe_bytes(found.content, tmp_path).frames == 50
    ranged = httpx.get(f"{b}/m/clip.mp4?tr=w-120", headers={"range": "bytes=0-99"})
    assert ranged.status_code == 206 and ranged.content == made.content[:100]  # kept on B
    small = httpx.get(f"{b}/m/clip.mp4/ik-thumbnail.jpg?tr=w-40,so-1", timeout=60)
    assert small.status_code == 200 and cache_state(small) == "shared"
    assert small.content == thumb.content and decode(small.content).width == 40
    # A stream: its first request on B is answered at once (no 202), its parts come from
    # the bucket as a player asks for them, and they decode.
    copied = httpx.get(b + stream, timeout=30)
    assert copied.status_code == 200 and copied.content == hls.content
    variant = next(line for line in copied.text.splitlines()
                   if line and not line.startswith("#"))
    playlist = httpx.get(f"{b}/m/clip.mp4/{variant}", timeout=30)
    assert playlist.status_code == 200 and cache_state(playlist) == "shared"
    folder = variant.rsplit("/", 1)[0]
    init = playlist.text.split('URI="')[1].split('"')[0]
    segment = next(line for line in playlist.text.splitlines()
                   if line and not line.startswith("#"))
    parts = [httpx.get(f"{b}/m/clip.mp4/{folder}/{name}", timeout=30)
             for name in (init, segment)]
    assert [part.status_code for part in parts] == [200, 200]
    assert probe_bytes(parts[0].content + parts[1].content, tmp_path).frames > 0
    dash = httpx.get(f"{b}/m/clip.mp4/ik-master.mpd?tr=sr-240", timeout=30)
    assert dash.status_code == 200 and b"<BaseURL>ik-abs/" in dash.content
    for kind in ("transcode", "thumbnail", "stream"):
        assert video_jobs(b, kind, "ran") == 0, kind
        assert video_jobs(b, kind, "shared") == 1, kind
    assert origin.paths().count("/m/clip.mp4") == asked


def test_a_video_job_of_a_node_killed_mid_job_is_taken_over(
        tmp_path: Path, bucket: Bucket, redis: RedisServer, origin: OriginServer,
        clip: bytes) -> None:
    origin.files["/slow/clip.mp4"] = clip
    origin.delays["/slow/clip.mp4"] = 2.0
    a, a_url = start_node(tmp_path, "a", bucket, redis, origin)
    b, b_url = start_node(tmp_path, "b", bucket, redis, origin)
    target = "/slow/clip.mp4?tr=w-200"
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            doomed = pool.submit(httpx.get, a_url + target, timeout=60)
            time.sleep(0.5)  # A holds the lease, its job fetching the original
            waiting = pool.submit(httpx.get, b_url + target, timeout=60)
            time.sleep(0.5)
            os.killpg(a.pid, signal.SIGKILL)  # mid-job: no release, no upload
            answer = waiting.result()
            assert doomed.exception() is not None
        assert answer.status_code == 200, answer.headers
        probed = probe_bytes(answer.content, tmp_path)
        assert (probed.width, probed.height, probed.frames) == (200, 150, 50)
        assert probed.audio_codec == "aac" and abs(probed.duration - 2.0) < 0.2
        # B took the job over and made it: the origin was asked again, and the bucket holds
        # B's whole result.
        assert video_jobs(b_url, "transcode", "ran") == 1
        assert origin.paths().count("/slow/clip.mp4") == 2
        (key,) = bucket.wait_for("results/~/slow/clip.mp4/")
        stored = bucket.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert stored.endswith(answer.content)
    finally:
        a.wait()
        _stop(b)


def test_a_br_form_made_on_one_node_is_served_by_the_other_from_the_bucket(
        nodes: list[str], origin: OriginServer, bucket: Bucket) -> None:
    a, b = nodes
    script = b"".join(b"function f%d(x) { return x * %d + window.offset; }\n" % (i, i)
                      for i in range(400))
    origin.files["/t/app.js"] = script
    made = httpx.get(f"{a}/t/app.js", headers={"accept-encoding": "br"}, timeout=30)
    assert made.status_code == 200 and made.headers["content-encoding"] == "br"
    bucket.wait_for("results/~/t/app.js/", 2)  # the identity form and the br form
    found = httpx.get(f"{b}/t/app.js", headers={"accept-encoding": "br"}, timeout=30)
    assert found.status_code == 200 and found.headers["content-encoding"] == "br"
    assert cache_state(found) == "shared"
    assert "transformation" not in server_timing(found.headers["server-timing"])
    assert found.headers["etag"] == made.headers["etag"] and found.content == script
    assert brotli.decompress(_raw(b, "/t/app.js")) == script
    assert origin.paths().count("/t/app.js") == 1  # B fetched nothing


def _raw(node: str, target: str) -> bytes:
    """The br body as sent (httpx would decode it)."""
    with httpx.stream("GET", node + target, headers={"accept-encoding": "br"},
                      timeout=30) as answer:
        return b"".join(answer.iter_raw())
