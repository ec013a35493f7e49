"""The database: engines, read sessions, writing transactions, migrations at start-up.

A change is a plain function of a (synchronous) SQLAlchemy `Session`, run whole as one
transaction by `transaction()` or `retrying()`:

- SQLite (the embedded default) runs every writing transaction of a process on one thread of
  its own, on one pysqlite connection (`writer.WriteThread`, which also commits transactions
  that queued up together as one): one thread hop per transaction instead of one per
  statement. Through aiosqlite each statement costs a hop there and back (~70 us, a dozen
  per upload): the upload's transaction took 3.3 ms of wall time, run this way 1.15 ms, and
  transactions queue one after another anyway. Transactions begin with `BEGIN IMMEDIATE`: the
  write lock at once, so two worker processes queue for it (busy timeout) instead of one
  failing with "database is locked" when it upgrades a read lock. WAL: readers (aiosqlite,
  `read()`) never wait for the writer.
- PostgreSQL (many nodes) runs the same function with `AsyncSession.run_sync` on asyncpg.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from pixelport.state.writer import WriteThread

log = logging.getLogger("pixelport.state")
T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for the lock before giving up
MIGRATIONS = Path(__file__).with_name("migrations")
# Any 64-bit number: the advisory lock that keeps two nodes from migrating at once.
MIGRATION_LOCK = 0x706978656C706F7274 & 0x7FFFFFFFFFFFFFFF


class Conflict(Exception):
    """A write lost a race with another (a unique key taken meanwhile); try again."""


class Database:
    """The library's database: `read()` sessions and writing transactions."""

    def __init__(self, url: str, *, pool_size: int = 5, schema: str | None = None) -> None:
        """`schema` (PostgreSQL): the tables live in it (a sub-account's, made at the first
        migration); every connection's search path is set to it."""
        self.url = url
        self.schema = schema
        self.dialect = url.split("+", 1)[0].split(":", 1)[0]
        self.sync_engine: Engine | None = None
        self._writes: WriteThread | None = None
        if self.dialect == "sqlite":
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
            self.sync_engine = _sqlite_sync_engine(url)
            self._writes = WriteThread(self.sync_engine)
        else:
            settings = {"search_path": f'"{schema}"'} if schema else {}
            # A server that does not answer fails a connection in CONNECT_TIMEOUT seconds
            # (asyncpg waits 60 by default): delivery then moves on to the origins.
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=10,
                                              pool_pre_ping=True,
                                              connect_args={"server_settings": settings,
                                                            "timeout": CONNECT_TIMEOUT})
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self.migrated = False
        self._migrating = asyncio.Lock()

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

    async def transaction(self, work: Callable[[Session], T],
                          first: Callable[[], object] | None = None) -> T:
        """Run `work` in one writing transaction, committed when it returns (rolled back
        when it raises). Once begun it finishes even if the caller is cancelled meanwhile:
        the caller then cannot tell whether it committed (see `Library.upload`).

        `first`: blocking work to do before the transaction begins (an upload's bytes made
        durable): on SQLite in the write thread, so the two take one thread hop, not two
        (under load each hop also queues for the GIL); elsewhere in a worker thread."""
        await self.ready()
        if self._writes is None:
            if first is not None:
                await asyncio.to_thread(first)
            async with self._read() as session, session.begin():
                return await session.run_sync(work)
        future = asyncio.wrap_future(self._writes.transaction(work, first))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])  # the connection is the thread's until it is done
            raise

    async def retrying(self, work: Callable[[Session], T], attempts: int = 5,
                       first: Callable[[], object] | None = None) -> T:
        """`transaction(work, first)`, again (without `first`, done once) when it lost a
        race (`Conflict`, or a unique key or serialisation failure from the database)."""
        for attempt in range(attempts):
            try:
                return await self.transaction(work, first if attempt == 0 else None)
            except (Conflict, IntegrityError, OperationalError) as exc:
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                log.info("write lost a race (%s); trying again", type(exc).__name__)
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (several processes may call it at once)."""
        if self.sync_engine is not None:
            writes = self._writes
            assert writes is not None

            def upgrade() -> None:
                conn = writes.connect()
                with conn.begin():  # BEGIN IMMEDIATE: one process at a time
                    _upgrade(conn)

            await asyncio.wrap_future(writes.call(upgrade))
        else:
            async with self.engine.begin() as conn:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                if self.schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                await conn.run_sync(_upgrade)
        self.migrated = True

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self._writes is not None:
            await asyncio.to_thread(self._writes.close)


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (down, restarting, cut off), rather
    than that a statement failed."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # asyncpg's own connect errors reach us unwrapped, as do refused and reset sockets.
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    kind = type(exc)
    return kind.__module__.startswith("asyncpg.exceptions") and "Connection" in kind.__name__


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, Conflict | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        message = str(exc.orig).lower()
        return "locked" in message or "serializ" in message or "deadlock" in message
    return False


def _sqlite_engine(url: str) -> AsyncEngine:
    """The reading engine (aiosqlite)."""
    engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine.sync_engine, "connect", _sqlite_connect)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _sqlite_sync_engine(url: str) -> Engine:
    """The writing engine (pysqlite): one connection, used by the write thread only."""
    engine = create_engine(make_url(url).set(drivername="sqlite"), pool_size=1,
                           max_overflow=0,
                           connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_connect)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # On the driver's connection: through exec_driver_sql this one statement cost a
        # twentieth of an upload's transaction.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]

    return engine


def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
    # Transactions are begun by the engines' listeners, not by the driver's own guesswork.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 16 MB of page cache per connection (SQLite's default is 2 MB): a searchQuery over
    # 100,000 files reads pages all over its indexes, and missed the small cache on most of
    # them (the bench's search went from 55 to 70 requests/s). Caches fill only as used.
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
