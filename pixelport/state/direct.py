"""Inserts and key lookups run straight on SQLite's DBAPI connection, inside a transaction
begun by SQLAlchemy (a Session's connection).

An upload's transaction through SQLAlchemy Core took 0.54 ms on one core, 0.13 ms of it in
SQLite itself; the rest was building execution contexts, and it all holds the GIL the event
loop needs. For the few statements every upload runs, the SQL is written once from the table's
metadata and values go through the column types' own bind processors
(`TypeEngine.bind_processor`, public API), so a row is stored exactly as SQLAlchemy would store
it (tests/test_databases.py compares the two). On any other database (PostgreSQL through
asyncpg) the same calls run as Core statements.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, FromClause, Table, insert, select
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any] | None


def _is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def _driver(connection: Connection) -> Any:
    """The sqlite3.Connection under SQLAlchemy's, in the transaction SQLAlchemy began."""
    return connection.connection.driver_connection


class Insert:
    """Plain INSERTs of whole rows (every column given) into one table."""

    def __init__(self, table: FromClause) -> None:
        assert isinstance(table, Table)
        self.table = table
        self.core = insert(table)
        self.columns = [c.key for c in table.columns]
        self._plans: dict[str, tuple[str, list[Processor]]] = {}

    def _plan(self, dialect: Dialect) -> tuple[str, list[Processor]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            quote = dialect.identifier_preparer.quote
            names = ", ".join(quote(c.name) for c in self.table.columns)
            marks = ", ".join("?" for _ in self.table.columns)
            # Identifiers from the table's metadata, quoted by the dialect; values are bound.
            sql = f"INSERT INTO {quote(self.table.name)} ({names}) VALUES ({marks})"  # noqa: S608
            plan = self._plans[dialect.name] = (
                sql, [c.type.bind_processor(dialect) for c in self.table.columns])
        return plan

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` (each naming every column) in the connection's transaction."""
        if not rows:
            return
        if not _is_sqlite(connection):
            connection.execute(self.core, [dict(r) for r in rows])
            return
        sql, processors = self._plan(connection.dialect)
        params = [[value if process is None else process(value)
                   for process, value in zip(processors, (r[k] for k in self.columns),
                                             strict=True)]
                  for r in rows]
        if len(params) == 1:
            _driver(connection).execute(sql, params[0])
        else:
            _driver(connection).executemany(sql, params)


class Present:
    """Which of some values a column holds: one `SELECT col … WHERE col IN (…)` (for columns
    whose stored form reads back as given: strings, numbers)."""

    def __init__(self, column: Any) -> None:  # a mapped attribute or a Column
        self.column: Column[Any] = column.property.columns[0] if hasattr(column, "property") \
            else column
        self._process: dict[str, Processor] = {}

    def run(self, connection: Connection, values: Collection[Any]) -> set[Any]:
        """The subset of `values` found in the column."""
        if not values:
            return set()
        if not _is_sqlite(connection):
            statement = select(self.column).where(self.column.in_(list(values)))
            return set(connection.scalars(statement).all())
        dialect = connection.dialect
        if dialect.name not in self._process:
            self._process[dialect.name] = self.column.type.bind_processor(dialect)
        process = self._process[dialect.name]
        quote = dialect.identifier_preparer.quote
        table = self.column.table
        assert isinstance(table, Table)
        name = quote(self.column.name)
        marks = ", ".join("?" for _ in values)  # identifiers as above; values bound
        sql = f"SELECT {name} FROM {quote(table.name)} WHERE {name} IN ({marks})"  # noqa: S608
        params = [v if process is None else process(v) for v in values]
        return {row[0] for row in _driver(connection).execute(sql, params)}
