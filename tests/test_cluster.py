"""Many nodes (separate processes, a cache folder each) on one PostgreSQL, one Redis, one
library folder and one shared bucket: uploads, overwrites, purges, named transformations and
endpoints made through one node are seen through the others within a second, hot answers
included; a node restarted carries out what it missed; 30 identical requests over three nodes
make one origin fetch; work claimed by a node killed mid-render is taken over; with Redis down
nodes keep serving, `/readyz` says degraded, and a purge made meanwhile is delivered once
Redis is back; with PostgreSQL down delivery goes on and the API says 503."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import PostgresServer
from tests.helpers import OriginServer, Pixelport, Relay, decode, make_image
from tests.library_support import PRIVATE_KEY
from tests.redis_server import RedisServer
from tests.test_shared_cache import BUCKET, Bucket, start_bucket
from tests.test_workers import _serve_config, _stop

pytestmark = pytest.mark.integration
AUTH = (PRIVATE_KEY, "")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.remove()


def node_config(tmp_path: Path, name: str, database: str, redis: RedisServer,
                bucket: Bucket) -> Path:
    """Node `name`'s config: the library and the shared cache tier in the bucket, the database
    and Redis; its own folder (uploads being received) and cache."""
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[server]\nworkers = 2\n[library]\ndir = "{tmp_path / name}-library"\n'
        f'bucket = "{BUCKET}"\nendpoint = "{bucket.endpoint}"\nprefix = "library"\n'
        f'path_style = true\naccess_key_id = "test"\nsecret_access_key = "test"\n'
        f'[database]\nurl = "{database}"\n[cache]\ndir = "{tmp_path / name}-cache"\n'
        f'[cache.shared]\nbucket = "{BUCKET}"\nendpoint = "{bucket.endpoint}"\n'
        f'prefix = "cache"\npath_style = true\naccess_key_id = "test"\n'
        f'secret_access_key = "test"\n'
        f'[security]\nprivate_key = "{PRIVATE_KEY}"\nallow_private_networks = true\n'
        f'[cluster]\nredis_url = "{redis.url}"\n')
    return config


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    started = start_bucket()
    yield started
    started.stop()


@pytest.fixture
def nodes(tmp_path: Path, postgres_server: PostgresServer, redis: RedisServer,
          bucket: Bucket) -> Iterator[list[str]]:
    """Three nodes' base URLs."""
    database = postgres_server.create_database()
    processes, urls = [], []
    try:
        for name in ("a", "b", "c"):
            process, url = _serve_config(
                node_config(tmp_path, name, database, redis, bucket), 2)
            processes.append(process)
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            _stop(process)


def upload(node: str, name: str, data: bytes) -> httpx.Response:
    """An upload through one node (overwriting a file of the same name)."""
    return httpx.post(f"{node}/api/v1/files/upload", auth=AUTH, timeout=30,
                      data={"fileName": name, "useUniqueFileName": "false"},
                      files={"file": (name, data)})


def within(seconds: float, check: Callable[[], bool],
           show: Callable[[], object] = lambda: None) -> float:
    """How long until `check` holds (each call on new connections); fails past `seconds`,
    saying what `show` sees then."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not seen in time: {show()!r}"
        time.sleep(0.02)
    return time.monotonic() - start


def readyz(node: str) -> httpx.Response:
    """A node's `/readyz` answer."""
    return httpx.get(f"{node}/readyz", timeout=10)


def readiness(*nodes: str) -> list[str]:
    """The nodes' `/readyz` answers, whole, for a failure's message."""
    return [readyz(node).text for node in nodes]


def ready(node: str) -> tuple[str, int]:
    """A node's `/readyz` status word and HTTP status."""
    answer = readyz(node)
    return answer.json()["status"], answer.status_code


def heights(node: str, target: str, times: int = 10) -> set[int]:
    """The heights a node answers for `target`, asked `times` times (both workers)."""
    return {decode(httpx.get(node + target, timeout=10).content).height for _ in range(times)}


