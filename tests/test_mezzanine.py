"""Decoded copies of large originals shared between the variants of a responsive page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import pyvips

from pixelport.config import ImagesConfig, LimitsConfig
from pixelport.produce.mezzanine import Mezzanines, Sharing
from pixelport.transform import engine, jpeg_decode, registry
from tests.helpers import make_image


class Counting(Mezzanines):
    """A store that counts its decodes (`build()` calls)."""

    def __init__(self, capacity: int, ttl: float = 30.0, shared: Path | None = None) -> None:
        super().__init__(capacity, ttl, shared)
        self.builds = 0

    def get(self, data: bytes, build: Any, popular: bool = False, defer: bool = False) -> Any:
        def counted() -> Any:
            self.builds += 1
            return build()
        return super().get(data, counted, popular, defer)


def same(found: Any, image: Any) -> bool:
    """Whether the store gave (a copy in memory of) `image`."""
    return found is not None and (found.width, found.height, found.bands, found.avg()) == (
        image.width, image.height, image.bands, image.avg())


def test_second_request_builds_and_later_ones_share() -> None:
    store = Counting(64 * 2**20)
    data = b"original"
    image = pyvips.Image.black(10, 10)
    assert store.get(data, lambda: image) is None          # first: go direct
    assert same(store.get(data, lambda: image), image)     # second: build
    assert same(store.get(data, lambda: image), image)     # third: shared
    assert store.builds == 1
    assert store.get(b"other", lambda: image) is None      # another original: direct


def test_popular_originals_build_on_the_first_request() -> None:
    store = Counting(64 * 2**20)
    image = pyvips.Image.black(10, 10)
    assert same(store.get(b"wanted", lambda: image, popular=True), image)
    assert same(store.get(b"wanted", lambda: image), image) and store.builds == 1


def test_a_resize_of_the_copy_serves_one_more_request_of_its_size() -> None:
    store = Counting(64 * 2**20)
    data = b"original"
    store.get(data, lambda: pyvips.Image.black(100, 100), popular=True)
    made: list[Any] = []

    def make() -> Any:
        made.append(pyvips.Image.black(10, 10).copy_memory())
        return made[-1]

    first = store.resized(data, (10, 10, "none"), make)
    assert store.resized(data, (10, 10, "none"), make) is first  # the other format's request
    assert store.resized(data, (10, 10, "none"), make) is not first and len(made) == 2
    store.resized(data, (20, 10, "none"), make)
    assert len(made) == 3
    # Without a shared copy of `data`, nothing is held.
    store.resized(b"unknown", (10, 10, "none"), make)
    assert store.resized(b"unknown", (10, 10, "none"), make) is made[-1] and len(made) == 5


def test_a_copy_serves_only_the_bytes_it_was_made_from() -> None:
    store = Counting(64 * 2**20)
    image = pyvips.Image.black(10, 10)
    ends = b"h" * 70_000
    one, two = ends + b"1" + ends, ends + b"2" + ends  # same length, same first/last 64 KiB
    store.get(one, lambda: image)
    assert same(store.get(one, lambda: image), image)
    assert store.get(two, lambda: None) is None  # not `one`'s copy, though its quick key matches
    assert same(store.get(bytes(bytearray(one)), lambda: None), image)  # equal bytes, another


def test_expiry_and_capacity() -> None:
    store = Counting(64 * 2**20, ttl=0.05)
    image = pyvips.Image.black(10, 10)
    store.get(b"a", lambda: image)
    time.sleep(0.1)
    assert store.get(b"a", lambda: image) is None  # seen too long ago: direct again
    tiny = Counting(10)
    tiny.get(b"b", lambda: image)
    assert same(tiny.get(b"b", lambda: image), image) and tiny.used == 0  # too big to keep
    assert Counting(0).get(b"c", lambda: image) is None


def test_variants_from_the_shared_copy_match_direct_renders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real, shrinks = jpeg_decode.shrunk, []

    def recorded(data: bytes, shrink: int, orientation: int) -> object:
        shrinks.append(shrink)
        return real(data, shrink, orientation)

    monkeypatch.setattr(jpeg_decode, "shrunk", recorded)
    data = make_image(4000, 3000, ".jpg")
    store = Counting(256 * 2**20)
    shared = engine.RenderOptions("", ImagesConfig(), LimitsConfig(), sharing=Sharing(store))
    direct = engine.RenderOptions("", ImagesConfig(), LimitsConfig())
    for tr in ["w-300", "w-640,f-webp", "w-1000,h-200", "w-1600,f-png"]:
        steps = registry.parse(tr)
        ours = engine.render(data, steps, shared)
        plain = engine.render(data, steps, direct)
        assert (ours.width, ours.height, ours.format) == (plain.width, plain.height, plain.format)
        a = pyvips.Image.new_from_buffer(ours.data, "")
        b = pyvips.Image.new_from_buffer(plain.data, "")
        assert abs(a.avg() - b.avg()) < 2
    # Decoded by libjpeg-turbo: w-300 twice at 1/8 (the first variant goes direct), then the
    # shared copy at 1/2 (2000x1500) for w-640, which the direct render decodes at 1/4.
    assert store.builds == 1 and shrinks[:4] == [8, 8, 2, 4]
    # Larger than the copy (2000x1500): rendered directly, never from the copy.
    big = engine.render(data, registry.parse("w-2400"), shared)
    assert big.width == 2400 and store.builds == 1


def test_with_defer_a_request_does_not_block_its_thread_while_another_builds() -> None:
    import asyncio
    import threading

    import pytest

    from pixelport.produce.mezzanine import Pending

    store = Counting(64 * 2**20)
    image = pyvips.Image.black(10, 10)
    started, release = threading.Event(), threading.Event()

    def slow_build() -> Any:
        started.set()
        release.wait(5)
        return image

    builder = threading.Thread(target=store.get, args=(b"big", slow_build, True))
    builder.start()
    assert started.wait(5)
    with pytest.raises(Pending) as raised:
        store.get(b"big", lambda: image, defer=True)  # at once, not after the build

    async def come_back() -> Any:
        waiting = asyncio.ensure_future(raised.value.finished(timeout=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # still being built
        release.set()
        await waiting
        return store.get(b"big", lambda: None, defer=True)

    assert same(asyncio.run(come_back()), image) and store.builds == 1
    builder.join()
    # Once built, a callback added late runs at once.
    ran: list[bool] = []
    raised.value.build.add_done_callback(lambda _: ran.append(True))
    assert ran == [True]


def test_a_resize_being_made_is_waited_for_not_made_twice() -> None:
    import threading

    import pytest

    from pixelport.produce.mezzanine import Pending

    store = Counting(64 * 2**20)
    data = b"original"
    store.get(data, lambda: pyvips.Image.black(100, 100), popular=True)
    started, release = threading.Event(), threading.Event()
    made: list[Any] = []

    def slow() -> Any:
        started.set()
        release.wait(5)
        made.append(pyvips.Image.black(10, 10).copy_memory())
        return made[-1]

    results: list[Any] = []
    maker = threading.Thread(target=lambda: results.append(
        store.resized(data, (10, 10, "none"), slow)))
    maker.start()
    assert started.wait(5)
    with pytest.raises(Pending):  # the other format's request, on a thread it need not hold
        store.resized(data, (10, 10, "none"), slow, defer=True)
    waiter = threading.Thread(target=lambda: results.append(
        store.resized(data, (10, 10, "none"), slow)))
    waiter.start()
    release.set()
    maker.join()
    waiter.join()
    assert len(made) == 1 and results == [made[0], made[0]]
    assert not store.making and not store.sized


def test_a_resize_is_held_in_a_store_full_of_older_copies() -> None:
    copy_cost = 100 * 100 * 1 + len(b"original-0")
    store = Counting(3 * copy_cost)
    for n in range(3):
        store.get(b"original-%d" % n, lambda: pyvips.Image.black(100, 100), popular=True)
    assert store.used == 3 * copy_cost
    data = b"original-2"
    made: list[Any] = []

    def make() -> Any:
        made.append(pyvips.Image.black(50, 50).copy_memory())
        return made[-1]

    first = store.resized(data, (50, 50, "none"), make)
    assert store.resized(data, (50, 50, "none"), make) is first and len(made) == 1
    # The least recently used copy made room; the one in use stayed.
    assert store.get(b"original-2", lambda: None) is not None
    assert store.get(b"original-0", lambda: None, popular=True) is None
    assert store.used <= store.capacity


def test_the_shared_copy_of_a_turned_photo_is_upright() -> None:
    image = pyvips.Image.black(4000, 3000, bands=3).cast("uchar").copy(interpretation="srgb")
    image = image.draw_rect([255, 255, 255], 0, 0, 400, 300, fill=True)  # a white top-left
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)  # shown turned 90° clockwise
    data = bytes(image.jpegsave_buffer(keep="exif"))
    store = Counting(256 * 2**20)
    shared = engine.RenderOptions("", ImagesConfig(), LimitsConfig(),
                                  sharing=Sharing(store, popular=True))
    ours = engine.render(data, registry.parse("w-300,f-png"), shared)
    plain = engine.render(data, registry.parse("w-300,f-png"),
                          engine.RenderOptions("", ImagesConfig(), LimitsConfig()))
    assert store.builds == 1 and (ours.width, ours.height) == (plain.width, plain.height) == (
        300, 400)
    # The copy itself is upright (thumbnail_image would also turn a copy left lying).
    [(copy, *_)] = store.items.values()
    assert (copy.width, copy.height) == (1500, 2000)
    a = pyvips.Image.new_from_buffer(ours.data, "")
    # Turned clockwise, the white corner is now top right.
    assert a.crop(270, 0, 30, 30).avg() > 200 and a.crop(0, 0, 30, 30).avg() < 50


def test_resizes_held_from_a_copy_go_with_it() -> None:
    from pixelport.produce.mezzanine import quick_key

    copy_cost = 100 * 100 * 1 + len(b"original-0")
    store = Counting(2 * copy_cost + 50 * 50)
    store.get(b"original-0", lambda: pyvips.Image.black(100, 100), popular=True)
    store.resized(b"original-0", (50, 50, "none"), lambda: pyvips.Image.black(50, 50))
    assert len(store.sized) == 1
    for n in (1, 2):  # two more copies: the first one, least recently used, is evicted
        store.get(b"original-%d" % n, lambda: pyvips.Image.black(100, 100), popular=True)
    assert quick_key(b"original-0") not in store.items
    # Its resize, which also holds its original's bytes, is gone with it.
    assert not store.sized
    assert store.used == sum(item[2] for item in store.items.values())


class Deferring:
    """A pool whose jobs meet another job's build `pending` times before they can render."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.defers: list[bool] = []

    async def run(self, fn: Any, data: bytes, steps: Any, options: engine.RenderOptions,
                  finish: Any) -> Any:
        from concurrent.futures import Future

        from pixelport.produce.mezzanine import Pending

        assert options.sharing is not None
        self.defers.append(options.sharing.defer)
        if len(self.defers) <= self.pending and options.sharing.defer:
            build: Future[None] = Future()
            build.set_result(None)  # already made: the request comes straight back
            raise Pending(build)
        return finish("rendered", "digest", 1.0)


@pytest.mark.parametrize("pending", [0, 1, 2, 3, 5])
def test_a_request_back_from_waiting_waits_on_the_loop_again(pending: int) -> None:
    """srcset: back from the copy's build, a request may find the other format's resize in
    the making; it waits for that on the event loop too, and only blocks its thread after
    DEFERRALS waits."""
    import asyncio
    from dataclasses import replace

    from pixelport.produce.image import DEFERRALS, render_deferring

    pool = Deferring(pending)
    sharing = Sharing(Mezzanines(2**20))
    options = engine.RenderOptions("", ImagesConfig(), LimitsConfig(),
                                   sharing=replace(sharing, defer=True))
    result = asyncio.run(render_deferring(
        pool, b"", [], options, sharing, lambda *made: made))  # type: ignore[arg-type]
    assert result == ("rendered", "digest", 1.0)
    if pending < DEFERRALS:
        assert pool.defers == [True] * (pending + 1)
    else:
        assert pool.defers == [True] * DEFERRALS + [False]
