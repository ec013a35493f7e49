"""Several worker processes (`[server] workers`): what they share, and how they are run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pixelport.cache.disk import DiskTier
from pixelport.cache.entry import Entry
from pixelport.config import Config, ConfigError, load
from pixelport.place import Place
from pixelport.workers import share, worker_count
from tests.helpers import OriginServer, decode, free_port, make_image, web_config

ROOT = Path(__file__).resolve().parent.parent


# --- config ------------------------------------------------------------------------------------

def test_workers_key_and_the_share_of_each_worker(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pixelport.toml"
    path.write_text('[server]\nworkers = 4\nprocessing_queue = 64\n'
                    '[cache]\nmemory_size = "400MB"\ndecoded_memory = "200MB"\n'
                    'max_size = "10GB"\n')
    config = load(path)
    assert worker_count(config) == 4
    mine = share(config, 4)
    assert (mine.cache.memory_size, mine.cache.decoded_memory, mine.cache.max_size) == (
        100 * 10**6, 50 * 10**6, 2500 * 10**6)
    assert mine.server.processing_queue == 16 and mine.server.processing_threads >= 2
    assert share(config, 1) is config
    assert 1 <= worker_count(Config()) <= max(1, (os.cpu_count() or 1))
    monkeypatch.setattr("pixelport.workers.SPREADS", False)  # not Linux: no spreading
    assert worker_count(config) == 1
    path.write_text("[server]\nworkers = -1\n")
    with pytest.raises(ConfigError, match="workers"):
        load(path)


# --- the disk tier shared by workers ------------------------------------------------------------

def _entry(path: str, body: bytes) -> Entry:
    return Entry(body=body, headers={"content-type": "image/jpeg"}, etag='"x"', endpoint="",
                 path=path)


def test_workers_read_each_others_entries_and_index_their_own_part(tmp_path: Path) -> None:
    async def scenario() -> None:
        one = DiskTier(tmp_path, 10**6, Place(0, 2, tmp_path))
        two = DiskTier(tmp_path, 10**6, Place(1, 2, tmp_path))
        for tier in (one, two):
            await asyncio.to_thread(tier.load_index)
        keys = [f"{n:02x}" + "0" * 38 for n in range(8)]
        for key in keys:
            await one.put(key, _entry("/a.jpg", key.encode()))
        found = await two.get(keys[3])  # written by the other worker: read from its file
        assert found is not None and found.body == keys[3].encode()
        assert keys[3] not in two.index  # evicted and purged by the worker that wrote it
        assert await two.get("ff" + "0" * 38) is None
        one.close()
        two.close()
        # Started again, each indexes its part of the keys (an even or odd first byte).
        again = [DiskTier(tmp_path, 10**6, Place(i, 2, tmp_path)) for i in (0, 1)]
        for tier in again:
            await asyncio.to_thread(tier.load_index)
            tier.close()
        assert set(again[0].index) | set(again[1].index) == set(keys)
        assert not set(again[0].index) & set(again[1].index)
        # A worker restarted after a crash cannot tell what it wrote: it indexes everything.
        restarted = DiskTier(tmp_path, 10**6, Place(1, 2, tmp_path, restarted=True))
        await asyncio.to_thread(restarted.load_index)
        restarted.close()
        assert set(restarted.index) == set(keys)

    asyncio.run(scenario())


def test_start_up_removes_only_temporary_files_of_dead_writers(tmp_path: Path) -> None:
    folder = tmp_path / "ab"
    folder.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = folder / f".tmp-{os.getppid()}-1"  # a writer that is running: another worker
    gone = folder / f".tmp-{dead.pid}-1"
    for path in (live, gone):
        path.write_bytes(b"half")
    tier = DiskTier(tmp_path, 10**6, Place(0, 2, tmp_path))
    tier.load_index()
    tier.close()
    assert live.exists() and not gone.exists()


# --- the server ---------------------------------------------------------------------------------

def _serve(tmp_path: Path, origin: OriginServer, workers: int = 2
           ) -> tuple[subprocess.Popen[bytes], str]:
    config = web_config(tmp_path, origin.url, "workers_key", f"workers = {workers}")
    return _serve_config(config, workers)


def _serve_config(config: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """`pixelport serve` on a config file, once all its workers answer."""
    port = free_port()
    # `python -m pixelport` from this checkout: this tree's code in the supervisor and the
    # workers alike (an installed `pixelport` may be another checkout's).
    process = subprocess.Popen([sys.executable, "-m", "pixelport", "serve", "--config",
                                str(config), "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while len(_workers(process.pid)) < workers or not _ready(url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("pixelport serve did not start its workers")
        time.sleep(0.1)
    return process, url


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server as an operator would (SIGTERM: it removes its run folder)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _workers(pid: int) -> list[int]:
    """The worker processes under the supervisor `pid`."""
    found = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
            cmdline = (child / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"pixelport.workers" in cmdline:
            found.append(int(child.name))
    return found


def _each_connection(url: str, count: int = 24) -> list[httpx.Response]:
    """`count` GETs, each on a new connection (the kernel spreads them over the workers)."""
    return [httpx.get(url, timeout=20) for _ in range(count)]


@pytest.mark.integration
def test_workers_share_results_and_purges_reach_all_of_them(
        tmp_path: Path, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(400, 300, colour=(200, 30, 30))
    process, url = _serve(tmp_path, origin)
    try:
        assert len(_workers(process.pid)) == 2
        first = httpx.get(url + "/tr:w-100/a.jpg", timeout=20)
        assert first.status_code == 200 and "cache;desc=miss" in first.headers["server-timing"]
        time.sleep(0.5)  # its disk write
        # Whichever worker answers, it is a hit: its memory, or the other's file.
        later = _each_connection(url + "/tr:w-100/a.jpg")
        assert all("cache;desc=hit" in r.headers["server-timing"] for r in later)
        assert len({r.headers["etag"] for r in later}) == 1
        # Both workers now hold it in memory; the file changes and is purged at one of them.
        origin.files["/a.jpg"] = make_image(400, 300, colour=(30, 30, 200))
        purge = httpx.post(url + "/v1/files/purge", json={"url": url + "/a.jpg"},
                           auth=("workers_key", ""), timeout=20)
        assert purge.status_code == 201
        request_id = purge.json()["requestId"]
        after = _each_connection(url + "/tr:w-100/a.jpg")
        assert all(decode(r.content)(50, 50)[2] > 150 for r in after), "a worker kept it"
        statuses = [httpx.get(f"{url}/v1/files/purge/{request_id}", auth=("workers_key", ""))
                    for _ in range(8)]
        assert {r.status_code for r in statuses} == {200}  # known to every worker
    finally:
        _stop(process)


@pytest.mark.integration
def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all(
        tmp_path: Path, origin: OriginServer) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    process, url = _serve(tmp_path, origin)
    try:
        victim, survivor = _workers(process.pid)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in _workers(process.pid) or len(_workers(process.pid)) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        assert survivor in _workers(process.pid)
        replies = _each_connection(url + "/tr:w-120/a.jpg", 12)
        assert {r.status_code for r in replies} == {200}
        workers = _workers(process.pid)
        process.terminate()
        assert process.wait(timeout=40) == 0
        deadline = time.monotonic() + 10
        while _group(process.pid) or any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "processes left running"
            time.sleep(0.1)
        assert not _ready(url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _group(pgid: int) -> list[int]:
    """Live processes of the process group `pgid`."""
    found = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            fields = (child / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(child.name))
    return found


@pytest.mark.integration
def test_a_taken_port_is_one_clear_error(tmp_path: Path, origin: OriginServer) -> None:
    process, url = _serve(tmp_path, origin, workers=2)
    try:
        port = url.rsplit(":", 1)[1]
        other = subprocess.run([sys.executable, "-m", "pixelport", "serve", "--config",
                                str(tmp_path / "pixelport.toml"), "--listen",
                                f"127.0.0.1:{port}"], cwd=ROOT, capture_output=True,
                               timeout=30, text=True)
        assert other.returncode != 0 and "in use" in (other.stderr + other.stdout).lower()
    finally:
        _stop(process)


@pytest.mark.integration
def test_a_killed_supervisor_takes_its_workers_and_its_run_folder_goes_at_the_next_start(
        tmp_path: Path, origin: OriginServer) -> None:
    import glob

    process, _ = _serve(tmp_path, origin)
    workers = _workers(process.pid)
    [run_dir] = glob.glob(f"/dev/shm/pixelport-run-{process.pid}-*") or glob.glob(
        f"/tmp/pixelport-run-{process.pid}-*")
    process.kill()  # no clean-up of its own
    process.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers):  # they are told (SIGTERM) and stop
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    assert Path(run_dir).exists()
    again, _ = _serve(tmp_path, origin)
    try:
        assert not Path(run_dir).exists()
    finally:
        _stop(again)


def test_a_purge_that_cannot_reach_every_worker_answers_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from pixelport.app import App

    monkeypatch.setattr("pixelport.siblings.TIMEOUT", 0.3)
    config = load(web_config(tmp_path, "http://127.0.0.1:9", "workers_key"))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        body = json.dumps({"url": "http://127.0.0.1/a.jpg"}).encode()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def scenario() -> None:
        app = App(config, place=Place(0, 2, tmp_path))  # worker 1 never answers
        await app.purges.purge(receive, send)
        await app.aclose()

    asyncio.run(scenario())
    assert sent[0]["status"] == 503
    assert b"send it again" in bytes(sent[1]["body"])  # type: ignore[arg-type]
