"""The `library` scenario's pieces: the upload's JPEG and multipart body, a library of
100,000 files written straight into SQLite, and the query plans of the measured listings.

bench/run.py drives it (`--scenarios library`): it migrates a fresh database with
`pixelport migrate`, fills it with `populate`, prints `query_plans` of the two measured
queries, starts pixelport on it, and runs wrk (`wrk/fixed.lua`) for the uploads (against
pixelport and against `upload_limit.py`) and for the two listings. Nothing here starts a
server.

    .venv/bin/pixelport migrate --config FILE       # an empty database, then:
    .venv/bin/python bench/library_scenario.py DB [--files N] [--plans]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

FILES = 100_000
FOLDERS = 100  # of 1000 files each, all under /photos/
TOP = "/photos/"
USER_TAGS = 200  # tag-0 ... tag-199
AI_TAGS = ("person", "outdoor", "sky", "dog", "cat", "car", "food", "building", "tree", "beach")
SIZES = ((4000, 3000), (3000, 4000), (6000, 4000), (1920, 1080), (1080, 1920), (2048, 1536),
         (1600, 1200), (1200, 900), (1024, 768), (800, 600), (640, 480))
# (format, mime, share, bytes per pixel): what a photo library holds, with a few PDFs
# (non-image: no width or height, as pixelport stores them).
FORMATS = (("jpg", "image/jpeg", 0.78, 0.22), ("png", "image/png", 0.12, 1.1),
           ("webp", "image/webp", 0.08, 0.12), ("pdf", "application/pdf", 0.02, 0.0))
PRIVATE_KEY = "bench_private_key"
UPLOAD_FOLDER = "/bench-uploads/"
UPLOAD_PATH = "/api/v1/files/upload"
BOUNDARY = "pixelportbenchboundary7MA4YWxkTrZu0gW"
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DATETIME text on SQLite

# The measured listings. The listing returns up to 1000 rows by default; 100 is a page.
LIST_FOLDER = f"{TOP}set-042/"
LIST_PARAMS = {"path": LIST_FOLDER, "limit": "100"}
# Large images with one tag: 710 files carry tag-17, 566 of them wider than 1000 px (the
# first 100 by creation are the answer): selective, as a search in a photo library is.
SEARCH_QUERY = 'width > 1000 AND tags IN ["tag-17"]'
SEARCH_PARAMS = {"searchQuery": SEARCH_QUERY, "limit": "100"}


def query_path(params: dict[str, str]) -> str:
    """`/v1/files?...` for `params`, percent-encoded (wrk sends the path as given)."""
    return "/v1/files?" + urlencode(params)


# --- the upload ---------------------------------------------------------------------------------

def make_jpeg(source: Path, target_bytes: int = 200_000, width: int = 1600) -> bytes:
    """`source` resized to `width` px and encoded at the quality that comes nearest to
    `target_bytes` (a camera JPEG of that size, made at run time)."""
    import pyvips

    # Rendered once into memory: the encodes below each read it again, and a thumbnail
    # streams from the file in one pass only.
    image = pyvips.Image.thumbnail(str(source), width).copy_memory()
    best: bytes = b""
    low, high = 40, 95
    while low <= high:  # bytes grow with quality: a bisection finds the nearest
        quality = (low + high) // 2
        data = bytes(image.jpegsave_buffer(Q=quality, keep="none"))
        if not best or abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
            best = data
        if len(data) < target_bytes:
            low = quality + 1
        else:
            high = quality - 1
    return best


def multipart_body(jpeg: bytes, file_name: str = "bench-upload.jpg") -> tuple[bytes, str]:
    """One upload's multipart/form-data body and its Content-Type. useUniqueFileName=true
    gives every upload of this same body a new name, as ImageKit does."""
    fields = {"fileName": file_name, "folder": UPLOAD_FOLDER, "useUniqueFileName": "true"}
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{file_name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                 + jpeg + b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}"


# --- the library ----------------------------------------------------------------------------

@dataclass
class _Clock:
    """Creation times over two years, in order of file number."""

    start: datetime
    rng: random.Random

    def at(self, index: int) -> datetime:
        """File `index`'s creation time, to the millisecond (as pixelport stores times)."""
        moment = self.start + timedelta(seconds=index * 630 + self.rng.uniform(0, 600))
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _iso(moment: datetime) -> str:
    """What records.iso writes into a version's snapshot."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def populate(db: Path, files: int = FILES, folders: int = FOLDERS,
             seed: int = 7) -> dict[str, Any]:
    """Insert `files` files in `folders` folders under /photos/ into a migrated, empty
    database, in one transaction, with every NOT NULL column of pixelport's models filled;
    counts and seconds taken."""
    rng = random.Random(seed)  # the same library on every run
    began = time.monotonic()
    clock = _Clock(datetime(2024, 12, 1, tzinfo=UTC), rng)
    ids: set[str] = set()

    def new_id() -> str:
        while True:
            value = f"{rng.getrandbits(96):024x}"
            if value not in ids:
                ids.add(value)
                return value

    folder_rows = [(new_id(), TOP, "/", TOP.strip("/"), "{}",
                    clock.start.strftime(SQLITE_TIME), clock.start.strftime(SQLITE_TIME))]
    for n in range(folders):
        made = (clock.start + timedelta(minutes=n)).strftime(SQLITE_TIME)
        folder_rows.append((new_id(), f"{TOP}set-{n:03d}/", TOP, f"set-{n:03d}", "{}", made,
                            made))
    per_folder = -(-files // folders)
    slots = list(range(files))
    rng.shuffle(slots)  # each folder's files are spread over the two years, as uploads are
    file_rows: list[tuple[Any, ...]] = []
    version_rows: list[tuple[Any, ...]] = []
    tag_rows: list[tuple[Any, ...]] = []
    formats = [f[:2] + f[3:] for f in FORMATS]
    weights = [f[2] for f in FORMATS]
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for index in range(files):
        folder = f"{TOP}set-{slots[index] // per_folder:03d}/"
        fmt, mime, per_pixel = rng.choices(formats, weights)[0]
        suffix = "".join(rng.choices(alphabet, k=9))  # useUniqueFileName's
        name = f"photo-{index:06d}_{suffix}.{fmt}"
        if fmt == "pdf":
            width = height = None
            size, file_type, alpha = rng.randint(40_000, 4_000_000), "non-image", False
        else:
            width, height = rng.choice(SIZES)
            size = int(width * height * per_pixel * rng.uniform(0.6, 1.4))
            file_type, alpha = "image", fmt == "png" and rng.random() < 0.5
        created = clock.at(index)
        versions = 2 if rng.random() < 0.05 else 1  # a few files were replaced once
        updated = created + timedelta(days=rng.uniform(1, 60)) if versions == 2 else created
        updated = updated.replace(microsecond=updated.microsecond // 1000 * 1000)
        file_id = new_id()
        private = rng.random() < 0.02
        user = rng.sample(range(USER_TAGS), rng.choices((0, 1, 2, 3), (20, 35, 30, 15))[0])
        ai = rng.sample(AI_TAGS, rng.choice((1, 2))) if rng.random() < 0.3 else []
        tags = [f"tag-{t}" for t in user]
        for position, (tag, is_ai) in enumerate([(t, 0) for t in tags] + [(t, 1) for t in ai]):
            tag_rows.append((file_id, tag, is_ai, position))
        keys = [f".pixelport/blobs/{new_id()[:2]}/{new_id()}-photo-{index:06d}.{fmt}"
                for _ in range(versions)]
        version_id = file_id
        for number in range(1, versions + 1):
            version_id = file_id if number == 1 else new_id()  # version 1's id is the file's
            moment = created if number == 1 else updated
            snapshot = {
                "name": name, "file_type": file_type, "mime": mime, "format": fmt,
                "size": size, "width": width, "height": height, "has_alpha": alpha,
                "is_private": private, "is_published": True, "custom_coordinates": None,
                "custom_metadata": {}, "embedded_metadata": {}, "description": None,
                "tags": tags or None, "ai_tags": ai or None, "updated_at": _iso(moment)}
            version_rows.append((version_id, file_id, number, keys[number - 1],
                                 json.dumps(snapshot), moment.strftime(SQLITE_TIME)))
        file_rows.append((file_id, folder + name, folder, name, version_id, versions, keys[-1],
                          file_type, mime, fmt, size, width, height, alpha, private, True,
                          None, "{}", "{}", None, created.strftime(SQLITE_TIME),
                          updated.strftime(SQLITE_TIME)))
    built = time.monotonic()
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")  # pixelport's mode; set once per file
        # A fixture, written once: no fsync, and the indexes' pages kept in memory (the
        # files table has eleven indexes, most on random keys).
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("BEGIN IMMEDIATE")
        if connection.execute("SELECT count(*) FROM files").fetchone()[0]:
            raise SystemExit(f"bench: {db} already holds files")
        connection.executemany(
            "INSERT INTO folders (id, path, parent, name, custom_metadata, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", folder_rows)
        connection.executemany(
            "INSERT INTO files (id, path, folder, name, version_id, version_number, "
            "storage_key, file_type, mime, format, size, width, height, has_alpha, is_private, "
            "is_published, custom_coordinates, custom_metadata, embedded_metadata, description, "
            "created_at, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", file_rows)
        connection.executemany(
            "INSERT INTO file_versions (id, file_id, number, storage_key, snapshot, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", version_rows)
        connection.executemany(
            "INSERT INTO file_tags (file_id, tag, ai, position) VALUES (?, ?, ?, ?)", tag_rows)
        connection.execute("COMMIT")
        # Fold the WAL into the database file, so the server starts as on a library at rest.
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return {"files": len(file_rows), "folders": len(folder_rows),
            "file_versions": len(version_rows), "file_tags": len(tag_rows),
            "build_s": round(built - began, 2), "insert_s": round(time.monotonic() - built, 2),
            "database_mb": round(db.stat().st_size / 2**20, 1)}


# --- query plans ------------------------------------------------------------------------------

def _search_equivalent() -> tuple[str, tuple[Any, ...]]:
    """SQL for SEARCH_QUERY built by hand with pixelport's models, for when pixelport cannot
    compile the query itself: the same filter as the listing's `tags` parameter
    (`File.tags.any(...)`) and its default order (listing._sorted, ASC_CREATED)."""
    from sqlalchemy import select
    from sqlalchemy.dialects import sqlite

    from pixelport.state.models import File, FileTag

    statement = (select(File).where(File.width > 1000, File.tags.any(FileTag.tag.in_(["tag-17"])))
                 .order_by(File.created_at.asc().nulls_last(), File.id).limit(100).offset(0))
    compiled = statement.compile(dialect=sqlite.dialect(),
                                 compile_kwargs={"render_postcompile": True})
    return str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ())


def _plan(connection: sqlite3.Connection, sql: str,
          parameters: tuple[Any, ...]) -> list[str]:
    """EXPLAIN QUERY PLAN as indented lines (SQLite's tree)."""
    rows = connection.execute("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def _median_ms(connection: sqlite3.Connection, sql: str, parameters: tuple[Any, ...],
               times: int = 15) -> float:
    """The statement's own time in SQLite (all rows fetched), median of `times` runs."""
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        connection.execute(sql, parameters).fetchall()
        samples.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(samples), 2)


