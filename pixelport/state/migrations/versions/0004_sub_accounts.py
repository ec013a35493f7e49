"""sub-accounts made in the dashboard

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table('sub_accounts',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('prefix', sa.String(length=255), nullable=False),
    sa.Column('domains', sa.Text(), nullable=False),
    sa.Column('private_key', sa.LargeBinary(), nullable=False),
    sa.Column('public_key', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sub_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_sub_accounts_name')),
    sa.UniqueConstraint('prefix', name=op.f('uq_sub_accounts_prefix'))
    )


def downgrade() -> None:
    """Undo this migration."""
    op.drop_table('sub_accounts')
