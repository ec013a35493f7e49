"""The library tests' databases: a real PostgreSQL server per session, SQLite per test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.databases import PostgresServer

pytestmark = pytest.mark.integration


async def _ask(url: str, query: str) -> object:
    connection = await asyncpg.connect(url, timeout=30)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def ask(url: str, query: str) -> object:
    """The single value a query returns, asked with asyncpg."""
    return asyncio.run(_ask(url, query))


def test_postgres_creates_separate_databases(postgres_server: PostgresServer) -> None:
    """Each new database has its own name, on the session's server, reachable with asyncpg."""
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    for url in (first, second):
        base, name = url.rsplit("/", 1)
        assert base == f"postgresql://postgres@127.0.0.1:{postgres_server.port}"
        assert ask(url, "SELECT 1") == 1
        assert ask(url, "SELECT current_database()") == name
    # A table made in one database is not in the other.
    asyncio.run(_ask(first, "CREATE TABLE only_here (id integer)"))
    assert ask(first, "SELECT to_regclass('only_here') IS NOT NULL") is True
    assert ask(second, "SELECT to_regclass('only_here') IS NOT NULL") is False


def test_postgres_settings(postgres_server: PostgresServer) -> None:
    """The server is the throwaway one configured for tests: UTF-8, UTC, no fsync."""
    url = postgres_server.url()
    assert ask(url, "SHOW server_encoding") == "UTF8"
    assert ask(url, "SHOW TimeZone") == "UTC"
    assert ask(url, "SHOW fsync") == "off"
    assert ask(url, "SHOW max_connections") == "200"
    assert ask(url, "SHOW data_directory") == str(postgres_server.data)


def test_database_url(database_url: str, request: pytest.FixtureRequest,
                      tmp_path: Path) -> None:
    """The fixture gives a SQLite file URL, then a new PostgreSQL database."""
    engine = request.node.callspec.id
    if engine == "sqlite":
        assert database_url == f"sqlite:///{tmp_path}/library.db"
        assert database_url.startswith("sqlite:////")  # an absolute path
        assert not (tmp_path / "library.db").exists()
    else:
        assert engine == "postgresql"
        assert database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert ask(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
