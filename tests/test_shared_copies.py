"""Decoded copies shared between worker processes through files (two stores, one folder)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import pyvips

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.produce.mezzanine import Pending, Sharing, quick_key
from pixelport.produce.shared_copies import SharedCopies, name
from pixelport.transform import engine, registry
from tests.helpers import make_image
from tests.test_mezzanine import Counting


def _picture() -> Any:
    return pyvips.Image.black(64, 48, bands=3).draw_rect([250, 20, 20], 0, 0, 32, 24,
                                                         fill=True).cast("uchar")


def test_a_copy_built_by_one_worker_is_used_by_another(tmp_path: Path) -> None:
    one, two = Counting(2**26, shared=tmp_path), Counting(2**26, shared=tmp_path)
    data = b"original" * 10
    built = one.get(data, _picture, popular=True)
    assert built is not None and one.builds == 1
    found = two.get(data, _picture)  # its first request: no decode, the other's copy
    assert found is not None and two.builds == 0
    assert (found.width, found.height, found.bands) == (64, 48, 3)
    assert found(5, 5) == [250, 20, 20] and found(40, 40) == [0, 0, 0]
    assert found.interpretation == built.interpretation


def test_a_copy_is_used_only_for_the_bytes_it_was_made_from(tmp_path: Path) -> None:
    one, two = Counting(2**26, shared=tmp_path), Counting(2**26, shared=tmp_path)
    ends = b"h" * 70_000
    first, second = ends + b"1" + ends, ends + b"2" + ends  # the same quick key
    assert quick_key(first) == quick_key(second)
    one.get(first, _picture, popular=True)
    assert two.get(second, _picture) is None  # another file: decoded directly
    assert two.get(second, _picture) is not None and two.builds == 1  # then its own copy


def test_the_second_request_builds_whichever_worker_had_the_first(tmp_path: Path) -> None:
    one, two = Counting(2**26, shared=tmp_path), Counting(2**26, shared=tmp_path)
    data = b"page" * 100
    assert one.get(data, _picture) is None  # the first request anywhere: direct
    assert two.get(data, _picture) is not None and two.builds == 1  # the second builds
    assert one.get(data, _picture) is not None and one.builds == 0  # and shares


def test_another_worker_building_is_waited_for_not_repeated(tmp_path: Path) -> None:
    one, two = Counting(2**26, shared=tmp_path), Counting(2**26, shared=tmp_path)
    data = b"large" * 100
    started, release = threading.Event(), threading.Event()

    def slow() -> Any:
        started.set()
        release.wait(5)
        return _picture()

    builder = threading.Thread(target=one.get, args=(data, slow, True))
    builder.start()
    assert started.wait(5)
    with pytest.raises(Pending) as raised:
        two.get(data, _picture, popular=True, defer=True)

    async def come_back() -> Any:
        waiting = asyncio.ensure_future(raised.value.finished(timeout=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        await waiting
        return two.get(data, _picture, defer=True)

    assert asyncio.run(come_back()) is not None
    builder.join()
    assert (one.builds, two.builds) == (1, 0)


def test_a_claim_left_by_a_dead_worker_is_ignored(tmp_path: Path) -> None:
    data = b"orphan" * 100
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / (name(quick_key(data)) + ".claim")).write_text(str(dead.pid))
    store = Counting(2**26, shared=tmp_path)
    assert store.get(data, _picture, popular=True) is not None and store.builds == 1


def test_an_evicted_copy_is_deleted_and_a_full_folder_keeps_it_in_memory(
        tmp_path: Path) -> None:
    store = Counting(64 * 48 * 3 + 700, shared=tmp_path)  # room for one copy
    store.get(b"a" * 300, _picture, popular=True)
    assert len(list(tmp_path.glob("*.raw"))) == 1
    store.get(b"b" * 300, _picture, popular=True)  # evicts the first
    assert [p.name for p in tmp_path.glob("*.raw")] == [name(quick_key(b"b" * 300)) + ".raw"]
    shared = SharedCopies(tmp_path / "gone")
    (tmp_path / "gone").rmdir()  # cannot be written: the copy stays in this process only
    key = quick_key(b"c" * 300)
    assert shared.claim(key) is False
    image, published = shared.publish(key, _picture(), b"c" * 300)
    assert image(5, 5) == [250, 20, 20] and not published


def test_variants_from_another_workers_copy_match_direct_renders(tmp_path: Path) -> None:
    data = make_image(4000, 3000, ".jpg")
    one, two = Counting(2**28, shared=tmp_path), Counting(2**28, shared=tmp_path)
    limits, images = LimitsConfig(), ImagesConfig()
    engine.render(data, registry.parse("w-300"),
                  engine.RenderOptions("", images, limits, sharing=Sharing(one, popular=True)))
    assert one.builds == 1
    for tr in ["w-640,f-webp", "w-1000,h-200"]:
        ours = engine.render(data, registry.parse(tr),
                             engine.RenderOptions("", images, limits, sharing=Sharing(two)))
        plain = engine.render(data, registry.parse(tr), engine.RenderOptions("", images, limits))
        assert (ours.width, ours.height, ours.format) == (plain.width, plain.height, plain.format)
        a = pyvips.Image.new_from_buffer(ours.data, "")
        b = pyvips.Image.new_from_buffer(plain.data, "")
        assert abs(a.avg() - b.avg()) < 2
    assert two.builds == 0


def test_copies_of_a_worker_that_is_gone_are_deleted_when_a_worker_starts(
        tmp_path: Path) -> None:
    store = Counting(2**26, shared=tmp_path)
    store.get(b"kept" * 100, _picture, popular=True)
    meta = next(tmp_path.glob("*.json"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / "1-00000000-00000000"
    orphan.with_suffix(".raw").write_bytes(b"\0" * 12)
    orphan.with_suffix(".json").write_text(meta.read_text().replace(
        f'"owner": {os.getpid()}', f'"owner": {dead.pid}'))
    SharedCopies(tmp_path)  # a worker starting
    assert not orphan.with_suffix(".raw").exists() and not orphan.with_suffix(".json").exists()
    assert meta.exists()  # a live worker's copy stays


def test_a_claim_being_written_counts_as_taken(tmp_path: Path) -> None:
    shared = SharedCopies(tmp_path)
    key = quick_key(b"new" * 100)
    (tmp_path / (name(key) + ".claim")).write_text("")  # created, its pid not yet written
    assert shared.claimed(key) and not shared.claim(key)
