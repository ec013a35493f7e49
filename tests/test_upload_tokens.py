"""Single-use client-side upload tokens over two nodes sharing PostgreSQL and a real Redis
(security/upload_tokens.py): a token reused on the other node is refused by Redis before any
work, with the answer it always had; with Redis down uploads go on and reuse is refused by the
database, also for tokens spent through Redis before the outage; after Redis comes back empty
no token spent before is accepted again; two nodes racing with one token store one file."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imagekitio
import jwt
import pytest
import redis as redis_sync
from imagekitio import ImageKit

from pixelport.security.upload_tokens import PREFIX, RETRY_SECONDS
from tests.databases import PostgresServer
from tests.helpers import make_image
from tests.library_support import PRIVATE_KEY, PUBLIC_KEY
from tests.redis_server import RedisServer
from tests.test_workers import _serve_config, _stop

pytestmark = pytest.mark.integration
USED = "This upload token has been used already."


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.remove()


@pytest.fixture
def nodes(tmp_path: Path, postgres_server: PostgresServer,
          redis: RedisServer) -> Iterator[list[str]]:
    """Two nodes (one worker each) on one library folder, database and Redis."""
    database = postgres_server.create_database()
    (tmp_path / "library").mkdir()
    processes, urls = [], []
    try:
        for name in ("a", "b"):
            config = tmp_path / f"{name}.toml"
            config.write_text(
                f'[server]\nworkers = 1\n[library]\ndir = "{tmp_path / "library"}"\n'
                f'[database]\nurl = "{database}"\n[cache]\ndir = "{tmp_path / name}-cache"\n'
                f'[security]\nprivate_key = "{PRIVATE_KEY}"\npublic_key = "{PUBLIC_KEY}"\n'
                f'[cluster]\nredis_url = "{redis.url}"\n')
            process, url = _serve_config(config, 0)  # one worker: no child processes
            processes.append(process)
            urls.append(url)
        yield urls
    finally:
        for process in processes:
            _stop(process)


def signed() -> dict[str, Any]:
    """token, expire and signature, as an app's server hands them to its browser."""
    server = ImageKit(private_key=PRIVATE_KEY, base_url="http://unused", max_retries=0)
    return server.helper.get_authentication_parameters()


def client_upload(node: str, params: dict[str, Any], name: str) -> tuple[int, str]:
    """An upload as a browser makes it with ImageKit's SDK (it has no private key): the
    status, and the file's path or the error message."""
    browser = ImageKit(private_key="a browser has none", base_url=node, max_retries=0)
    try:
        stored = browser.files.upload(file=make_image(40, 30), file_name=name,
                                      public_key=PUBLIC_KEY, use_unique_file_name=False,
                                      **params)
    except imagekitio.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        return exc.status_code, str(body.get("message"))
    return 200, str(stored.file_path)


def jwt_upload(node: str, token: str, name: str) -> tuple[int, str]:
    """A v2 upload carrying `token` (its payload names `name`)."""
    answer = httpx.post(f"{node}/api/v2/files/upload", timeout=30,
                        data={"fileName": name, "useUniqueFileName": "false",
                              "token": token},
                        files={"file": (name, make_image(40, 30))})
    return answer.status_code, str(answer.json().get("message", answer.json().get("filePath")))


def stored_names(node: str) -> list[str]:
    """Every file's name in the library."""
    answer = httpx.get(f"{node}/v1/files", auth=(PRIVATE_KEY, ""), timeout=30)
    return sorted(f["name"] for f in answer.json())


def in_redis(redis: RedisServer, token: str) -> bool:
    """Whether Redis holds the default account's claim of `token`."""
    with redis_sync.Redis.from_url(redis.url) as client:
        return bool(client.exists(f"{PREFIX}:{token}"))


def test_a_token_reused_on_another_node_is_refused_by_redis(nodes: list[str],
                                                            redis: RedisServer) -> None:
    a, b = nodes
    params = signed()
    assert client_upload(a, params, "first.jpg") == (200, "/first.jpg")
    assert in_redis(redis, params["token"])
    assert client_upload(b, params, "second.jpg") == (403, USED)
    assert client_upload(a, params, "third.jpg") == (403, USED)
    # v2: the JWT's digest is the token.
    now = int(time.time())
    token = jwt.encode({"fileName": "j.jpg", "useUniqueFileName": "false", "iat": now,
                        "exp": now + 600}, PRIVATE_KEY, algorithm="HS256",
                       headers={"kid": PUBLIC_KEY})
    assert jwt_upload(b, token, "j.jpg") == (200, "/j.jpg")
    assert jwt_upload(a, token, "j.jpg") == (403, USED)
    assert stored_names(a) == ["first.jpg", "j.jpg"]


def test_no_token_is_accepted_twice_across_a_redis_outage_and_restart(
        nodes: list[str], redis: RedisServer) -> None:
    a, b = nodes
    before = signed()
    assert client_upload(a, before, "before.jpg")[0] == 200
    redis.stop()
    # Redis down: uploads go on; reuse is refused by the database, also of a token spent
    # through Redis alone before the outage.
    during = signed()
    assert client_upload(b, during, "during.jpg") == (200, "/during.jpg")
    assert client_upload(a, during, "during-again.jpg") == (403, USED)
    assert client_upload(b, before, "before-again.jpg") == (403, USED)
    # Two nodes racing with one token: one stores, the other is refused.
    raced = signed()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda pair: client_upload(pair[0], raced, pair[1]),
                                [(a, "race-a.jpg"), (b, "race-b.jpg")]))
    assert sorted(status for status, _ in answers) == [200, 403], answers
    # Redis back, empty (no persistence): nothing spent before is accepted again.
    redis.start()
    time.sleep(RETRY_SECONDS + 0.2)  # claims skip Redis a moment after it failed
    for node in (a, b):
        for params in (before, during, raced):
            assert client_upload(node, params, "again.jpg") == (403, USED)
    after = signed()
    assert client_upload(b, after, "after.jpg") == (200, "/after.jpg")
    assert in_redis(redis, after["token"])  # Redis is used again
    assert client_upload(a, after, "after-again.jpg") == (403, USED)
    won = [path.lstrip("/") for status, path in answers if status == 200]
    assert stored_names(a) == sorted(["after.jpg", "before.jpg", "during.jpg", *won])
