"""`pixelport library scan`: index the files found in `[library] dir` (or its bucket) into
the database.

Idempotent: a file already indexed (its path, or its bytes named by a version) or retired by
the API is left alone. Files are indexed in place (their path is their storage key), in
batches of one transaction each, so an interrupted scan keeps what it finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pixelport.library import names
from pixelport.library.files import Library, ensure_folders, set_tags
from pixelport.library.metadata import NON_IMAGE, Probe, probe
from pixelport.library.records import snapshot
from pixelport.state.models import File, FileVersion, RetiredPath, new_id, now

BATCH = 500


@dataclass
class ScanReport:
    """What a scan found and did."""

    seen: int = 0
    indexed: int = 0
    skipped: int = 0  # already indexed, retired, or a name the library cannot hold


async def scan(library: Library,
               progress: Callable[[int], None] | None = None) -> ScanReport:
    """Index every file of the library's storage not yet known to the library."""
    report = ScanReport()
    batch: list[tuple[str, int]] = []
    async for found in library.storage.keys():
        report.seen += 1
        batch.append(found)
        if len(batch) == BATCH:
            await _index(library, batch, report)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        await _index(library, batch, report)
        if progress:
            progress(len(batch))
    return report


async def _index(library: Library, found: list[tuple[str, int]], report: ScanReport) -> None:
    candidates: list[tuple[str, str, str]] = []
    sizes: list[int] = []
    for key, size in found:
        folder, name = key.rpartition("/")[0], key.rpartition("/")[2]
        try:
            clean_folder = names.clean_folder(folder)
            clean = names.clean_name(name)
        except ValueError:
            report.skipped += 1
            continue
        if clean != name or clean_folder != "/" + (f"{folder}/" if folder else ""):
            report.skipped += 1  # a name ImageKit's rules would change: left as it is
            continue
        candidates.append((key, clean_folder, clean))
        sizes.append(size)
    facts = [await _probe(library, key) for key, _, _ in candidates]

    def work(session: Session) -> int:
        paths = ["/" + key for key, _, _ in candidates]
        known = set((session.scalars(select(File.path).where(File.path.in_(paths)))).all())
        known |= set((session.scalars(select(RetiredPath.path).where(
            RetiredPath.path.in_(paths)))).all())
        known |= {"/" + k for k in (session.scalars(select(FileVersion.storage_key).where(
            FileVersion.storage_key.in_([key for key, _, _ in candidates])))).all()}
        added = 0
        for (key, folder, name), fact, size in zip(candidates, facts, sizes, strict=True):
            if "/" + key in known:
                continue
            ensure_folders(session, folder)
            moment = now()
            row = File(id=new_id(), path="/" + key, folder=folder, name=name, tags=[],
                       version_id="", version_number=1, storage_key=key,
                       file_type=fact.file_type, mime=fact.mime, format=fact.format, size=size,
                       width=fact.width, height=fact.height, has_alpha=fact.has_alpha,
                       duration=fact.duration, video_codec=fact.video_codec,
                       audio_codec=fact.audio_codec, bit_rate=fact.bit_rate,
                       is_private=False, is_published=True, custom_metadata={},
                       embedded_metadata={}, created_at=moment, updated_at=moment)
            set_tags(row, [], [])
            row.version_id = row.id
            session.add(row)
            session.flush()
            session.add(FileVersion(id=row.id, file_id=row.id, number=1, storage_key=key,
                                    snapshot=snapshot(row), created_at=moment))
            added += 1
        return added

    added = await library.db.retrying(work)
    report.indexed += added
    report.skipped += len(candidates) - added


async def _probe(library: Library, key: str) -> Probe:
    """What a stored file is (a bucket's is read into a temporary file first)."""
    async with library.storage.readable(key) as path:
        if path is None:  # gone since it was listed
            return Probe(None, None, False, "", "application/octet-stream", NON_IMAGE)
        return await asyncio.to_thread(probe, path, key)
