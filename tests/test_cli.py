"""The `pixelport` command as users run it: serve the demo config on a chosen port."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import decode, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture
def demo_server() -> Iterator[str]:
    port = free_port()
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    process = subprocess.Popen([command, "serve", "--config", str(ROOT / "demo" /
                                "pixelport.toml"), "--listen", f"127.0.0.1:{port}"],
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
    assert "download;dur=" in response.headers["server-timing"]
    assert decode(response.content).width == 300


def test_demo_serves_css(demo_server: str) -> None:
    response = httpx.get(demo_server + "/css/site.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")


def test_bad_listen_is_a_clear_error() -> None:
    command = shutil.which("pixelport", path=str(ROOT / ".venv" / "bin")) or "pixelport"
    result = subprocess.run([command, "serve", "--listen", "nowhere"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
