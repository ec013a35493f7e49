"""A pixelport with the media library on a given database, and ImageKit's Python SDK on it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekitio import ImageKit

from tests.helpers import Pixelport

PRIVATE_KEY = "private_library_key"
PUBLIC_KEY = "public_library_key"


@dataclass
class Library:
    """A running server, its library folder, and an SDK client pointed at it."""

    pp: Pixelport
    root: Path
    client: ImageKit
    database_url: str

    def get(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """GET a delivery URL the API returned (absolute) or a path."""
        return self.pp.get(url.removeprefix(self.pp.url), headers)

    def blobs(self) -> list[Path]:
        """Every stored blob and partial upload of the library folder."""
        internal = self.root / ".pixelport"
        return sorted(p for p in internal.rglob("*") if p.is_file()) if internal.exists() else []


def library_config(root: Path, database_url: str, **extra: Any) -> dict[str, Any]:
    """A config with the library in `root` on `database_url`."""
    config: dict[str, Any] = {
        "library": {"dir": str(root)},
        "database": {"url": database_url},
        "security": {"private_key": PRIVATE_KEY, "public_key": PUBLIC_KEY,
                     "allow_private_networks": True},
    }
    for key, value in extra.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def client(pp: Pixelport) -> ImageKit:
    """The Python SDK on this server, retries off (a failure must show at once)."""
    return ImageKit(private_key=PRIVATE_KEY, base_url=pp.url, max_retries=0)


def row_count(database_url: str, table: str) -> int:
    """Rows in a table, read with the database's own client (SQLite) or asyncpg."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1]) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    import asyncio

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return asyncio.run(count())
