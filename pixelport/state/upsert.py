"""`INSERT … ON CONFLICT DO NOTHING` in the dialect of the session's database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def insert_ignore(session: Session, model: Any, values: dict[str, Any],
                  *conflict: str) -> Insert:
    """An insert of `values` that does nothing when a row with the same `conflict` key exists."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).values(**values).on_conflict_do_nothing(
            index_elements=list(conflict))
    return sqlite.insert(model).values(**values).on_conflict_do_nothing(
        index_elements=list(conflict))