# The tables that grow with the library; a SCAN of one costs time in proportion to it (the
# custom metadata field definitions, read whole by every search, are a handful of rows).
BIG_TABLES = ("files", "file_tags", "file_versions", "folders")


def scans(plan: list[str]) -> list[str]:
    """The plan's lines that read a whole library table or index (SCAN, not SEARCH)."""
    found = []
    for line in plan:
        words = line.split()
        if len(words) > 1 and words[0] == "SCAN" and words[1] in BIG_TABLES:
            found.append(line.strip())
    return found


async def _capture(url: str, params: dict[str, str],
                   rounds: int) -> tuple[list[tuple[str, tuple[Any, ...]]], float | None, str]:
    """The SQL pixelport runs for one listing, and that listing's median time in process
    (SQLAlchemy and the JSON objects, no HTTP); an error text when it fails."""
    from sqlalchemy import event

    from pixelport.library.listing import Query, list_assets
    from pixelport.library.records import Urls
    from pixelport.state.db import Database

    db = Database(url)
    db.migrated = True  # `pixelport migrate` has run; migrating again would add statements
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               _many: bool) -> None:
        seen.append((statement, tuple(parameters or ())))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        query = Query.parse(params)
        urls = Urls("http://127.0.0.1")
        await list_assets(db, query, urls)
        statements = list(seen)
        for _ in range(3):  # warm up: SQLAlchemy's statement cache, SQLite's pages
            await list_assets(db, query, urls)
        samples = []
        for _ in range(rounds):
            began = time.perf_counter()
            await list_assets(db, query, urls)
            samples.append((time.perf_counter() - began) * 1000)
        return statements, round(statistics.median(samples), 2), ""
    except Exception as exc:  # the bench reports it (e.g. a missing module) and goes on
        return list(seen), None, f"{type(exc).__name__}: {exc}"
    finally:
        await db.aclose()