def test_an_upload_through_one_node_is_listed_and_served_by_the_others(
        nodes: list[str], bucket: Bucket, tmp_path: Path) -> None:
    a, b, c = nodes
    made = upload(a, "u.jpg", make_image(400, 300))
    assert made.status_code == 200
    for node in (b, c):
        listed = httpx.get(f"{node}/v1/files", auth=AUTH, params={"searchQuery": 'name="u.jpg"'})
        assert [f["fileId"] for f in listed.json()] == [made.json()["fileId"]]
        assert heights(node, "/tr:w-100/u.jpg") == {75}
    # Its bytes are in the bucket, not on A: nothing node-local is a source of truth.
    assert len(bucket.keys("library/.pixelport/blobs/")) == 1
    assert not [p for p in (tmp_path / "a-library").rglob("*") if p.is_file()]
    # An overwrite through B is seen by A and C (hot answers included) within a second.
    assert heights(a, "/tr:w-100/u.jpg", 20) == {75} and heights(c, "/tr:w-100/u.jpg", 20) == {75}
    assert upload(b, "u.jpg", make_image(400, 100)).status_code == 200
    within(1.0, lambda: heights(a, "/tr:w-100/u.jpg") == heights(c, "/tr:w-100/u.jpg") == {25})


def test_changes_through_one_node_are_seen_through_the_other(nodes: list[str]) -> None:
    a, b, _ = nodes
    assert upload(a, "c.jpg", make_image(400, 300)).status_code == 200
    assert heights(b, "/tr:w-100/c.jpg", 20) == {75}  # cached by B: memory, disk, hot
    assert upload(a, "c.jpg", make_image(400, 100)).status_code == 200
    within(1.0, lambda: heights(b, "/tr:w-100/c.jpg") == {25})

    # A purge through B reaches A's caches.
    assert heights(a, "/tr:w-120/c.jpg", 10) == {30}
    (tmp_file,) = [f for f in httpx.get(f"{b}/v1/files", auth=AUTH).json()]
    purged = httpx.post(f"{b}/v1/files/purge", auth=AUTH,
                        json={"url": f"{b}/tr:w-120/c.jpg"})
    assert purged.status_code == 201
    # A delete through B: A answers 404 for the file within a second.
    assert httpx.delete(f"{b}/v1/files/{tmp_file['fileId']}", auth=AUTH).status_code == 204
    within(1.0, lambda: {httpx.get(f"{a}/tr:w-120/c.jpg").status_code
                         for _ in range(10)} == {404})

    # A named transformation and an endpoint made through A are used by B at once.
    assert upload(a, "n.jpg", make_image(300, 300)).status_code == 200
    made = httpx.post(f"{a}/v1/named-transformations", auth=AUTH,
                      json={"name": "tiny", "transformation": "w-40,h-20"})
    assert made.status_code == 201
    within(1.0, lambda: {httpx.get(f"{b}/tr:n-tiny/n.jpg").status_code
                         for _ in range(10)} == {200})
    origin = httpx.post(f"{a}/v1/accounts/origins", auth=AUTH, json={
        "type": "WEB_FOLDER", "name": "self", "baseUrl": f"{a}/tr:w-50"})
    assert origin.status_code == 201, origin.text
    endpoint = httpx.post(f"{a}/v1/accounts/url-endpoints", auth=AUTH, json={
        "description": "through a", "urlPrefix": "via-a", "origins": [origin.json()["id"]]})
    assert endpoint.status_code == 201, endpoint.text
    within(1.0, lambda: {httpx.get(f"{b}/via-a/n.jpg").status_code
                         for _ in range(10)} == {200})


def test_with_redis_down_nodes_serve_and_purges_wait_for_it(nodes: list[str],
                                                            redis: RedisServer) -> None:
    a, b, _ = nodes
    assert upload(a, "d.jpg", make_image(400, 300)).status_code == 200
    assert heights(b, "/tr:w-100/d.jpg", 20) == {75}
    assert ready(a) == ("ok", 200), readiness(a)
    redis.stop()
    # Both still serve; an overwrite through A is answered, and A sees it at once.
    assert upload(a, "d.jpg", make_image(400, 100)).status_code == 200
    assert heights(a, "/tr:w-100/d.jpg") == {25}
    assert heights(b, "/tr:w-100/d.jpg") == {75}  # B has not heard yet
    within(5.0, lambda: all(ready(a) == ("degraded", 200) for _ in range(4)),
           lambda: readiness(a, a))
    redis.start()
    # The change was kept and is delivered once Redis is back.
    within(10.0, lambda: heights(b, "/tr:w-100/d.jpg") == {25},
           lambda: (heights(b, "/tr:w-100/d.jpg"), readiness(a, a, b, b)))
    within(5.0, lambda: all(ready(n) == ("ok", 200) for n in (a, b) for _ in range(4)),
           lambda: readiness(a, a, b, b))


