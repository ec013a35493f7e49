"""Result cache, saved originals, coalescing, admission control, purge, restart."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pixelport.transform import engine
from tests.helpers import OriginServer, Pixelport, decode, make_image, server_timing

pytestmark = pytest.mark.integration
KEY = "private_cache_test_key"


def config(origin: OriginServer, cache_dir: Path, **cache: Any) -> dict[str, Any]:
    return {
        "security": {"allow_private_networks": True, "private_key": KEY},
        "library": {"dir": ""},
        "cache": {"dir": str(cache_dir), **cache},
        "origin": [{"name": "web", "type": "web_server", "base_url": origin.url}],
        "endpoint": [{"identifier": "", "origins": ["web"]}],
    }


def fetches(origin: OriginServer, path: str) -> int:
    return origin.paths().count(path)


def count_renders(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> list[int]:
    calls: list[int] = []
    real = engine.render

    def counting(*args: Any) -> Any:
        calls.append(1)
        time.sleep(delay)
        return real(*args)

    monkeypatch.setattr(engine, "render", counting)
    return calls


def test_second_request_is_a_hit_without_origin_contact(serve: Any, origin: OriginServer,
                                                        tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    first = pp.get("/tr:w-100/a.jpg")
    assert server_timing(first.headers["server-timing"])["cache"] == "miss"
    second = pp.get("/tr:w-100/a.jpg")
    assert server_timing(second.headers["server-timing"])["cache"] == "hit"
    assert second.body == first.body and second.headers["etag"] == first.headers["etag"]
    assert fetches(origin, "/a.jpg") == 1
    # Another variant (Accept) of the same URL is its own entry.
    webp = pp.get("/tr:w-100/a.jpg", {"Accept": "image/webp"})
    assert webp.headers["content-type"] == "image/webp"
    # The query form of the same transformation shares the entry.
    assert server_timing(pp.get("/a.jpg?tr=w-100").headers["server-timing"])["cache"] == "hit"


def test_identical_cold_requests_do_one_fetch_and_one_transform(
        serve: Any, origin: OriginServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    origin.files["/hot.jpg"] = make_image(600, 400)
    origin.delays["/hot.jpg"] = 0.3
    renders = count_renders(monkeypatch)
    pp = serve(config(origin, tmp_path / "cache"))
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: pp.get("/tr:w-120/hot.jpg"), range(50)))
    assert all(r.status == 200 for r in responses)
    assert len({r.body for r in responses}) == 1
    assert fetches(origin, "/hot.jpg") == 1
    assert len(renders) == 1


def test_different_sizes_share_one_fetch(serve: Any, origin: OriginServer,
                                         tmp_path: Path) -> None:
    origin.files["/one.jpg"] = make_image(600, 400)
    origin.delays["/one.jpg"] = 0.3
    pp = serve(config(origin, tmp_path / "cache"))
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda w: pp.get(f"/tr:w-{50 + w}/one.jpg"), range(10)))
    assert [r.image().width for r in responses] == [50 + w for w in range(10)]
    assert fetches(origin, "/one.jpg") == 1


def test_variants_waiting_on_one_fetch_share_one_decode_from_the_first(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/big.jpg"] = make_image(4000, 3000)
    origin.files["/lone.jpg"] = make_image(4000, 3000, colour=(0, 90, 0))
    origin.delays["/big.jpg"] = 0.5
    pp = serve(config(origin, tmp_path / "cache"))
    store = pp.app.images.mezzanines
    asked: list[bool] = []
    real = store.get

    def recording(data: bytes, build: Any, popular: bool = False, defer: bool = False) -> Any:
        asked.append(popular)
        return real(data, build, popular, defer)

    store.get = recording  # type: ignore[method-assign]
    assert pp.get("/tr:w-300/lone.jpg").status == 200
    assert asked == [False] and not store.items  # alone: decoded directly, nothing kept
    asked.clear()
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda w: pp.get(f"/tr:w-{w}/big.jpg"), (300, 400)))
    assert [r.image().width for r in responses] == [300, 400]
    assert fetches(origin, "/big.jpg") == 1
    # The first built it; the second found it, or came back for it once it was built.
    assert asked in ([True, True], [True, True, True]) and len(store.items) == 1


def test_only_originals_asked_again_are_kept_for_later_variants(
        serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    recent = pp.app.sources.recent
    pp.get("/tr:w-10/a.jpg")
    assert not recent  # asked once: not held
    pp.get("/tr:w-20/a.jpg")
    assert len(recent) == 1  # asked again within moments: held for the variants to come
    for width in (30, 40, 50):
        pp.get(f"/tr:w-{width}/a.jpg")
    assert fetches(origin, "/a.jpg") == 2


def test_slow_fetch_does_not_block_other_urls(serve: Any, origin: OriginServer,
                                              tmp_path: Path) -> None:
    origin.files["/slow.jpg"] = make_image(100, 100)
    origin.files["/fast.jpg"] = make_image(100, 100)
    origin.delays["/slow.jpg"] = 2.0
    pp = serve(config(origin, tmp_path / "cache"))
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(pp.get, "/slow.jpg")
        time.sleep(0.2)
        began = time.monotonic()
        assert pp.get("/fast.jpg").status == 200
        assert time.monotonic() - began < 1.0
        assert slow.result().status == 200


def test_saved_originals_serve_after_the_origin_stops(serve: Any, tmp_path: Path) -> None:
    origin = OriginServer().start()
    origin.files["/keep.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache", save_originals=True))
    assert pp.get("/tr:w-100/keep.jpg").status == 200
    origin.stop()
    other = pp.get("/tr:w-150/keep.jpg")  # a transformation never made before
    assert other.status == 200 and other.image().width == 150


def test_stale_original_is_revalidated_and_304_keeps_it(serve: Any, origin: OriginServer,
                                                        tmp_path: Path) -> None:
    origin.files["/rv.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache", save_originals=True, originals_ttl=0))
    assert pp.get("/tr:w-100/rv.jpg").status == 200
    assert pp.get("/tr:w-110/rv.jpg").status == 200
    second = origin.requests[-1]
    assert second.headers.get("if-none-match", "").startswith('"')
    # The origin's content changes: the next revalidation fetches it anew.
    origin.files["/rv.jpg"] = make_image(200, 100)
    assert pp.get("/tr:w-120,f-png/rv.jpg").image().height == 60


def test_purge_exact_and_prefix(serve: Any, origin: OriginServer, tmp_path: Path) -> None:
    for name in ("/shop/a.jpg", "/shop/b.jpg", "/other/c.jpg"):
        origin.files[name] = make_image(100, 100)
    pp = serve(config(origin, tmp_path / "cache"))
    for name in ("/shop/a.jpg", "/shop/b.jpg", "/other/c.jpg"):
        for width in (10, 20):
            pp.get(f"/tr:w-{width}{name}")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:do_not_set".encode()).decode(),
            "Content-Type": "application/json"}
    response = post(pp, "/v1/files/purge", {"url": f"{pp.url}/tr:w-10/shop/a.jpg"}, auth)
    assert response[0] == 201
    request_id = json.loads(response[1])["requestId"]
    status = pp.get(f"/v1/files/purge/{request_id}", auth)
    assert status.status == 200 and json.loads(status.body) == {"status": "Completed"}
    assert cache_state(pp, "/tr:w-20/shop/a.jpg") == "miss"   # every transformation purged
    assert cache_state(pp, "/tr:w-20/shop/b.jpg") == "hit"
    assert post(pp, "/v1/files/purge", {"url": f"{pp.url}/shop/*"}, auth)[0] == 201
    assert cache_state(pp, "/tr:w-10/shop/b.jpg") == "miss"
    assert cache_state(pp, "/tr:w-10/other/c.jpg") == "hit"
    # Too broad a wildcard, a wrong key, a bad body.
    assert post(pp, "/v1/files/purge", {"url": f"{pp.url}/*"}, auth)[0] == 400
    assert post(pp, "/v1/files/purge", {"url": f"{pp.url}/x.jpg"},
                {"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()})[0] == 401
    assert post(pp, "/v1/files/purge", {"nope": 1}, auth)[0] == 400
    assert pp.get("/v1/files/purge/unknown", auth).status == 404


def settle(pp: Pixelport) -> None:
    """Wait for the background disk writes of the results served so far."""
    deadline = time.monotonic() + 10
    while pp.app.results.writes and time.monotonic() < deadline:
        time.sleep(0.01)


def cache_state(pp: Pixelport, target: str) -> object:
    return server_timing(pp.get(target).headers["server-timing"])["cache"]


def post(pp: Pixelport, target: str, body: dict[str, Any],
         headers: dict[str, str]) -> tuple[int, bytes]:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", pp.port, timeout=10)
    try:
        conn.request("POST", target, json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_queue_full_answers_503_fast(serve: Any, origin: OriginServer, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    origin.files["/q.jpg"] = make_image(200, 200)
    count_renders(monkeypatch, delay=1.5)
    data = config(origin, tmp_path / "cache")
    data["server"] = {"processing_threads": 1, "processing_queue": 0}
    pp = serve(data)
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(pp.get, "/tr:w-10/q.jpg")
        time.sleep(0.5)
        began = time.monotonic()
        refused = pp.get("/tr:w-20/q.jpg")
        assert time.monotonic() - began < 0.5
        assert refused.status == 503 and refused.ik_error.startswith("EBUSY")
        assert refused.headers["retry-after"] == "1"
        assert busy.result().status == 200
    # A cache hit needs no worker, even while the pool is busy.
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(pp.get, "/tr:w-30/q.jpg")
        time.sleep(0.5)
        assert pp.get("/tr:w-10/q.jpg").status == 200
        blocker.result()


def test_restart_keeps_the_disk_cache_and_corruption_is_recomputed(tmp_path: Path) -> None:
    origin = OriginServer().start()
    origin.files["/p.jpg"] = make_image(300, 200)
    cache_dir = tmp_path / "cache"
    first = Pixelport(config(origin, cache_dir))
    body = first.get("/tr:w-100/p.jpg").body
    first.stop()
    second = Pixelport(config(origin, cache_dir))
    try:
        again = second.get("/tr:w-100/p.jpg")
        assert server_timing(again.headers["server-timing"])["cache"] == "hit"
        assert again.body == body and fetches(origin, "/p.jpg") == 1
    finally:
        second.stop()
    entries = list((cache_dir / "results").rglob("*.entry"))
    assert len(entries) == 1
    data = bytearray(entries[0].read_bytes())
    data[-10] ^= 0xFF  # flip a byte in the body
    entries[0].write_bytes(bytes(data))
    third = Pixelport(config(origin, cache_dir))
    try:
        recomputed = third.get("/tr:w-100/p.jpg")
        assert recomputed.status == 200 and recomputed.body == body
        assert server_timing(recomputed.headers["server-timing"])["cache"] == "miss"
        assert fetches(origin, "/p.jpg") == 2
    finally:
        third.stop()
        origin.stop()
    assert not list(cache_dir.rglob(".tmp-*"))


def test_disk_cache_stays_under_its_budget(serve: Any, origin: OriginServer,
                                           tmp_path: Path) -> None:
    origin.files["/b.jpg"] = make_image(400, 300)
    cache_dir = tmp_path / "cache"
    pp = serve(config(origin, cache_dir, max_size="20KB", memory_size="1KB"))
    for width in range(100, 300, 10):
        assert pp.get(f"/tr:w-{width},f-png/b.jpg").status == 200
    settle(pp)
    total = sum(f.stat().st_size for f in (cache_dir / "results").rglob("*.entry"))
    assert 0 < total <= 20_000
    # The most recent result survived eviction.
    assert cache_state(pp, "/tr:w-290,f-png/b.jpg") == "hit"


def test_disk_write_racing_a_purge_does_not_bring_the_file_back(tmp_path: Path) -> None:
    import asyncio

    from pixelport.cache.disk import DiskTier
    from pixelport.cache.entry import Entry

    async def scenario() -> None:
        disk = DiskTier(tmp_path / "d", 10**6)
        entry = Entry(b"x" * 1000, {}, '"e"', "", "/a.jpg")
        other = Entry(b"y" * 1000, {}, '"f"', "", "/b.jpg")
        writing = asyncio.ensure_future(disk.put("k" * 40, entry))
        kept = asyncio.ensure_future(disk.put("m" * 40, other))
        await asyncio.sleep(0)  # both writes under way in the writer thread
        assert await disk.get("k" * 40) is entry  # readable while being written
        await disk.purge(lambda endpoint, path: path == "/a.jpg")
        assert await disk.get("k" * 40) is None
        await asyncio.gather(writing, kept)
        assert not disk.file("k" * 40).exists() and "k" * 40 not in disk.index
        read = await disk.get("m" * 40)
        assert read is not None and read.body == other.body
        disk.writer.shutdown()

    asyncio.run(scenario())


def test_entries_in_the_two_level_layout_of_earlier_versions_are_moved_and_read(
        tmp_path: Path) -> None:
    import asyncio
    import shutil

    from pixelport.cache.disk import DiskTier
    from pixelport.cache.entry import Entry

    root = tmp_path / "d"
    key = "ab" + "c" * 38
    entry = Entry(b"z" * 500, {"content-type": "image/jpeg"}, '"e"', "", "/a.jpg")

    async def write_then_read() -> None:
        first = DiskTier(root, 10**6)
        await first.put(key, entry)
        first.close()
        old = root / "ab" / "cc" / (key + ".entry")
        old.parent.mkdir()
        first.file(key).rename(old)  # where a 0.1 release kept it
        second = DiskTier(root, 10**6)
        await asyncio.to_thread(second.load_index)
        assert second.file(key) == root / "ab" / (key + ".entry") and second.file(key).exists()
        assert second.used == second.file(key).stat().st_size and key in second.index
        read = await second.get(key)
        assert read is not None and read.body == entry.body
        assert list(root.rglob("*.entry")) == [second.file(key)]
        assert not (root / "ab" / "cc").exists()
        second.close()
        # Both layouts holding the same entry (written again after an upgrade): counted once.
        old.parent.mkdir()
        shutil.copyfile(second.file(key), old)
        third = DiskTier(root, 10**6)
        await asyncio.to_thread(third.load_index)
        assert third.used == second.used and list(root.rglob("*.entry")) == [third.file(key)]
        third.close()

    asyncio.run(write_then_read())


def test_results_reach_memory_when_asked_again(tmp_path: Path) -> None:
    """Fresh results go to disk only; a second request, even during the write, promotes."""
    import asyncio

    from pixelport.cache.entry import Entry
    from pixelport.cache.results import ResultCache

    async def scenario() -> None:
        cache = ResultCache(10**6, tmp_path / "r", 10**6, ttl=3600)
        old = Entry(b"o" * 100, {}, '"o"', "", "/a.jpg")
        cache.memory.put("k" * 40, old)
        entry = Entry(b"x" * 1000, {}, '"e"', "", "/a.jpg")
        cache.begin("k" * 40).store(entry)
        assert cache.get_memory("k" * 40) is None  # not in memory, nor the one it replaces
        assert await cache.get("k" * 40) is entry  # still being written: found all the same
        assert cache.get_memory("k" * 40) is entry  # and promoted
        other = Entry(b"y" * 1000, {}, '"f"', "", "/b.jpg")
        cache.begin("m" * 40).store(other)
        await cache.close()
        assert cache.memory.get("m" * 40) is None
        read = await cache.get("m" * 40)  # from the file
        assert read is not None and read.body == other.body
        assert cache.get_memory("m" * 40) is read
        alone = ResultCache(10**6, None, 0, ttl=3600)  # no disk tier: memory at once
        alone.begin("k" * 40).store(entry)
        assert alone.get_memory("k" * 40) is entry

    asyncio.run(scenario())


def test_render_threads_write_their_own_results(serve: Any, origin: OriginServer,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A rendered result's file is written in the render thread, not handed to the cache's
    writer thread; it is indexed by the time the answer is sent, and a failed render leaves
    no write announced."""
    import threading

    from pixelport.cache.disk import DiskTier

    writers: list[str] = []
    real = DiskTier._write

    def spying(self: DiskTier, key: str, entry: Any) -> int:
        writers.append(threading.current_thread().name)
        return real(self, key, entry)

    monkeypatch.setattr(DiskTier, "_write", spying)
    origin.files["/a.jpg"] = make_image(400, 300)
    origin.files["/notes.txt"] = b"plain text"
    pp = serve(config(origin, tmp_path / "cache"))
    disk = pp.app.results.disk
    assert pp.get("/tr:w-100/a.jpg").status == 200
    assert [name.startswith("pixelport-work") for name in writers] == [True]
    assert len(disk.index) == 1 and disk.file(next(iter(disk.index))).exists()
    assert pp.get("/notes.txt").status == 200  # not rendered: the writer thread writes it
    settle(pp)
    assert writers[1].startswith("pixelport-cache") and len(disk.index) == 2
    assert pp.get("/tr:w-100/notes.txt").status == 400  # not an image: nothing to write
    origin.files["/bad.jpg"] = b"\xff\xd8\xff\xe0" + b"\x00" * 600  # fails in the render
    assert pp.get("/tr:w-100/bad.jpg").status in (400, 404)
    assert disk.log.writing == 0 and len(writers) == 2
    assert server_timing(pp.get("/tr:w-100/a.jpg").headers["server-timing"])["cache"] == "hit"


