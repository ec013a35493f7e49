"""Alembic's environment: migrations run on the connection `Database.migrate` hands over."""

from __future__ import annotations

from alembic import context

from pixelport.state.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `pixelport migrate` (they need a connection)")
# render_as_batch: SQLite alters tables by copying them; Alembic's batch mode does that.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
