"""origins and URL endpoints made through the accounts API

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table('account_origins',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('secrets', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_origins'))
    )
    op.create_table('account_url_endpoints',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('url_prefix', sa.String(length=255), nullable=False),
    sa.Column('origins', sa.Text(), nullable=False),
    sa.Column('url_rewriter', sa.String(length=32), nullable=True),
    sa.Column('domains', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_url_endpoints')),
    sa.UniqueConstraint('url_prefix', name=op.f('uq_account_url_endpoints_url_prefix'))
    )


def downgrade() -> None:
    """Undo this migration."""
    op.drop_table('account_url_endpoints')
    op.drop_table('account_origins')
