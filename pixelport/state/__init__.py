"""The media library's state: SQLAlchemy models, the database, Alembic migrations.

Knows no HTTP request and no worker supervisor; `pixelport.library` builds on it.
"""
