"""Observability: /metrics summed over worker processes, /healthz, /readyz, JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pixelport import health
from pixelport.config import ConfigError, from_dict
from tests.databases import PostgresServer
from tests.helpers import OriginServer, Relay, free_port, make_image, web_config
from tests.test_workers import _ready, _stop, _workers

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana-pixelport.json"


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a /metrics answer by sample name: (labels, value)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
           **labels: str) -> float:
    return sum(value for found, value in samples.get(name, [])
               if all(found.get(k) == v for k, v in labels.items()))


# --- a real server with two workers -------------------------------------------------------------

@pytest.mark.integration
def test_metrics_sum_every_worker_and_json_logs_carry_request_ids(
        tmp_path: Path, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(120, 90)
    origin.statuses["/broken.jpg"] = 500
    config = web_config(tmp_path, origin.url, "obs_key",
                        'workers = 2\nlog_format = "json"\naccess_log = true')
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        # `python -m pixelport` from this checkout: this tree's code, in the workers too.
        process = subprocess.Popen([sys.executable, "-m", "pixelport", "serve", "--config",
                                    str(config), "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while len(_workers(process.pid)) < 2 or not _ready(url):
            assert time.monotonic() < deadline and process.poll() is None, "not started"
            time.sleep(0.1)
        ids: dict[str, int] = {}
        delivered = 0
        # Each on a new connection: the kernel spreads them over both workers. Every worker
        # renders or reads from disk once, then answers from memory, then hot.
        for _ in range(30):
            answer = httpx.get(f"{url}/tr:w-50/a.jpg", timeout=20)
            assert answer.status_code == 200
            ids[answer.headers["x-request-id"]] = 200
            delivered += 1
        for _ in range(12):
            assert httpx.get(f"{url}/missing.jpg", timeout=20).status_code == 404
            delivered += 1
        for _ in range(3):
            assert httpx.get(f"{url}/broken.jpg", timeout=20).headers.get("ik-error")
            delivered += 1
        purge = httpx.post(f"{url}/v1/files/purge", json={"url": f"{url}/a.jpg"},
                           auth=("obs_key", ""), timeout=20)
        assert purge.status_code == 201
        time.sleep(1.5)  # every worker has folded its hot answers (metrics.FOLD_SECONDS)
        texts = [httpx.get(f"{url}/metrics", timeout=20).text for _ in range(6)]
        for text in texts[-2:]:
            samples = _samples(text)
            assert _total(samples, "pixelport_worker_processes") == 2
            assert _total(samples, "pixelport_requests_total", route="delivery") == delivered
            assert _total(samples, "pixelport_requests_total", route="delivery",
                          status="200") == 30
            assert _total(samples, "pixelport_requests_total", route="delivery",
                          status="404") >= 12
            assert _total(samples, "pixelport_errors_total", code="ENOENT") == 12
            # Each lookup ends in one of: memory hit, disk hit, disk miss; hot ones before it.
            ends = sum(_total(samples, "pixelport_cache_lookups_total", tier=tier,
                              result=result)
                       for tier, result in (("hot", "hit"), ("memory", "hit"),
                                            ("disk", "hit"), ("disk", "miss")))
            assert ends == delivered
            assert _total(samples, "pixelport_cache_lookups_total", tier="hot",
                          result="hit") > 0
            assert _total(samples, "pixelport_origin_failures_total", origin="web") >= 3
            assert _total(samples, "pixelport_transformation_seconds_count") >= 1
            assert _total(samples, "pixelport_download_seconds_count") >= 1
            assert _total(samples, "pixelport_request_duration_seconds_count",
                          route="delivery") >= delivered - _total(
                samples, "pixelport_cache_lookups_total", tier="hot", result="hit")
            assert _total(samples, "pixelport_queue_capacity", queue="render") > 0
            assert _total(samples, "pixelport_queue_jobs", queue="render") == 0
            assert _total(samples, "pixelport_requests_total", route="health") >= 4
            assert _total(samples, "pixelport_requests_total", route="api",
                          status="201") == 1
            assert _total(samples, "pixelport_purges_total", kind="url") == 1
        # The Grafana dashboard uses only metrics a real server has.
        names = set(_samples(texts[-1]))
        used = set(re.findall(r"pixelport_[a-z_]+", DASHBOARD.read_text()))
        assert used and used <= names, used - names
        # The same answer whichever worker is asked: both workers' hot answers are in it.
        assert len({_total(_samples(t), "pixelport_requests_total", route="delivery")
                    for t in texts[-2:]}) == 1
        # A worker killed and restarted: its counts stay in the sums, its gauges leave them.
        before = set(_workers(process.pid))
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while log_path.read_text().count('"message":"pixelport ready') < 3:
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.1)
        samples = _samples(httpx.get(f"{url}/metrics", timeout=20).text)
        assert _total(samples, "pixelport_worker_processes") == 2
        assert _total(samples, "pixelport_requests_total", route="delivery") == delivered
    finally:
        _stop(process)
    # Every line is JSON: the supervisor's, the workers', uvicorn's, the access lines.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "pixelport.access"]
    by_id = {line["request_id"]: line for line in access}
    assert set(ids) <= set(by_id)
    assert {line["worker"] for line in access} == {0, 1}  # both workers answered
    caches = {by_id[i].get("cache") for i in ids}
    assert {"miss", "hot"} <= caches, caches
    made = next(by_id[i] for i in ids if by_id[i].get("cache") == "miss")
    assert made["status"] == 200 and made["target"] == "/tr:w-50/a.jpg"
    assert made["route"] == "delivery" and made["duration_ms"] > 0
    assert "download_ms" in made and "transformation_ms" in made
    missing = [line for line in access if line["target"] == "/missing.jpg"]
    assert len(missing) == 12 and all(line["ik_error"] == "ENOENT" for line in missing)
    health_lines = [line for line in access if line["route"] == "health"]
    assert health_lines and all(line["request_id"] for line in health_lines)


def test_metrics_of_one_process_count_hot_answers(serve: Any, origin: OriginServer) -> None:
    origin.files["/b.jpg"] = make_image(80, 60)
    pp = serve(_web(origin))
    before = _samples(pp.get("/metrics").body.decode())
    for _ in range(5):  # a miss, a memory hit that files the hot answer, then hot answers
        assert pp.get("/tr:w-30/b.jpg").status == 200
    after = _samples(pp.get("/metrics").body.decode())

    def grew(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert grew("pixelport_requests_total", route="delivery", status="200") == 5
    assert grew("pixelport_cache_lookups_total", tier="hot", result="hit") >= 2
    assert grew("pixelport_requests_total", route="health", status="200") == 1
    assert grew("pixelport_transformation_seconds_count") == 1


# --- /healthz -----------------------------------------------------------------------------------

def test_healthz_runs_libvips_in_the_render_pool(serve: Any, origin: OriginServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pp = serve(_web(origin))
    answer = pp.get("/healthz")
    assert answer.status == 200 and json.loads(answer.body)["status"] == "ok"
    assert answer.headers["content-type"] == "application/json"

    def stuck() -> None:
        time.sleep(1.0)

    monkeypatch.setattr(health, "_vips_probe", stuck)
    monkeypatch.setattr(health, "HEALTH_SECONDS", 0.2)
    answer = pp.get("/healthz")
    assert answer.status == 503 and "within" in json.loads(answer.body)["error"]
    monkeypatch.undo()
    time.sleep(1.0)  # the stuck probe leaves its thread
    pp.app.pool.executor.shutdown()
    answer = pp.get("/healthz")
    assert answer.status == 503 and json.loads(answer.body)["status"] == "failed"


# --- /readyz ------------------------------------------------------------------------------------

def test_readiness_checks_required_and_optional() -> None:
    async def fine() -> None:
        pass

    async def broken() -> None:
        raise ConnectionRefusedError("connection refused")

    async def slow() -> None:
        await asyncio.sleep(10)

    async def scenario() -> None:
        readiness = health.Readiness()
        assert await readiness.run() == (200, {"status": "ok", "checks": {}})
        readiness.add("database", fine)
        readiness.add("redis", broken, required=False)
        status, body = await readiness.run()
        assert status == 200 and body["status"] == "degraded"
        assert body["checks"]["redis"]["state"] == "degraded"
        assert body["checks"]["database"]["state"] == "ok"
        readiness.add("database", slow)
        started = time.monotonic()
        status, body = await readiness.run()
        assert time.monotonic() - started < health.CHECK_SECONDS + 1
        assert status == 503 and body["status"] == "failed"
        assert body["checks"]["database"]["state"] == "failed"

        readiness = health.Readiness()
        readiness.add("cache_disk", health.disk_check(Path("/nonexistent/cache")),
                      required=False)
        status, body = await readiness.run()
        assert status == 200 and body["checks"]["cache_disk"]["state"] == "degraded"
        assert "FileNotFoundError" in body["checks"]["cache_disk"]["error"]

    asyncio.run(scenario())


def test_operations_doc_lists_every_metric_and_the_dashboard_parses() -> None:
    from pixelport import metrics

    made = set()
    for family in metrics.REGISTRY.collect():
        made.add(family.name + ("_total" if family.type == "counter" else ""))
    doc = (ROOT / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(pixelport_[a-z_]+)` \|", doc, re.MULTILINE))
    assert made == documented
    dashboard = json.loads(DASHBOARD.read_text())
    assert all(panel["targets"] for panel in dashboard["panels"])


def test_readyz_fails_when_postgresql_goes_while_delivery_goes_on(
        serve: Any, origin: OriginServer, tmp_path: Path,
        postgres_server: PostgresServer) -> None:
    origin.files["/a.jpg"] = make_image(60, 40)
    url = postgres_server.create_database()
    relay = Relay(postgres_server.port)
    (tmp_path / "library").mkdir()
    data = _web(origin)
    data["library"] = {"dir": str(tmp_path / "library")}
    data["database"] = {"url": url.replace(f":{postgres_server.port}/", f":{relay.port}/")}
    # An endpoint without the library: one with it asks the database first (and answers 500
    # while it is gone).
    data["endpoint"].append({"identifier": "web", "origins": ["web"], "library": False})
    try:
        pp = serve(data)
        answer = pp.get("/readyz")
        body = json.loads(answer.body)
        assert answer.status == 200, body
        assert body["status"] == "ok" and body["checks"]["database"]["state"] == "ok"
        relay.close()  # the database's port is closed from now on
        answer = pp.get("/readyz")
        body = json.loads(answer.body)
        assert answer.status == 503 and body["status"] == "failed"
        assert body["checks"]["database"]["state"] == "failed"
        assert body["checks"]["database"]["required"] is True
        assert pp.get("/web/tr:w-20/a.jpg").status == 200  # the node still serves its origins
        assert pp.get("/healthz").status == 200  # and is alive: not restarted for it
    finally:
        relay.close()


def test_log_format_key() -> None:
    assert from_dict({"server": {"log_format": "json", "access_log": True}}).server.log_format \
        == "json"
    with pytest.raises(ConfigError, match="log_format"):
        from_dict({"server": {"log_format": "xml"}})


# --- helpers ------------------------------------------------------------------------------------

def _web(origin: OriginServer) -> dict[str, Any]:
    return {"security": {"allow_private_networks": True}, "library": {"dir": ""},
            "origin": [{"name": "web", "type": "web_server", "base_url": origin.url}],
            "endpoint": [{"identifier": "", "origins": ["web"]}]}
