"""Real players play what pixelport serves: headless Chromium (Debian's), through hls.js for
the HLS ladder, dash.js for the DASH one, and a plain <video> for MP4 and WebM, each past one
second of playback with no error. The page comes from another origin, as on a real site."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import OriginServer
from tests.video_media import make_clip

pytestmark = pytest.mark.integration
PLAYERS = Path(__file__).parent / "node" / "node_modules"
PAGE = """<!doctype html><html><body>
<video id="v" muted autoplay playsinline width="320"></video>
<script src="/hls.min.js"></script><script src="/dash.all.min.js"></script>
<script>
window.failures = [];
const video = document.getElementById("v");
video.addEventListener("error",
  () => failures.push("video: " + (video.error && video.error.message)));
window.play = (kind, url) => {
  if (kind === "hls") {
    const hls = new Hls();
    hls.on(Hls.Events.ERROR,
      (_, data) => { if (data.fatal) failures.push("hls: " + data.details); });
    hls.loadSource(url); hls.attachMedia(video);
  } else if (kind === "dash") {
    const player = dashjs.MediaPlayer().create();
    player.on(dashjs.MediaPlayer.events.ERROR,
      (e) => failures.push("dash: " + JSON.stringify(e.error)));
    player.initialize(video, url, true);
  } else {
    video.src = url;
  }
  video.play().catch((e) => failures.push("play: " + e));
};
</script></body></html>"""


def chromium() -> str:
    """Debian's Chromium (`make setup` installs it as root; nothing is downloaded here)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: run `make setup` as root, or apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium(),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site() -> Iterator[OriginServer]:
    """The page and the players, from an origin of their own."""
    server = OriginServer().start()
    server.files["/player.html"] = PAGE.encode()
    server.extra_headers["/player.html"] = {"Content-Type": "text/html"}
    server.files["/hls.min.js"] = (PLAYERS / "hls.js" / "dist" / "hls.min.js").read_bytes()
    server.files["/dash.all.min.js"] = (
        PLAYERS / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js").read_bytes()
    for name in ("/hls.min.js", "/dash.all.min.js"):
        server.extra_headers[name] = {"Content-Type": "text/javascript"}
    yield server
    server.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("playback")
    make_clip(root / "clip.mp4", width=640, height=360, seconds=6)
    return root


def ready(server: Any, target: str) -> None:
    """Ask until the stream's manifest is made (the first answers are 202)."""
    deadline = time.monotonic() + 120
    while (answer := server.get(target)).status == 202:
        assert time.monotonic() < deadline, "the ladder was never made"
        time.sleep(0.25)
    assert answer.status == 200, answer.ik_error


def plays(browser: Any, site: OriginServer, kind: str, url: str) -> None:
    """Load the page, play `url`, and wait for more than a second of playback."""
    page = browser.new_page()
    try:
        page.goto(f"{site.url}/player.html")
        page.evaluate("([kind, url]) => play(kind, url)", [kind, url])
        page.wait_for_function("document.getElementById('v').currentTime > 1.2 || "
                               "window.failures.length > 0", timeout=60_000)
        assert page.evaluate("window.failures") == []
        assert page.evaluate("document.getElementById('v').videoWidth") > 0
    finally:
        page.close()


@pytest.mark.parametrize(("kind", "suffix"), [("hls", "ik-master.m3u8"),
                                              ("dash", "ik-master.mpd")])
def test_adaptive_streams_play(serve: Any, videos: Path, browser: Any, site: OriginServer,
                               kind: str, suffix: str) -> None:
    server = serve({"library": {"dir": str(videos)}})
    target = f"/clip.mp4/{suffix}?tr=sr-240_360_480_720"
    ready(server, target)
    plays(browser, site, kind, server.url + target)


@pytest.mark.parametrize("chain", ["w-320", "f-webm,w-320"])
def test_files_play_in_a_video_element(serve: Any, videos: Path, browser: Any,
                                       site: OriginServer, chain: str) -> None:
    server = serve({"library": {"dir": str(videos)}})
    target = f"/clip.mp4?tr={chain}"
    assert server.get(target).status == 200  # made (within the wait), then played
    plays(browser, site, "file", server.url + target)
