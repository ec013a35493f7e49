"""Retries, total timeout and the circuit breaker around an origin."""

from __future__ import annotations

import asyncio
import time

import pytest

from pixelport.errors import (
    AccessDenied,
    AddressRefused,
    NotFound,
    OriginFailed,
    OriginUnreachable,
)
from pixelport.origins.base import FetchOptions, Original
from pixelport.origins.resilience import ResilienceSettings, ResilientOrigin


class Scripted:
    """An origin that plays back a list of outcomes and counts calls."""

    name = "scripted"

    def __init__(self, outcomes: list[object], delay: float = 0.0) -> None:
        self.outcomes = outcomes
        self.calls = 0
        self.delay = delay

    async def fetch(self, path: str, options: FetchOptions) -> Original:
        self.calls += 1
        await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        return Original(body=_empty(), source=self.name)

    async def aclose(self) -> None:
        pass


async def _empty():  # type: ignore[no-untyped-def]
    if False:
        yield b""


def run(origin: ResilientOrigin) -> Original:
    return asyncio.run(origin.fetch("a.jpg", FetchOptions()))


def fast(**overrides: float) -> ResilienceSettings:
    values = {"retries": 2, "backoff": 0.001, "threshold": 3, "cooldown": 0.2,
              "total_timeout": 5.0, **overrides}
    return ResilienceSettings(int(values["retries"]), values["backoff"], int(values["threshold"]),
                              values["cooldown"], values["total_timeout"])


def test_connection_errors_are_retried() -> None:
    inner = Scripted([OriginUnreachable("refused"), OriginUnreachable("refused")])
    assert run(ResilientOrigin(inner, fast())).source == "scripted"
    assert inner.calls == 3


def test_retries_are_bounded() -> None:
    inner = Scripted([OriginUnreachable("refused")] * 10)
    with pytest.raises(OriginUnreachable):
        run(ResilientOrigin(inner, fast(threshold=100)))
    assert inner.calls == 3


def test_timeouts_and_5xx_are_not_retried() -> None:
    inner = Scripted([OriginFailed("HTTP 500")])
    with pytest.raises(OriginFailed):
        run(ResilientOrigin(inner, fast()))
    assert inner.calls == 1


def test_total_timeout() -> None:
    inner = Scripted([], delay=1.0)
    began = time.monotonic()
    with pytest.raises(OriginFailed, match="no answer within"):
        run(ResilientOrigin(inner, fast(total_timeout=0.1)))
    assert time.monotonic() - began < 0.5


def test_circuit_opens_fails_fast_and_recovers() -> None:
    inner = Scripted([OriginFailed("HTTP 503")] * 3)
    origin = ResilientOrigin(inner, fast())
    for _ in range(3):
        with pytest.raises(OriginFailed):
            run(origin)
    assert inner.calls == 3
    with pytest.raises(OriginUnreachable, match="circuit open"):
        run(origin)
    assert inner.calls == 3  # not contacted while open
    time.sleep(0.25)
    assert run(origin).source == "scripted"  # the trial request succeeds: closed again
    assert failures(origin) == 0


def test_answers_count_as_healthy() -> None:
    inner = Scripted([OriginFailed("x"), OriginFailed("x"), NotFound("gone"),
                      AccessDenied("no"), OriginFailed("x"), OriginFailed("x")])
    origin = ResilientOrigin(inner, fast())
    for _ in range(6):
        with pytest.raises((OriginFailed, NotFound, AccessDenied)):
            run(origin)
    assert failures(origin) == 2  # never three failures in a row


def failures(origin: ResilientOrigin, key: str = "") -> int:
    breaker = origin.breakers.get(key)
    return breaker.failures if breaker is not None else 0


def test_address_guard_refusals_are_not_counted() -> None:
    # The request picks the host: refusing its address says nothing of the upstream.
    inner = Scripted([AddressRefused("forbidden address")] * 10)
    origin = ResilientOrigin(inner, fast())
    for _ in range(10):
        with pytest.raises(AddressRefused):
            run(origin)
    assert inner.calls == 10 and failures(origin) == 0  # neither retried nor counted


class Proxy(Scripted):
    """A scripted origin with a breaker per host, as the web proxy has."""

    def breaker_key(self, path: str) -> str:
        return path.split("/")[2]


def test_each_host_of_a_proxy_has_its_own_circuit() -> None:
    inner = Proxy([OriginUnreachable("no such host")] * 15)
    origin = ResilientOrigin(inner, fast(retries=0))

    async def fetch(path: str) -> Original:
        return await origin.fetch(path, FetchOptions())

    for n in range(5):  # five failing hosts, three times each: each circuit opens
        for _ in range(3):
            with pytest.raises(OriginUnreachable):
                asyncio.run(fetch(f"http://nx{n}.invalid/x.jpg"))
    with pytest.raises(OriginUnreachable, match="circuit open"):
        asyncio.run(fetch("http://nx0.invalid/x.jpg"))
    assert asyncio.run(fetch("http://images.example.com/a.jpg")).source == "scripted"
