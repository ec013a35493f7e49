"""`pixelport library scan` and `pixelport migrate`: files put in `[library] dir` before the
database are indexed in place, once, with their facts; the API then manages them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import Pixelport, make_image
from tests.library_support import PRIVATE_KEY, library_config, row_count

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
PIXELPORT = str(ROOT / ".venv" / "bin" / "pixelport")


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    (root / "shop" / "shoes").mkdir(parents=True)
    (root / "a.jpg").write_bytes(make_image(300, 200))
    (root / "shop" / "shoes" / "b.png").write_bytes(make_image(40, 30, ".png"))
    (root / "shop" / "notes.txt").write_bytes(b"hello")
    (root / "shop" / "bad name!.jpg").write_bytes(make_image(10, 10))  # ImageKit would rename
    return root


def _config_file(tmp_path: Path, root: Path, database_url: str) -> Path:
    path = tmp_path / "pixelport.toml"
    path.write_text(f'[library]\ndir = "{root}"\n[database]\nurl = "{database_url}"\n'
                    f'[security]\nprivate_key = "{PRIVATE_KEY}"\n')
    return path


def test_scan_indexes_once_and_the_api_sees_the_files(tmp_path: Path, database_url: str) -> None:
    root = _folder(tmp_path)
    config = _config_file(tmp_path, root, database_url)
    migrated = subprocess.run([PIXELPORT, "migrate", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    first = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "4 file(s) found, 3 indexed" in first.stdout
    assert "scanning" in first.stderr  # the progress bar
    again = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config), "--quiet"],
                           capture_output=True, text=True, timeout=60)
    assert "0 indexed" in again.stdout
    assert row_count(database_url, "files") == 3
    pp = Pixelport(library_config(root, database_url), base=tmp_path)
    try:
        listed = httpx.get(f"{pp.url}/v1/files", params={"path": "/shop/shoes"},
                           auth=(PRIVATE_KEY, "")).json()
        assert [(f["name"], f["width"], f["height"]) for f in listed] == [("b.png", 40, 30)]
        everything = httpx.get(f"{pp.url}/v1/files", params={"type": "file"},
                               auth=(PRIVATE_KEY, "")).json()
        assert {f["filePath"] for f in everything} == {"/a.jpg", "/shop/shoes/b.png",
                                                        "/shop/notes.txt"}
        a = next(f for f in everything if f["filePath"] == "/a.jpg")
        assert pp.get("/tr:w-30/a.jpg").status == 200
        # Moved through the API: the folder file stays where it was, but is no longer served
        # by its old path (it is retired), and the new path serves it.
        moved = httpx.post(f"{pp.url}/v1/files/move", auth=(PRIVATE_KEY, ""),
                           json={"sourceFilePath": "/a.jpg", "destinationPath": "/moved"})
        assert moved.status_code == 204
        assert pp.get("/a.jpg").status == 404 and pp.get("/moved/a.jpg").status == 200
        assert httpx.delete(f"{pp.url}/v1/files/{a['fileId']}",
                            auth=(PRIVATE_KEY, "")).status_code == 204
        assert not (root / "a.jpg").exists()  # its bytes went with it
        assert pp.get("/moved/a.jpg").status == 404
        # A file put in the folder later is served by path until scanned.
        (root / "late.jpg").write_bytes(make_image(20, 20))
        assert pp.get("/late.jpg").status == 200
    finally:
        pp.stop()
    rescan = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config), "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert "1 indexed" in rescan.stdout


def test_scan_without_a_library_says_so(tmp_path: Path) -> None:
    config = tmp_path / "pixelport.toml"
    config.write_text('[library]\ndir = ""\n')
    done = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "library" in done.stderr


def test_scan_of_a_sub_account(tmp_path: Path, database_url: str) -> None:
    """`--account NAME` indexes that account's folder into its own database (or schema)."""
    root = tmp_path / "library"
    root.mkdir()
    (tmp_path / "accounts").mkdir()
    _folder(tmp_path / "files").rename(tmp_path / "accounts" / "staging")
    config = _config_file(tmp_path, root, database_url)
    config.write_text(config.read_text() + '[[account]]\nname = "staging"\n'
                      'private_key = "staging_key"\n')
    done = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config), "--quiet",
                           "--account", "staging"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 indexed" in done.stdout
    unknown = subprocess.run([PIXELPORT, "library", "scan", "--config", str(config),
                              "--account", "nobody"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no [[account]] named 'nobody'" in unknown.stderr
    pp = Pixelport(library_config(root, database_url) | {"account": [
        {"name": "staging", "private_key": "staging_key"}]}, base=tmp_path)
    try:
        listed = httpx.get(f"{pp.url}/v1/files", params={"type": "file"},
                           auth=("staging_key", "")).json()
        assert {f["filePath"] for f in listed} == {"/a.jpg", "/shop/shoes/b.png",
                                                   "/shop/notes.txt"}
        assert httpx.get(f"{pp.url}/v1/files", auth=(PRIVATE_KEY, "")).json() == []
        assert pp.get("/staging/tr:w-30/a.jpg").status == 200
    finally:
        pp.stop()
