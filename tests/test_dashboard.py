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
SECRETS_KEY = "a dashboard test key, long enough"


@pytest.fixture
def board(serve: Any, tmp_path: Path, origin: OriginServer) -> Any:
    root = tmp_path / "library"
    root.mkdir()
    return serve(library_config(root, f"sqlite:///{tmp_path / 'library.db'}",
                                security={"secrets_key": SECRETS_KEY},
                                transformations={"cfg_small": "w-50"}))


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


# --- the pages of the second round: edits, a file's page, named transformations, figures ----

def signed_in(browser: Any, board: Any) -> tuple[Any, list[str]]:
    """A 1280-px page logged in by keyboard, and the list its console errors go to."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{board.url}/dashboard/login")
    page.get_by_label("Private API key").fill(PRIVATE_KEY)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{board.url}/dashboard")
    return page, problems


def shoot(page: Any, name: str) -> None:
    """Screenshots of the page at 1280 and 390 px wide; nothing wider than the phone's."""
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, name
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def api(board: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The management API, with the private key."""
    return httpx.request(method, f"{board.url}{path}", auth=(PRIVATE_KEY, ""), timeout=30,
                         **kwargs)


def width_of(data: bytes) -> int:
    """An encoded image's width."""
    import pyvips

    return int(pyvips.Image.new_from_buffer(data, "").width)


def test_edit_an_origin_and_an_endpoint(board: Any, origin: OriginServer,
                                        browser: Any) -> None:
    origin.files["/new/item.jpg"] = make_image(640, 480)
    web = api(board, "POST", "/v1/accounts/origins", json={
        "type": "WEB_FOLDER", "name": "Web", "baseUrl": f"http://127.0.0.1:{origin.port}/old"})
    bucket = api(board, "POST", "/v1/accounts/origins", json={
        "type": "S3_COMPATIBLE", "name": "Bucket", "bucket": "first",
        "endpoint": "http://127.0.0.1:9", "accessKey": "AKIA-SECRET-ACCESS",
        "secretKey": "very-secret-key-value"})
    assert web.status_code == bucket.status_code == 201, (web.text, bucket.text)
    endpoint = api(board, "POST", "/v1/accounts/url-endpoints", json={
        "description": "before", "urlPrefix": "ed", "origins": [bucket.json()["id"]]})
    assert endpoint.status_code == 201, endpoint.text
    assert board.get("/ed/item.jpg").status == 404
    page, problems = signed_in(browser, board)

    # The bucket's edit form: its fields, never its secrets; secrets left blank are kept.
    page.get_by_role("link", name="External storage").click()
    page.get_by_role("link", name="Edit Bucket").click()
    assert page.get_by_label(re.compile("^Bucket")).input_value() == "first"
    assert page.get_by_label(re.compile("^Secret key")).input_value() == ""
    html = page.content()
    assert "very-secret-key-value" not in html and "AKIA-SECRET-ACCESS" not in html
    shoot(page, "origin-edit")
    page.get_by_label(re.compile("^Bucket")).fill("second")
    page.get_by_role("button", name="Save origin").click()
    page.wait_for_url(f"{board.url}/dashboard/origins")
    shown = api(board, "GET", f"/v1/accounts/origins/{bucket.json()['id']}").json()
    assert shown["bucket"] == "second" and "secretKey" not in shown
    import sqlite3

    from pixelport.security.secrets import SecretBox
    with sqlite3.connect(board.app.config.database.url.split(":///", 1)[1]) as db:
        sealed = db.execute("SELECT secrets FROM account_origins WHERE id = ?",
                            (bucket.json()["id"],)).fetchone()[0]
    assert SecretBox(SECRETS_KEY).open(sealed) == {"accessKey": "AKIA-SECRET-ACCESS",
                                                   "secretKey": "very-secret-key-value"}

    # The web folder moves to /new, by keyboard.
    page.get_by_role("link", name="Edit Web").click()
    base = page.get_by_label(re.compile("^Base URL"))
    base.fill(f"http://127.0.0.1:{origin.port}/new")
    base.press("Enter")
    page.wait_for_url(f"{board.url}/dashboard/origins")

    # The endpoint: description, origins in a new order, a rewriter, a domain.
    page.get_by_role("link", name="URL endpoints").click()
    page.get_by_role("link", name="Edit /ed").click()
    assert page.get_by_label("Description").input_value() == "before"
    page.get_by_label("Description").fill("after")
    page.get_by_label("Origin 1", exact=True).select_option(label="Web (WEB_FOLDER)")
    page.get_by_label("Origin 2", exact=True).select_option(label="Bucket (S3_COMPATIBLE)")
    page.get_by_label("URL rewriter").select_option("IMGIX")
    page.get_by_label(re.compile("^Custom domains")).fill("img.example.test")
    shoot(page, "endpoint-edit")
    page.get_by_role("button", name="Save endpoint").click()
    page.wait_for_url(f"{board.url}/dashboard/endpoints")
    assert "after" in page.get_by_role("row").filter(has_text="/ed").inner_text()
    stored = api(board, "GET", f"/v1/accounts/url-endpoints/{endpoint.json()['id']}").json()
    assert stored["description"] == "after"
    assert stored["origins"] == [web.json()["id"], bucket.json()["id"]]
    assert stored["urlRewriter"]["type"] == "IMGIX"
    assert stored["domains"] == ["img.example.test"]
    # Applied to delivery: the file comes from the moved web folder, also on the domain.
    served = board.get("/ed/item.jpg?w=100")
    assert served.status == 200 and width_of(served.body) == 100
    assert board.get("/item.jpg", headers={"Host": "img.example.test"}).status == 200

    # A refused change is a 400 with the reason, on the form.
    page.get_by_role("link", name="Edit /ed").click()
    page.get_by_label(re.compile("^URL prefix")).fill("dashboard")
    page.get_by_role("button", name="Save endpoint").click()
    assert "reserved" in page.get_by_role("alert").inner_text()
    problems.remove("Failed to load resource: the server responded with a status of 400 "
                    "(Bad Request)")
    assert problems == [], problems
    page.close()


def test_a_files_page(board: Any, browser: Any) -> None:
    def upload(data: bytes) -> dict[str, Any]:
        answer = api(board, "POST", "/api/v1/files/upload", files={"file": ("pic.jpg", data)},
                     data={"fileName": "pic.jpg", "useUniqueFileName": "false",
                           "folder": "/album"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first = upload(make_image(400, 300))
    second = upload(make_image(200, 100))
    assert first["fileId"] == second["fileId"]
    assert width_of(board.get("/album/pic.jpg").body) == 200  # cached now
    page, problems = signed_in(browser, board)

    page.get_by_role("link", name="Media library").click()
    page.get_by_role("link", name="album").click()
    page.get_by_role("link", name="pic.jpg").click()
    page.wait_for_url(re.compile(r".*/dashboard/library/files/\w+$"))
    details = page.get_by_role("definition")
    facts = page.locator(".details").inner_text()
    for fact in ("/album/pic.jpg", "image", "200 \u00d7 100 px", "Version 2", "public"):
        assert fact in facts, facts
    assert details.count() >= 10
    thumb = page.get_by_role("img", name="Thumbnail of pic.jpg")
    page.wait_for_function("(i) => i.complete && i.naturalWidth > 0",
                           arg=thumb.element_handle())
    shoot(page, "file")

    # Tags, as the API's PATCH sets them.
    page.get_by_label(re.compile("^Tags")).fill("red, summer")
    page.get_by_role("button", name="Save tags").click()
    page.wait_for_load_state()
    assert page.locator("#tags").inner_text() == "red, summer"
    file_id = first["fileId"]
    assert api(board, "GET", f"/v1/files/{file_id}/details").json()["tags"] == ["red",
                                                                                "summer"]

    # Restore version 1: the page, the API and delivery (its cached result purged) agree.
    versions = page.get_by_role("table", name="Versions")
    versions.get_by_role("button", name="Restore Version 1").click()
    page.wait_for_load_state()
    assert "400 \u00d7 300 px" in page.locator(".details").inner_text()
    assert api(board, "GET", f"/v1/files/{file_id}/details").json()["width"] == 400
    assert width_of(board.get("/album/pic.jpg").body) == 400

    # Private: the plain URL needs a signature now; the page's link is signed.
    page.get_by_label(re.compile("^Private file")).check()
    page.get_by_role("button", name="Save privacy").click()
    page.wait_for_load_state()
    assert page.locator("#privacy").inner_text() == "private"
    assert api(board, "GET", f"/v1/files/{file_id}/details").json()["isPrivateFile"] is True
    denied = board.get("/album/pic.jpg")
    assert denied.status == 401 and denied.headers["ik-error"].startswith("ESIGNATURE")
    link = page.locator("#file-url").get_attribute("href")
    assert "ik-s=" in link and httpx.get(link).status_code == 200

    # Delete, confirmed by ticking the box (the browser refuses the form without it).
    page.get_by_role("button", name="Delete this file").click()
    assert page.url.endswith(f"/files/{file_id}")  # not sent: the box is required
    page.get_by_label(re.compile("^Yes, delete pic.jpg")).check()
    page.get_by_role("button", name="Delete this file").click()
    page.wait_for_url(f"{board.url}/dashboard/library?path=/album")
    assert api(board, "GET", f"/v1/files/{file_id}/details").status_code == 404
    assert board.get("/album/pic.jpg").status == 404

    # Folders: make one inside /album, then delete /album with it.
    page.get_by_label(re.compile("^New folder in")).fill("inner")
    page.get_by_role("button", name="Create folder").click()
    page.wait_for_url(f"{board.url}/dashboard/library?path=/album")
    page.get_by_role("link", name="inner").wait_for()
    listed = api(board, "GET", "/v1/files", params={"path": "/album"}).json()
    assert [f["name"] for f in listed if f["type"] == "folder"] == ["inner"]
    shoot(page, "library-folder")
    page.get_by_label(re.compile("^Yes, delete /album")).check()
    page.get_by_role("button", name="Delete this folder").click()
    page.wait_for_url(f"{board.url}/dashboard/library?path=/")
    assert all(f["name"] != "album" for f in api(board, "GET", "/v1/files").json())
    assert problems == [], problems
    page.close()


def test_named_transformations(board: Any, browser: Any) -> None:
    api(board, "POST", "/api/v1/files/upload", files={"file": ("n.jpg", make_image(500, 400))},
        data={"fileName": "n.jpg", "useUniqueFileName": "false"}).raise_for_status()
    page, problems = signed_in(browser, board)
    page.get_by_role("link", name="Named transformations").click()
    configured = page.get_by_role("row").filter(has_text="cfg_small")
    assert "config file" in configured.inner_text()  # read-only
    page.get_by_role("textbox", name=re.compile("^Name")).fill("dash_small")
    page.get_by_role("textbox", name=re.compile("^Transformation")).fill("w-120")
    page.get_by_label("Description").fill("for the test")
    page.get_by_role("button", name="Add named transformation").click()
    page.wait_for_url(f"{board.url}/dashboard/named")
    shoot(page, "named")
    assert width_of(board.get("/tr:n-dash_small/n.jpg").body) == 120
    listed = api(board, "GET", "/v1/named-transformations").json()
    assert {"dash_small", "cfg_small"} <= {n["name"] for n in listed}

    page.get_by_role("link", name="Edit dash_small").click()
    page.get_by_role("textbox", name="Transformation").fill("w-80")
    shoot(page, "named-edit")
    page.get_by_role("button", name="Save named transformation").click()
    page.wait_for_url(f"{board.url}/dashboard/named")
    assert width_of(board.get("/tr:n-dash_small/n.jpg").body) == 80

    # A bad transformation is refused with the reason.
    page.get_by_role("textbox", name=re.compile("^Name")).fill("broken")
    page.get_by_role("textbox", name=re.compile("^Transformation")).fill("w-nope")
    page.get_by_role("button", name="Add named transformation").click()
    assert "not valid" in page.get_by_role("alert").inner_text()
    problems.remove("Failed to load resource: the server responded with a status of 400 "
                    "(Bad Request)")

    page.get_by_role("button", name="Delete dash_small").click()
    page.wait_for_url(f"{board.url}/dashboard/named")
    assert "dash_small" not in page.get_by_role("table").inner_text()
    gone = board.get("/tr:n-dash_small/n.jpg")
    assert gone.status == 400 and gone.headers["ik-error"].startswith("EINVALID")
    assert problems == [], problems
    page.close()


def test_overview_figures(board: Any, browser: Any) -> None:
    api(board, "POST", "/api/v1/files/upload", files={"file": ("o.jpg", make_image(300, 200))},
        data={"fileName": "o.jpg", "useUniqueFileName": "false"}).raise_for_status()
    for _ in range(3):
        assert board.get("/o.jpg?tr=w-100").status == 200  # one made, then hits
    assert board.get("/missing.jpg").status == 404
    assert board.get("/missing-too.jpg").status == 404
    assert board.get("/o.jpg?tr=w-nope").status == 400
    # An origin nothing listens at: its circuit opens after five failures in a row.
    dead = api(board, "POST", "/v1/accounts/origins", json={
        "type": "WEB_FOLDER", "name": "Dead", "baseUrl": "http://127.0.0.1:9/x"}).json()
    api(board, "POST", "/v1/accounts/url-endpoints", json={
        "description": "", "urlPrefix": "dead", "origins": [dead["id"]]}).raise_for_status()
    for _ in range(6):
        assert board.get("/dead/a.jpg").status == 404
    page, problems = signed_in(browser, board)
    assert page.locator("#health").inner_text() == "healthy"
    ratio = page.locator("#hit-ratio").inner_text()
    assert ratio.endswith("%") and float(ratio.split()[0]) > 0, ratio
    assert "in memory" in page.locator("#cache-size").inner_text()
    errors = page.get_by_role("table", name="Errors in the last hour").inner_text()
    assert re.search(r"ENOENT\s+2", errors) and re.search(r"EINVALID\s+1", errors), errors
    assert re.search(r"ECONNREFUSED\s+6", errors), errors
    states = page.get_by_role("table", name="Origin states")
    assert "circuit open" in states.get_by_role("row").filter(has_text="Dead").inner_text()
    assert "only worker" in page.locator("#figures-scope").inner_text()
    shoot(page, "overview-figures")
    assert problems == [], problems
    page.close()


def test_a_dashboard_password(serve: Any, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_DASHBOARD_PASSWORD", "correct horse battery")
    root = tmp_path / "library"
    root.mkdir()
    server = serve(library_config(root, f"sqlite:///{tmp_path / 'library.db'}",
                                  dashboard={"password": "env:PP_TEST_DASHBOARD_PASSWORD"}))
    with httpx.Client(base_url=server.url) as visitor:
        assert "or dashboard password" in visitor.get("/dashboard/login").text
        wrong = visitor.post("/dashboard/login", data={"key": "correct horse"})
        assert wrong.status_code == 401
        signed = visitor.post("/dashboard/login", data={"key": "correct horse battery"})
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        assert visitor.get("/dashboard").status_code == 200
    with httpx.Client(base_url=server.url) as visitor:  # the private key still works
        assert visitor.post("/dashboard/login", data={"key": PRIVATE_KEY}).status_code == 303
    # The password opens the dashboard only, not the API.
    assert httpx.get(f"{server.url}/v1/files",
                     auth=("correct horse battery", "")).status_code == 401


def test_new_forms_are_guarded_and_fail_clearly(board: Any) -> None:
    with httpx.Client(base_url=board.url) as visitor:
        visitor.post("/dashboard/login", data={"key": PRIVATE_KEY})
        page = visitor.get("/dashboard/named")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        csrf = token.group(1)
        # Without the session's token: 403, nothing changes.
        assert visitor.post("/dashboard/named", data={"name": "x", "transformation": "w-1"}
                            ).status_code == 403
        assert visitor.post("/dashboard/library/folders",
                            data={"name": "x", "parent": "/"}).status_code == 403
        # Unknown or read-only things: 400 with the reason, never 500.
        for target, reason in [
                ("/dashboard/origins/config:nope/edit", "No origin"),
                ("/dashboard/endpoints/default/edit", "config file"),
                ("/dashboard/library/files/nope", "does not exist"),
                ("/dashboard/named/config:cfg_small/edit", "No named transformation")]:
            answer = visitor.get(target)
            assert answer.status_code == 400 and reason in answer.text, (target, answer.text)
        for target, data in [
                ("/dashboard/library/files/nope/tags", {"tags": "a"}),
                ("/dashboard/library/files/nope/privacy", {"private": "on"}),
                ("/dashboard/library/files/nope/versions/nope/restore", {}),
                ("/dashboard/library/files/nope/delete", {"confirm": "on"}),
                ("/dashboard/library/folders/delete", {"folderPath": "/none", "confirm": "on"}),
                ("/dashboard/library/folders/delete", {"folderPath": "/none"}),
                ("/dashboard/named/config:cfg_small/delete", {}),
                ("/dashboard/origins/nope/edit", {"name": "x"})]:
            answer = visitor.post(target, data={"csrf": csrf, **data})
            assert answer.status_code == 400 and 'role="alert"' in answer.text, (
                target, answer.status_code, answer.text[:300])


def test_recent_errors_keep_an_hour_by_minute() -> None:
    from pixelport.delivery.recent import RecentErrors

    now = [0.0]
    recent = RecentErrors(clock=lambda: now[0])
    recent.record("ENOENT")
    recent.record("ENOENT")
    now[0] = 30 * 60.0
    recent.record("EINVALID")
    assert recent.counts() == {"ENOENT": 2, "EINVALID": 1}
    now[0] = 60 * 60.0  # the first minute has gone
    assert recent.counts() == {"EINVALID": 1}
    now[0] = 91 * 60.0
    assert recent.counts() == {} and not recent.buckets


def test_overview_sums_every_worker(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from tests.helpers import free_port
    from tests.library_support import PUBLIC_KEY
    from tests.test_workers import _ready, _stop, _workers

    (tmp_path / "library").mkdir()
    config = tmp_path / "pixelport.toml"
    config.write_text(
        f'[server]\nworkers = 2\n[library]\ndir = "{tmp_path / "library"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "library.db"}"\n'
        f'[cache]\ndir = "{tmp_path / "cache"}"\n'
        f'[security]\nprivate_key = "{PRIVATE_KEY}"\npublic_key = "{PUBLIC_KEY}"\n')
    port = free_port()
    # `python -m pixelport` from the checkout: this tree's code, in the workers too.
    process = subprocess.Popen([sys.executable, "-m", "pixelport", "serve", "--config",
                                str(config), "--listen", f"127.0.0.1:{port}"],
                               cwd=Path(__file__).resolve().parent.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while len(_workers(process.pid)) < 2 or not _ready(url):
            assert time.monotonic() < deadline and process.poll() is None, "not started"
            time.sleep(0.1)
        for _ in range(12):  # each on a new connection: the kernel spreads them
            assert httpx.get(f"{url}/missing.jpg", timeout=20).status_code == 404
        with httpx.Client(base_url=url) as visitor:
            assert visitor.post("/dashboard/login", data={"key": PRIVATE_KEY}
                                ).status_code == 303
            overview = visitor.get("/dashboard").text
        assert "all 2 worker processes, summed" in overview
        assert re.search(r"<code>ENOENT</code></td><td>12</td>", overview), overview
    finally:
        _stop(process)


def test_figures_fall_back_to_this_worker_and_say_so() -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from pixelport.dashboard.overview import scope_of
    from pixelport.delivery.recent import RecentErrors
    from pixelport.figures import Figures
    from pixelport.siblings import Unreachable

    errors = RecentErrors()
    errors.record("ENOENT")
    delivery = SimpleNamespace(hot=SimpleNamespace(served=3), hits=1, misses=2, errors=errors)
    results = SimpleNamespace(memory=SimpleNamespace(used=10, capacity=100), disk=None)

    class Silent:
        async def tell(self, message: dict[str, Any]) -> list[dict[str, Any]]:
            raise Unreachable("worker 1 is not answering")

    class Answering:
        async def tell(self, message: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"workers": 1, "memory_bytes": 5, "memory_capacity": 100, "disk_bytes": 0,
                     "disk_capacity": 0, "hits": 6, "misses": 0, "errors": {"ENOENT": 2},
                     "origins": {}}]

    def run(figures: Figures) -> tuple[dict[str, Any], bool]:
        # In a thread of its own: playwright's sync API keeps an event loop in this one.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, figures.gathered()).result()

    alone = Figures(results, delivery, Silent(), {}, dict)  # type: ignore[arg-type]
    figures, everyone = run(alone)
    assert not everyone and figures["hits"] == 4 and figures["errors"] == {"ENOENT": 1}
    assert "this worker process only" in scope_of(figures["workers"], everyone)
    both = Figures(results, delivery, Answering(), {}, dict)  # type: ignore[arg-type]
    figures, everyone = run(both)
    assert everyone and figures["workers"] == 2 and figures["hits"] == 10
    assert figures["memory_bytes"] == 15 and figures["errors"] == {"ENOENT": 3}


def test_a_sub_account_made_on_the_accounts_page_signs_in_apart(board: Any,
                                                                 browser: Any) -> None:
    api(board, "POST", "/api/v1/files/upload", files={"file": ("main.jpg", make_image(60, 40))},
        data={"fileName": "main.jpg", "useUniqueFileName": "false"}).raise_for_status()
    page, problems = signed_in(browser, board)
    page.get_by_role("link", name="Accounts").click()
    page.get_by_label(re.compile("^Name")).fill("staging")
    page.get_by_label(re.compile("^Domains")).fill("staging.example.test")
    page.get_by_role("button", name="Add account").click()
    keys = page.get_by_role("status", name="The new account's keys")
    private = keys.get_by_label("Private key").input_value()
    public = keys.get_by_label("Public key").input_value()
    assert private.startswith("private_") and public.startswith("public_")
    row = page.get_by_role("table", name="Accounts").get_by_role("row").filter(
        has_text="staging")
    assert "staging.example.test" in row.inner_text() and "dashboard" in row.inner_text()
    shoot(page, "accounts")
    page.get_by_label(re.compile("^Name")).fill("staging")  # taken: refused, with the reason
    page.get_by_role("button", name="Add account").click()
    assert "already an account named" in page.get_by_role("alert").inner_text()
    problems.remove("Failed to load resource: the server responded with a status of 400 "
                    "(Bad Request)")

    # The new key: its own library through the API, served under its prefix and its domain.
    made = httpx.post(f"{board.url}/api/v1/files/upload", auth=(private, ""), timeout=30,
                      files={"file": ("s.jpg", make_image(300, 200))},
                      data={"fileName": "s.jpg", "useUniqueFileName": "false"})
    assert made.status_code == 200, made.text
    assert made.json()["url"] == f"{board.url}/staging/s.jpg"
    assert width_of(board.get("/staging/tr:w-70/s.jpg").body) == 70
    assert width_of(board.get("/tr:w-50/s.jpg", {"Host": "staging.example.test"}).body) == 50
    assert board.get("/tr:w-50/s.jpg").status == 404

    # Signed in with it: only its own things, no server figures, no other account.
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Private API key").fill(private)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{board.url}/dashboard")
    assert page.locator("#hit-ratio").count() == 0
    page.get_by_role("link", name="URL endpoints").click()
    assert "/staging/" in page.get_by_role("table").first.inner_text()
    page.get_by_role("link", name="Account: staging").click()
    listed = page.get_by_role("table", name="Accounts").inner_text()
    assert "staging" in listed and "default" not in listed
    assert page.get_by_role("button", name="Add account").count() == 0
    page.get_by_role("link", name="Media library").click()
    grid = page.get_by_role("list", name="Folders and files in /")
    assert "s.jpg" in grid.inner_text() and "main.jpg" not in grid.inner_text()
    # An upload from its page goes to its library (a client-side upload names its account
    # by its public key).
    page.get_by_label("Files", exact=True).set_input_files([
        {"name": "page.jpg", "mimeType": "image/jpeg", "buffer": make_image(90, 60)}])
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    assert "page.jpg" in page.get_by_role("list", name="Folders and files in /").inner_text()
    assert board.get("/staging/page.jpg").status == 200 and board.get("/page.jpg").status == 404
    mine = httpx.get(f"{board.url}/v1/files", auth=(PRIVATE_KEY, "")).json()
    assert [f["name"] for f in mine] == ["main.jpg"]
    # A form of the default account's is refused to it.
    refused = page.request.post(f"{board.url}/dashboard/accounts", form={
        "csrf": page.locator("input[name=csrf]").first.input_value(), "name": "other"})
    assert refused.status == 403
    assert problems == [], problems
    page.close()