@pytest.mark.parametrize("disk", [True, False])
def test_a_purge_during_the_fetch_discards_the_result(serve: Any, origin: OriginServer,
                                                     tmp_path: Path, disk: bool) -> None:
    # The file changes while its fetch is under way and a purge arrives: what that fetch
    # brings back is the old file, and must not be cached after the purge (with a disk tier,
    # or in memory alone).
    import threading

    origin.files["/slow.jpg"] = make_image(100, 100, colour=(255, 0, 0))
    origin.delays["/slow.jpg"] = 1.0
    settings = config(origin, tmp_path / "cache")
    if not disk:
        settings["cache"]["dir"] = ""  # results in memory only
    pp = serve(settings)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),
            "Content-Type": "application/json"}
    first: list[Any] = []
    asking = threading.Thread(target=lambda: first.append(pp.get("/tr:w-10/slow.jpg")))
    asking.start()
    time.sleep(0.5)  # the fetch is under way
    origin.files["/slow.jpg"] = make_image(100, 100, colour=(0, 0, 255))
    assert post(pp, "/v1/files/purge", {"url": f"{pp.url}/slow.jpg"}, auth)[0] == 201
    asking.join()
    assert first[0].status == 200  # the request in flight is answered all the same
    del origin.delays["/slow.jpg"]
    again = pp.get("/tr:w-10/slow.jpg")
    assert again.headers["server-timing"].endswith("cache;desc=miss")
    assert again.image().getpoint(5, 5)[2] > 200  # the new file


