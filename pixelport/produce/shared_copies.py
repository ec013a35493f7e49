"""Decoded copies shared between worker processes, as files in the run folder.

With several workers (`[server] workers`), the variants of one original arrive at all of
them; each decoding it again cost `srcset` 18 % of its throughput. The worker that builds a
copy writes its raw pixels (`.raw`) and then what they are (`.json`: size, bands, format and
the SHA-256 of the original they were made from, so that they serve only those very bytes);
any worker maps the pixels into memory without decoding or copying (libvips' own `.v`
format, read through its windowed file access, made every resize 1-2 ms dearer). A claim
file says a copy is being built, so the others wait for it rather than decode too. Files
live under the run folder, on tmpfs (/dev/shm) where there is one: memory, never the disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import pyvips

from pixelport.place import alive

log = logging.getLogger("pixelport.transform")
Key = tuple[int, int, int]
ORIGINAL = "original"  # the field of the .json holding the SHA-256 of the original
STALE_CLAIM = 60.0  # a claim this old is a build that will not finish
_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4,
          "double": 8, "complex": 8, "dpcomplex": 16}  # per band and pixel


def name(key: Key) -> str:
    """The file name stem of a copy."""
    length, head, tail = key
    return f"{length}-{head:08x}-{tail:08x}"


def fingerprint(data: bytes) -> str:
    """What identifies the original a copy was made from."""
    return hashlib.sha256(data).hexdigest()


class SharedCopies:
    """Copies in `folder`, shared by the workers that use it."""

    def __init__(self, folder: Path, ttl: float = 30.0) -> None:
        self.folder = folder
        self.ttl = ttl
        self.marks: deque[tuple[float, Path]] = deque()  # this worker's, oldest first
        folder.mkdir(parents=True, exist_ok=True)
        self._sweep()

    def _sweep(self) -> None:
        """Delete the copies of workers that are gone (a worker restarted after a crash)."""
        for meta in self.folder.glob("*.json"):
            try:
                owner = int(json.loads(meta.read_text())["owner"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not alive(owner):
                stem = meta.name.removesuffix(".json")
                meta.unlink(missing_ok=True)
                (self.folder / (stem + ".raw")).unlink(missing_ok=True)

    def _path(self, key: Key, suffix: str) -> Path:
        return self.folder / (name(key) + suffix)

    def seen_elsewhere(self, key: Key) -> bool:
        """Whether another worker was asked for this original in the last `ttl` seconds;
        if not, mark it as asked here. (The second request of a page builds the copy,
        wherever it arrives.)"""
        now = time.monotonic()
        while self.marks and now - self.marks[0][0] > self.ttl:
            self.marks.popleft()[1].unlink(missing_ok=True)
        path = self._path(key, ".seen")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return True
        except OSError:
            return False
        self.marks.append((now, path))
        return False

    def claimed(self, key: Key) -> bool:
        """Whether another worker is building the copy (a claim of a dead one is removed)."""
        path = self._path(key, ".claim")
        try:
            pid = int(path.read_text() or 0)
            age = time.time() - path.stat().st_mtime
        except (OSError, ValueError):
            return False
        # An empty claim is one being written this moment.
        if age < STALE_CLAIM and (alive(pid) if pid else age < 1.0):
            return True
        path.unlink(missing_ok=True)
        return False

    def claim(self, key: Key) -> bool:
        """Take the building of `key`'s copy; False if another worker has it."""
        try:
            fd = os.open(self._path(key, ".claim"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError:
            return False  # no room or no folder: nothing is shared, each builds its own
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
        return True

    def release(self, key: Key) -> None:
        """Give up a claim (the copy was published, or could not be built)."""
        self._path(key, ".claim").unlink(missing_ok=True)

    def publish(self, key: Key, image: Any, data: bytes) -> tuple[Any, bool]:
        """Write `image` (a pipeline: decoded straight into the file) for the others and
        release the claim; the mapped copy and True, or `image` in memory and False if it
        cannot be written (tmpfs full, say)."""
        pixels, meta = self._path(key, ".raw"), self._path(key, ".json")
        temporary = self._path(key, f".{os.getpid()}.tmp")
        try:
            needed = image.width * image.height * image.bands * _BYTES.get(image.format, 16)
            space = os.statvfs(self.folder)
            if space.f_bavail * space.f_frsize < 2 * needed:
                return image.copy_memory(), False
            image.rawsave(str(temporary))
            os.replace(temporary, pixels)
            temporary.write_text(json.dumps({
                "width": image.width, "height": image.height, "bands": image.bands,
                "format": image.format, "interpretation": image.interpretation,
                ORIGINAL: fingerprint(data), "owner": os.getpid()}))
            os.replace(temporary, meta)
            found = self._map(key)
            if found is None:
                raise OSError("the copy just written cannot be read")
            return found[0], True
        except (OSError, pyvips.Error) as exc:
            log.warning("decoded copy not shared: %s", exc)
            temporary.unlink(missing_ok=True)
            self.remove(key)
            return image.copy_memory(), False
        finally:
            self.release(key)

    def load(self, key: Key, data: bytes) -> Any | None:
        """Another worker's copy of `key`, if it was made from `data`."""
        found = self._map(key)
        return found[0] if found is not None and found[1] == fingerprint(data) else None

    def _map(self, key: Key) -> tuple[Any, str] | None:
        """The copy's pixels mapped as an image, and its original's fingerprint."""
        try:
            meta = json.loads(self._path(key, ".json").read_text())
            with self._path(key, ".raw").open("rb") as handle:
                pixels = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
            image = pyvips.Image.new_from_memory(pixels, meta["width"], meta["height"],
                                                 meta["bands"], meta["format"])
            image = image.copy(interpretation=meta["interpretation"])
            return image, str(meta[ORIGINAL])
        except (OSError, ValueError, KeyError, TypeError, pyvips.Error):
            return None  # removed meanwhile, or not whole

    def remove(self, key: Key) -> None:
        """Delete a copy this worker published (mappings others hold stay valid)."""
        self._path(key, ".json").unlink(missing_ok=True)
        self._path(key, ".raw").unlink(missing_ok=True)
