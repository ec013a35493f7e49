"""The `pixelport` command as users run it: serve the demo config on a chosen port."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import decode, free_port, web_config

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    # The demo config as shipped, with its cache in tmp_path: a test run must not fill (or
    # read) the checkout's data/cache.
    demo = (ROOT / "demo" / "pixelport.toml").read_text()
    assert 'dir = "library"' in demo and 'dir = "../data/cache"' in demo
    assert 'url = "sqlite:///../data/library.db"' in demo
    config = tmp_path / "pixelport.toml"
    config.write_text(demo.replace('dir = "library"', f'dir = "{ROOT / "demo" / "library"}"')
                      .replace('dir = "../data/cache"', f'dir = "{tmp_path / "cache"}"')
                      .replace('url = "sqlite:///../data/library.db"',
                               f'url = "sqlite:///{tmp_path / "library.db"}"'))
    port = free_port()
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    process = subprocess.Popen([command, "serve", "--config", str(config), "--listen",
                                f"127.0.0.1:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("pixelport serve did not start") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    assert process.wait(timeout=20) in (0, -15)  # uvicorn re-raises SIGTERM after a clean stop


def test_demo_serves_transformed_photo(demo_server: str) -> None:
    response = httpx.get(demo_server + "/tr:w-300/photo-1200x900.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    timing = response.headers["server-timing"]
    # The shipped demo keeps its cache between runs: a hit is as good as a fresh fetch.
    assert "download;dur=" in timing or "cache;desc=hit" in timing
    assert decode(response.content).width == 300


def test_demo_serves_css(demo_server: str) -> None:
    response = httpx.get(demo_server + "/css/site.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")


def test_bad_listen_is_a_clear_error() -> None:
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    result = subprocess.run([command, "serve", "--listen", "nowhere"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 2 and "HOST:PORT" in result.stderr


def _start(config_path: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    process = subprocess.Popen([command, "serve", "--config", str(config_path), "--listen",
                                f"127.0.0.1:{port}", *options], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("pixelport serve did not start") from None
            time.sleep(0.1)


def _write_config(tmp_path: Path, origin_url: str) -> Path:
    return web_config(tmp_path, origin_url, "cli_test_key")


def test_sigterm_finishes_in_flight_requests(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import OriginServer, make_image

    origin = OriginServer().start()
    origin.files["/slow.jpg"] = make_image(300, 200)
    origin.delays["/slow.jpg"] = 1.5
    port = free_port()
    process = _start(_write_config(tmp_path, origin.url), port)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.get, f"http://127.0.0.1:{port}/tr:w-100/slow.jpg",
                                  timeout=20)
            time.sleep(0.5)
            process.terminate()
            response = pending.result()
        assert response.status_code == 200
        assert decode(response.content).width == 100
        assert process.wait(timeout=20) in (0, -15)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        assert not list((tmp_path / "cache").rglob(".tmp-*"))
        assert list((tmp_path / "cache").rglob("*.entry"))  # the result was stored whole
    finally:
        process.kill()
        origin.stop()


def test_purge_command(tmp_path: Path) -> None:
    from tests.helpers import OriginServer, make_image

    origin = OriginServer().start()
    origin.files["/a.jpg"] = make_image(300, 200)
    port = free_port()
    config_path = _write_config(tmp_path, origin.url)
    process = _start(config_path, port)
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    try:
        url = f"http://127.0.0.1:{port}/tr:w-50/a.jpg"
        assert httpx.get(url).status_code == 200
        assert "cache;desc=hit" in httpx.get(url).headers["server-timing"]
        result = subprocess.run([command, "purge", url, "--config", str(config_path),
                                 "--server", f"http://127.0.0.1:{port}"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "purged" in result.stdout
        assert "cache;desc=miss" in httpx.get(url).headers["server-timing"]
        wrong = subprocess.run([command, "purge", url, "--server", f"http://127.0.0.1:{port}"],
                               capture_output=True, text=True, check=False,
                               env={"PIXELPORT_PRIVATE_KEY": "wrong", "PATH": "/usr/bin"})
        assert wrong.returncode == 1 and "401" in wrong.stderr
    finally:
        process.terminate()
        process.wait(timeout=20)
        origin.stop()


def test_access_log_logs_every_request_repeated_ones_included(tmp_path: Path) -> None:
    from tests.helpers import OriginServer, make_image

    origin = OriginServer().start()
    origin.files["/a.jpg"] = make_image(64, 48)
    port = free_port()
    process = _start(_write_config(tmp_path, origin.url), port, "--access-log")
    try:
        for _ in range(3):  # the later ones are what hot answers would have served unlogged
            assert httpx.get(f"http://127.0.0.1:{port}/tr:w-10/a.jpg").status_code == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
        origin.stop()
    assert output.count('/a.jpg HTTP/1.1" 200') == 3  # uvicorn logs the path as sent
