"""A crash at the worst moments of an upload leaves no row without its bytes and no visible
half file; the bytes it did leave are orphans, which the sweep removes. The process is really
killed (os._exit in a child process, SIGKILL of a server), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from pixelport.library.files import Library
from pixelport.library.storage import FolderStorage
from pixelport.library_app import MediaLibrary
from tests.helpers import make_image
from tests.library_support import PRIVATE_KEY, row_count
from tests.test_library_workers import _config
from tests.test_workers import _serve_config, _workers

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import asyncio, os, sys
    from pathlib import Path
    from pixelport.library import files
    from pixelport.library.files import Library, Upload
    from pixelport.library.storage import FolderStorage
    from pixelport.config import database_url
    from pixelport.state.db import Database

    url, root, moment = database_url(sys.argv[1], Path.cwd()), Path(sys.argv[2]), sys.argv[3]

    async def main():
        db = Database(url)
        await db.migrate()
        storage = FolderStorage(root)
        library = Library(db, storage)
        original = files._insert_new
        def dying(session, *rest):
            original(session, *rest)   # the rows are written, not committed
            os._exit(9)
        if moment == "before-commit":
            files._insert_new = dying
        source = storage.temporary()
        source.write_bytes(Path(sys.argv[4]).read_bytes())
        await library.upload(Upload(source=source, name="crash.jpg",
                                    use_unique_file_name=False))
        os._exit(0)

    asyncio.run(main())
""")


def _count_blobs(root: Path) -> int:
    internal = root / ".pixelport"
    return sum(1 for p in internal.rglob("*") if p.is_file()) if internal.exists() else 0


def test_killed_between_the_bytes_and_the_commit(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "library"
    root.mkdir()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_image(64, 64))
    child = subprocess.run([sys.executable, "-c", CHILD, database_url, str(root),
                            "before-commit", str(photo)], cwd=ROOT, timeout=60)
    assert child.returncode == 9
    assert row_count(database_url, "files") == 0, "a row without its commit survived"
    assert row_count(database_url, "file_versions") == 0
    assert _count_blobs(root) == 1  # the stored bytes, named by nothing: an orphan
    assert not (root / "crash.jpg").exists()  # nothing visible by path

    assert asyncio.run(FolderStorage(root).sweep([], older_than=0)) == 1
    assert _count_blobs(root) == 0
    # And a clean run after the crash works.
    done = subprocess.run([sys.executable, "-c", CHILD, database_url, str(root), "clean",
                           str(photo)], cwd=ROOT, timeout=60)
    assert done.returncode == 0 and row_count(database_url, "files") == 1


def test_server_killed_mid_upload(tmp_path: Path, database_url: str) -> None:
    config = _config(tmp_path, database_url)
    process, url = _serve_config(config, workers=1)
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            import base64

            token = base64.b64encode(f"{PRIVATE_KEY}:".encode()).decode()
            sock.sendall(b"POST /api/v1/files/upload HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: multipart/form-data; boundary=x\r\n"
                         b"Content-Length: 5000000\r\n"
                         + f"Authorization: Basic {token}\r\n\r\n".encode()
                         + b'--x\r\nContent-Disposition: form-data; name="fileName"\r\n\r\n'
                           b"half.jpg\r\n--x\r\nContent-Disposition: form-data; name=\"file\"; "
                           b'filename="half.jpg"\r\n\r\n' + make_image(64, 64)[:200]
                         # Past MEMORY_PART (1 MB): the part is being written to a file.
                         + b"\0" * 2_000_000)
            deadline = time.monotonic() + 10
            root = tmp_path / "library"
            while _count_blobs(root) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # the partial file is being written
            for pid in _workers(process.pid):  # the worker receiving the upload, first
                os.kill(pid, signal.SIGKILL)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    root = tmp_path / "library"
    partial = [p for p in (root / ".pixelport").rglob("*") if p.is_file()]
    assert partial and all("partial" in p.parts for p in partial)
    assert row_count(database_url, "files") == 0
    assert not (root / "half.jpg").exists()
    # Restarted: nothing of it is listed or served; the sweep removes the partial file.
    process, url = _serve_config(config, workers=1)
    try:
        assert httpx.get(f"{url}/v1/files", auth=(PRIVATE_KEY, "")).json() == []
        assert httpx.get(f"{url}/half.jpg").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)

    async def sweep() -> int:
        from pixelport.config import load

        media = MediaLibrary(load(config), root, None)  # type: ignore[arg-type]
        try:
            for path in partial:  # an hour old, as the sweep requires
                os.utime(path, (time.time() - 7200, time.time() - 7200))
            return await media.sweep()
        finally:
            await media.aclose()

    assert asyncio.run(sweep()) == len(partial)
    assert _count_blobs(root) == 0


__all__ = ["Library"]
