"""Cross-node leases on a real redis-server: one maker among many callers on many clients,
the others get its result, a dead holder's work is taken over, Redis down means make it here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pixelport.cluster.leases import Leases
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.remove()


def client(url: str) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)


def test_one_of_thirty_makes_it_and_the_others_get_its_result(redis: RedisServer) -> None:
    async def scenario() -> tuple[list[str], int]:
        nodes = [Leases(client(redis.url)) for _ in range(3)]  # three nodes
        shared: dict[str, str] = {}  # the shared cache tier
        makes = 0

        async def make() -> str:
            nonlocal makes
            makes += 1
            await asyncio.sleep(0.3)
            shared["k"] = "result"
            return "result"

        async def ready() -> str | None:
            return shared.get("k")

        got = await asyncio.gather(*(nodes[i % 3].run("k", make, ready) for i in range(30)))
        for node in nodes:
            await node.redis.aclose()
        return list(got), makes

    got, makes = asyncio.run(scenario())
    assert got == ["result"] * 30 and makes == 1


def test_a_dead_holders_work_is_taken_over(redis: RedisServer) -> None:
    async def scenario() -> tuple[str, int, float]:
        alive = Leases(client(redis.url), ttl=0.5)
        # A holder killed with kill -9: its lease stays until it expires, never released.
        await alive.redis.set("pixelport:lease:k", "a dead node's token", px=400)

        async def make() -> str:
            return "made here"

        started = asyncio.get_running_loop().time()
        got = await alive.run("k", make, _nothing)
        waited = asyncio.get_running_loop().time() - started
        await alive.redis.aclose()
        return got, alive.taken_over, waited

    got, taken, waited = asyncio.run(scenario())
    assert got == "made here" and taken == 1 and waited >= 0.3


def test_with_redis_down_each_caller_makes_it(redis: RedisServer) -> None:
    redis.stop()

    async def scenario() -> str:
        leases = Leases(client(redis.url))

        async def make() -> str:
            return "here"

        got = await leases.run("k", make, _nothing)
        await leases.redis.aclose()
        return got

    assert asyncio.run(scenario()) == "here"


async def _nothing() -> str | None:
    return None