def test_a_purge_during_a_render_threads_write_is_not_undone(tmp_path: Path) -> None:
    import asyncio

    from pixelport.cache.disk import DiskTier
    from pixelport.cache.entry import Entry

    async def scenario() -> None:
        disk = DiskTier(tmp_path / "d", 10**6)
        entry = Entry(b"x" * 1000, {}, '"e"', "", "/a.jpg")
        other = Entry(b"y" * 1000, {}, '"f"', "", "/b.jpg")
        purged, kept = disk.begin("k" * 40), disk.begin("m" * 40)
        await disk.purge(lambda endpoint, path: path == "/a.jpg")  # while both render
        await asyncio.to_thread(disk.write_file, purged, entry)
        await asyncio.to_thread(disk.write_file, kept, other)
        assert disk.file("k" * 40).exists()  # written after the purge...
        await disk.finish(purged, entry)
        await disk.finish(kept, other)
        assert not disk.file("k" * 40).exists() and "k" * 40 not in disk.index  # ...deleted
        read = await disk.get("m" * 40)
        assert read is not None and read.body == other.body
        assert disk.log.writing == 0 and disk.log.purges == []
        failed = disk.begin("n" * 40)  # a render that fails
        await disk.purge(lambda endpoint, path: False)
        disk.abandon(failed)
        assert disk.log.writing == 0 and disk.log.purges == []
        # Writes overlapping without end (a busy server): purges go once no open write began
        # before them.
        older = disk.begin("o" * 40)
        await disk.purge(lambda endpoint, path: False)
        newer = disk.begin("p" * 40)
        await disk.purge(lambda endpoint, path: False)
        disk.abandon(older)
        assert [seq for seq, _ in disk.log.purges] == [disk.log.count - 1]  # newer's remains
        newest = disk.begin("q" * 40)
        disk.abandon(newer)
        assert disk.log.purges == [] and disk.log.writing == 1
        disk.abandon(newest)
        disk.close()

    asyncio.run(scenario())


def test_a_result_that_cannot_be_written_is_still_served(serve: Any, origin: OriginServer,
                                                         tmp_path: Path) -> None:
    origin.files["/a.jpg"] = make_image(400, 300)
    pp = serve(config(origin, tmp_path / "cache"))
    disk = pp.app.results.disk
    for folder in range(256):  # every fan-out folder is a file: no entry can be created
        disk.root.mkdir(parents=True, exist_ok=True)
        (disk.root / f"{folder:02x}").write_bytes(b"")
    response = pp.get("/tr:w-100/a.jpg")
    assert response.status == 200 and decode(response.body).width == 100
    assert disk.index == {} and disk.log.writing == 0
