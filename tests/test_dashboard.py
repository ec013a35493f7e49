"""The dashboard in Debian's Chromium (playwright, executable_path): what a person does, with
no console errors, a screenshot of each page (test-results/dashboard/); and its guards (log-in,
CSRF, slowed-down failures, cookie flags) through plain HTTP."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixelport.dashboard.app import HERE
from pixelport.dashboard.guard import LoginThrottle
from tests.helpers import OriginServer, make_image
from tests.library_support import PRIVATE_KEY, library_config
from tests.test_video_playback import chromium

pytestmark = pytest.mark.integration
SHOTS = Path(__file__).resolve().parent.parent / "test-results" / "dashboard"
HTMX_SHA256 = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"


@pytest.fixture
def board(serve: Any, tmp_path: Path, origin: OriginServer) -> Any:
    root = tmp_path / "library"
    root.mkdir()
    return serve(library_config(root, f"sqlite:///{tmp_path / 'library.db'}",
                                security={"secrets_key": "a dashboard test key, long enough"}))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


def test_the_vendored_htmx_is_the_recorded_one() -> None:
    data = (HERE / "static" / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert HTMX_SHA256 in (HERE / "static" / "README.md").read_text()


@pytest.mark.parametrize("width", [1280, 390])
def test_add_an_origin_and_an_endpoint_and_see_an_image(board: Any, origin: OriginServer,
                                                        browser: Any, width: int) -> None:
    origin.files["/shop/item.jpg"] = make_image(800, 600)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(f"{board.url}/dashboard")
    assert page.url.endswith("/dashboard/login")  # not signed in yet
    page.screenshot(path=str(SHOTS / f"login-{width}.png"), full_page=True)
    page.get_by_label("Private API key").fill("wrong key")
    page.get_by_role("button", name="Log in").click()
    assert "not one of this server's private keys" in page.content()
    assert problems == ["Failed to load resource: the server responded with a status of 401 "
                        "(Unauthorized)"]  # the wrong key's answer, and nothing else
    problems.clear()
    page.get_by_label("Private API key").fill(PRIVATE_KEY)
    page.keyboard.press("Enter")  # by keyboard
    page.wait_for_url(f"{board.url}/dashboard")
    page.screenshot(path=str(SHOTS / f"overview-{width}.png"), full_page=True)

    page.get_by_role("link", name="External storage").click()
    page.get_by_label("Type").select_option("WEB_FOLDER")
    page.get_by_label("Name", exact=True).fill("Shop web server")
    page.get_by_label(re.compile("^Base URL")).fill(f"http://127.0.0.1:{origin.port}/shop")
    page.get_by_role("button", name="Add origin").click()
    page.wait_for_url(f"{board.url}/dashboard/origins")
    row = page.get_by_role("row").filter(has_text="Shop web server")
    row.get_by_placeholder("path/to/file.jpg").fill("item.jpg")
    row.get_by_role("button", name="Test this origin").click()  # htmx: the row's result
    page.get_by_text("OK: item.jpg").wait_for()
    page.screenshot(path=str(SHOTS / f"origins-{width}.png"), full_page=True)

    page.get_by_role("link", name="URL endpoints").click()
    page.get_by_label(re.compile("^URL prefix")).fill(f"shop{width}")
    page.get_by_label("Description").fill("the shop's images")
    page.get_by_label(re.compile("^Shop web server")).check()
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_url(f"{board.url}/dashboard/endpoints")
    assert f"/shop{width}" in page.content()
    page.screenshot(path=str(SHOTS / f"endpoints-{width}.png"), full_page=True)

    # The media library: two files uploaded from the page, then in the grid with thumbnails.
    page.get_by_role("link", name="Media library").click()
    page.get_by_label("Files", exact=True).set_input_files([
        {"name": f"up-{width}-a.jpg", "mimeType": "image/jpeg", "buffer": make_image(320, 240)},
        {"name": f"up-{width}-b.png", "mimeType": "image/png",
         "buffer": make_image(200, 100, ".png")}])
    with page.expect_navigation():  # reloaded once both are in
        page.get_by_role("button", name="Upload").click()
    grid = page.get_by_role("list", name="Folders and files in /")
    for name in (f"up-{width}-a.jpg", f"up-{width}-b.png"):
        tile = grid.get_by_role("listitem").filter(has_text=name)
        image = tile.get_by_role("img", name=name)
        image.wait_for()
        page.wait_for_function("(i) => i.complete && i.naturalWidth > 0",
                               arg=image.element_handle())
    page.screenshot(path=str(SHOTS / f"library-{width}.png"), full_page=True)

    # The URL builder: the file through the new endpoint at w-300, previewed, then purged.
    page.get_by_role("link", name="URL builder").click()
    page.get_by_label("URL endpoint").select_option(f"shop{width}")
    page.get_by_label("File path").fill("item.jpg")
    page.get_by_label("Width (w)").fill("300")
    preview = page.locator("#preview")
    page.wait_for_function("() => { const u = document.getElementById('built-url');"
                           " const i = document.getElementById('preview');"
                           " return u && u.value.endsWith('w-300') && i && i.complete"
                           " && i.naturalWidth > 0; }")
    assert preview.evaluate("i => i.naturalWidth") == 300
    built = page.get_by_label("URL", exact=True).input_value()
    assert built == f"{board.url}/shop{width}/item.jpg?tr=w-300"
    page.screenshot(path=str(SHOTS / f"builder-{width}.png"), full_page=True)
    page.get_by_role("button", name="Purge this URL").click()
    page.wait_for_function("() => document.getElementById('purged')"
                           " && document.getElementById('purged').textContent.trim()")
    assert page.locator("#purged").inner_text().startswith(f"Purged {built}"), \
        page.locator("#purged").inner_text()
    page.get_by_label("Signed URL", exact=True).check()
    page.get_by_label(re.compile("^Expires in seconds")).fill("600")
    page.wait_for_function("() => document.getElementById('built-url')"
                           " && document.getElementById('built-url').value.includes('ik-s=')")
    signed = page.get_by_label("URL", exact=True).input_value()
    assert "ik-t=" in signed and httpx.get(signed).status_code == 200
    page.get_by_role("link", name="Purge").click()
    page.get_by_label(re.compile("^URL, or a prefix")).fill(f"{board.url}/shop{width}/item.jpg*")
    page.get_by_role("button", name="Purge", exact=True).click()
    page.wait_for_load_state()
    status = page.get_by_role("status").inner_text()
    assert status.startswith("Purged"), status
    page.screenshot(path=str(SHOTS / f"purge-{width}.png"), full_page=True)
    assert problems == [], problems
    page.close()


def test_guards(board: Any) -> None:
    # Every page but the log-in one sends a visitor there.
    answer = httpx.get(f"{board.url}/dashboard/origins")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login"
    with httpx.Client(base_url=board.url) as visitor:
        signed = visitor.post("/dashboard/login", data={"key": PRIVATE_KEY})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = visitor.get("/dashboard/origins")
        assert page.status_code == 200
        # A form without the session's CSRF token is refused, and changes nothing.
        forged = visitor.post("/dashboard/origins", data={"type": "WEB_FOLDER",
                                                          "name": "forged origin",
                                                          "baseUrl": "http://example.com"})
        assert forged.status_code == 403
        assert "forged origin" not in visitor.get("/dashboard/origins").text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        bad = visitor.post("/dashboard/origins", data={"csrf": token.group(1),
                                                       "type": "WEB_FOLDER", "name": "x",
                                                       "baseUrl": "ftp://nope"})
        assert bad.status_code == 400 and "base_url" in bad.text  # the error, on the page
        made = visitor.post("/dashboard/origins", data={"csrf": token.group(1),
                                                        "type": "WEB_FOLDER", "name": "to go",
                                                        "baseUrl": "http://example.com"})
        assert made.status_code == 303 and "to go" in visitor.get("/dashboard/origins").text
        origin_id = re.search(r'action="/dashboard/origins/([0-9a-f]+)/delete"',
                              visitor.get("/dashboard/origins").text)
        assert origin_id is not None
        gone = visitor.post(f"/dashboard/origins/{origin_id.group(1)}/delete",
                            data={"csrf": token.group(1)})
        assert gone.status_code == 303 and "to go" not in visitor.get("/dashboard/origins").text


def test_failed_log_ins_are_slowed_down() -> None:
    throttle = LoginThrottle()
    assert throttle.delay("a") == 0
    for expected in (0.5, 1, 2, 4, 8, 8):
        throttle.failed("a")
        assert throttle.delay("a") == expected
    assert throttle.delay("b") == 0
    throttle.succeeded("a")
    assert throttle.delay("a") == 0