def query_plans(db: Path, url: str, rounds: int = 25) -> dict[str, Any]:
    """For the listing and the search: every SELECT pixelport runs (captured from its own
    code in this process), with EXPLAIN QUERY PLAN, SQLite's time for each, whole-table or
    whole-index scans, and the listing's time in process without HTTP. `url`: the database
    as pixelport's config gives it (`[database] url`, with its async driver)."""
    out: dict[str, Any] = {}
    connection = sqlite3.connect(db)
    try:
        for name, params in (("list", LIST_PARAMS), ("search", SEARCH_PARAMS)):
            statements, orm_ms, error = asyncio.run(_capture(url, params, rounds))
            entry: dict[str, Any] = {"params": params, "path": query_path(params),
                                     "in_process_ms": orm_ms, "error": error,
                                     "source": "pixelport", "statements": []}
            selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
            if error and name == "search" and not any("file_tags" in s for s, _ in selects):
                # pixelport could not compile the query: plan a hand-written equivalent.
                selects = [s for s in selects if "custom_metadata_fields" in s[0]]
                selects.append(_search_equivalent())
                entry["source"] = "hand-written equivalent (pixelport failed: see error)"
            for sql, parameters in selects:
                plan = _plan(connection, sql, parameters)
                entry["statements"].append({
                    "sql": " ".join(sql.split()), "parameters": [str(p) for p in parameters],
                    "plan": plan, "scans": scans(plan),
                    "sqlite_ms": _median_ms(connection, sql, parameters)})
            out[name] = entry
    finally:
        connection.close()
    return out


def main() -> int:
    """Populate a migrated database (for trying queries by hand)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--plans", action="store_true", help="then print the query plans")
    args = parser.parse_args()
    print(json.dumps(populate(args.db, args.files)))
    if args.plans:
        from pixelport.config import database_url

        url = database_url(f"sqlite:///{args.db.resolve()}", Path.cwd())
        print(json.dumps(query_plans(args.db, url), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
