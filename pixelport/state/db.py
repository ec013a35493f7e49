"""The database: engines, sessions for reading and for writing, migrations at start-up.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and every writing
transaction starts with `BEGIN IMMEDIATE`: it takes the write lock at once, so two worker
processes queue for it instead of one failing with "database is locked" when it upgrades a
read lock (SQLite cannot wait in that case). Readers never wait for writers under WAL.
Within one process, writers also queue on an asyncio lock for a single writer connection:
SQLite's busy handler polls with sleeps of up to 100 ms, so five pooled writers of one
process contending for the lock cost the upload bench ~9x at p99 (446 ms against 45-60 ms
queued); the busy handler is left to the rarer contention between processes.
PostgreSQL (many nodes) needs neither; there the two session factories share one engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger("pixelport.state")
T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for the lock before giving up
MIGRATIONS = Path(__file__).with_name("migrations")
# Any 64-bit number: the advisory lock that keeps two nodes from migrating at once.
MIGRATION_LOCK = 0x706978656C706F7274 & 0x7FFFFFFFFFFFFFFF


class Conflict(Exception):
    """A write lost a race with another (a unique key taken meanwhile); try again."""


class Database:
    """The library's database: `read()` and `write()` sessions."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.dialect = url.split("+", 1)[0].split(":", 1)[0]
        if self.dialect == "sqlite":
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url, immediate=False)
            self.writer = _sqlite_engine(url, immediate=True, pool_size=1)
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=10,
                                              pool_pre_ping=True)
            self.writer = self.engine
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self.writer, expire_on_commit=False)
        self.migrated = False
        self._migrating = asyncio.Lock()
        # SQLite: one writing transaction per process at a time (see the module docstring).
        self._writing: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None

    async def ready(self) -> None:
        """Migrate first if nobody has yet (an app run without its lifespan, a script)."""
        if not self.migrated:
            async with self._migrating:
                if not self.migrated:
                    await self.migrate()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading."""
        await self.ready()
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one writing transaction, committed on leaving (rolled back on error)."""
        await self.ready()
        if self._writing is None:
            async with self._write() as session, session.begin():
                yield session
            return
        async with self._writing, self._write() as session, session.begin():
            yield session

    async def retrying(self, work: Callable[[AsyncSession], Awaitable[T]],
                       attempts: int = 5) -> T:
        """Run `work` in a writing transaction, again when it lost a race (`Conflict`, or a
        unique key or serialisation failure from the database)."""
        for attempt in range(attempts):
            try:
                async with self.write() as session:
                    return await work(session)
            except (Conflict, IntegrityError, OperationalError) as exc:
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                log.info("write lost a race (%s); trying again", type(exc).__name__)
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (several processes may call it at once)."""
        async with self.writer.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)
        self.migrated = True

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, Conflict | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        message = str(exc.orig).lower()
        return "locked" in message or "serializ" in message or "deadlock" in message
    return False


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int = 5) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
                                 pool_size=pool_size)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        # Transactions are begun by the listener below, not by the driver's own guesswork.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