def test_with_postgresql_down_delivery_goes_on_and_the_api_says_503(
        serve: Any, tmp_path: Path, postgres_server: PostgresServer,
        origin: OriginServer) -> None:
    database = postgres_server.create_database()
    relay = Relay(postgres_server.port)
    try:
        (tmp_path / "library").mkdir()
        origin.files["/web/w.jpg"] = make_image(300, 200)
        pp: Pixelport = serve({
            "library": {"dir": str(tmp_path / "library")},
            "database": {"url": database.replace(f":{postgres_server.port}/",
                                                 f":{relay.port}/")},
            "security": {"private_key": PRIVATE_KEY, "allow_private_networks": True},
            "origin": [{"name": "web", "type": "web_server",
                        "base_url": f"http://127.0.0.1:{origin.port}/web"}],
            "endpoint": [{"identifier": "", "origins": ["web"]}]})
        assert upload(pp.url, "lib.jpg", make_image(200, 100)).status_code == 200
        assert pp.get("/tr:w-50/lib.jpg").status == 200  # cached
        relay.cut()
        # Delivery: the cached result, and the origins behind the library.
        assert pp.get("/tr:w-50/lib.jpg").status == 200
        served = pp.get("/tr:w-40/w.jpg")
        assert served.status == 200, served.ik_error
        # The API: 503 with ImageKit's JSON error shape.
        for method, target in (("GET", "/v1/files"), ("POST", "/v1/named-transformations")):
            answer = httpx.request(method, f"{pp.url}{target}", auth=AUTH, timeout=30,
                                   json={"name": "x", "transformation": "w-10"})
            assert answer.status_code == 503, (target, answer.text)
            assert set(answer.json()) >= {"message", "help"}
        with httpx.Client(base_url=pp.url) as visitor:  # the dashboard says so too
            assert visitor.post("/dashboard/login", data={"key": PRIVATE_KEY}
                                ).status_code == 303
            assert visitor.get("/dashboard/library").status_code == 503
        relay.restore()
        within(10.0, lambda: httpx.get(f"{pp.url}/v1/files", auth=AUTH).status_code == 200)
    finally:
        relay.close()


def test_a_node_restarted_carries_out_what_it_missed(tmp_path: Path,
                                                      postgres_server: PostgresServer,
                                                      redis: RedisServer,
                                                      bucket: Bucket) -> None:
    database = postgres_server.create_database()
    a_config, b_config = (node_config(tmp_path, n, database, redis, bucket)
                          for n in ("a", "b"))
    a, a_url = _serve_config(a_config, 2)
    b, b_url = _serve_config(b_config, 2)
    try:
        assert upload(a_url, "r.jpg", make_image(400, 300)).status_code == 200
        assert heights(b_url, "/tr:w-100/r.jpg", 20) == {75}  # in B's disk cache too
        _stop(b)
        assert upload(a_url, "r.jpg", make_image(400, 100)).status_code == 200
        b, b_url = _serve_config(b_config, 2)  # its disk tier still holds the old result
        within(2.0, lambda: heights(b_url, "/tr:w-100/r.jpg") == {25})
    finally:
        _stop(a)
        _stop(b)


def test_a_node_killed_mid_upload_leaves_nothing_behind(
        tmp_path: Path, postgres_server: PostgresServer, redis: RedisServer,
        bucket: Bucket) -> None:
    import base64
    import os
    import signal
    import socket

    database = postgres_server.create_database()
    a, a_url = _serve_config(node_config(tmp_path, "a", database, redis, bucket), 2)
    b, b_url = _serve_config(node_config(tmp_path, "b", database, redis, bucket), 2)
    try:
        import pyvips

        # Noise: 3 MB, past the 1 MB a form keeps in memory (so half goes to disk).
        data = pyvips.Image.gaussnoise(2400, 1800).cast("uchar").jpegsave_buffer(Q=95)
        head = (b'--x\r\nContent-Disposition: form-data; name="fileName"\r\n\r\nhalf.jpg\r\n'
                b'--x\r\nContent-Disposition: form-data; name="useUniqueFileName"\r\n\r\n'
                b'false\r\n--x\r\nContent-Disposition: form-data; name="file"; '
                b'filename="half.jpg"\r\nContent-Type: image/jpeg\r\n\r\n')
        body = head + data + b"\r\n--x--\r\n"
        auth = base64.b64encode(f"{PRIVATE_KEY}:".encode()).decode()
        port = int(a_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sender:
            sender.sendall(
                f"POST /api/v1/files/upload HTTP/1.1\r\nHost: a\r\n"
                f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n"
                f"Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode()
                + body[:len(body) // 2])
            partial = tmp_path / "a-library" / ".pixelport" / "partial"
            within(10.0, lambda: any(p.stat().st_size > 0 for p in partial.glob("*")))
            os.killpg(a.pid, signal.SIGKILL)  # half the file received
        a.wait()
        # Nothing of it is anywhere another node could serve or list it from.
        assert bucket.keys("library/") == []
        assert httpx.get(f"{b_url}/v1/files", auth=AUTH).json() == []
        assert httpx.get(f"{b_url}/half.jpg").status_code == 404
        # The name is free: the upload made again through B is whole.
        assert upload(b_url, "half.jpg", data).status_code == 200
        assert heights(b_url, "/tr:w-240/half.jpg", 4) == {180}
    finally:
        _stop(b)
        if a.poll() is None:
            _stop(a)


def shared_node(tmp_path: Path, name: str, bucket: Any, redis: RedisServer,
                origin: OriginServer) -> Path:
    """A node of a web origin, the shared bucket and Redis, no library; one process."""
    config = tmp_path / f"{name}.toml"
    config.write_text(
                f'[server]\nworkers = 1\n[library]\ndir = ""\n'
                f'[cache]\ndir = "{tmp_path / name}-cache"\n'
                f'[cache.shared]\nbucket = "{BUCKET}"\nendpoint = "{bucket.endpoint}"\n'
                f'region = "us-east-1"\npath_style = true\naccess_key_id = "test"\n'
                f'secret_access_key = "test"\n'
                f'[security]\nprivate_key = "{PRIVATE_KEY}"\nallow_private_networks = true\n'
                f'[cluster]\nredis_url = "{redis.url}"\n'
                f'[[origin]]\nname = "web"\ntype = "web_server"\nbase_url = "{origin.url}"\n'
                f'[[endpoint]]\nidentifier = ""\norigins = ["web"]\n')
    return config


def test_thirty_requests_over_three_nodes_make_one_fetch_and_one_render(
        tmp_path: Path, redis: RedisServer, origin: OriginServer) -> None:
    """Cross-node coalescing: a lease in Redis, the result read from the shared bucket."""
    import concurrent.futures

    bucket = start_bucket()
    origin.files["/big.jpg"] = make_image(2000, 1500)
    origin.delays["/big.jpg"] = 0.5  # every request arrives while the first is being made
    processes, urls = [], []
    try:
        for name in ("a", "b", "c"):
            config = shared_node(tmp_path, name, bucket, redis, origin)
            process, url = _serve_config(config, workers=0)  # one process: no children
            processes.append(process)
            urls.append(url)
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            answers = list(pool.map(
                lambda i: httpx.get(f"{urls[i % 3]}/tr:w-300/big.jpg", timeout=30), range(30)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert [r.path for r in origin.requests].count("/big.jpg") == 1
        assert len(bucket.keys("results/")) == 1
    finally:
        for process in processes:
            _stop(process)
        bucket.stop()


def test_work_claimed_by_a_node_killed_mid_render_is_taken_over(
        tmp_path: Path, redis: RedisServer, origin: OriginServer) -> None:
    import concurrent.futures
    import os
    import signal

    bucket = start_bucket()
    origin.files["/slow.jpg"] = make_image(1200, 900)
    origin.delays["/slow.jpg"] = 2.0
    a, a_url = _serve_config(shared_node(tmp_path, "a", bucket, redis, origin), workers=0)
    b, b_url = _serve_config(shared_node(tmp_path, "b", bucket, redis, origin), workers=0)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            doomed = pool.submit(httpx.get, f"{a_url}/tr:w-200/slow.jpg", timeout=30)
            time.sleep(0.5)  # A holds the lease, its fetch under way
            waiting = pool.submit(httpx.get, f"{b_url}/tr:w-200/slow.jpg", timeout=30)
            time.sleep(0.5)
            os.killpg(a.pid, signal.SIGKILL)  # mid-fetch: no release, no upload
            answer = waiting.result()
            assert doomed.exception() is not None
        assert answer.status_code == 200
        assert decode(answer.content).width == 200
        # B took the work over and made it: the origin was asked again, and what the bucket
        # holds is B's whole result.
        assert [r.path for r in origin.requests].count("/slow.jpg") == 2
        (key,) = bucket.wait_for("results/")
        stored = bucket.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert answer.content in stored
    finally:
        a.wait()
        _stop(b)
        bucket.stop()
