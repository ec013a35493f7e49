"""video facts of library files: duration, codecs, bit rate

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duration', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('video_codec', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('audio_codec', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('bit_rate', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_files_duration'), ['duration'], unique=False)


def downgrade() -> None:
    """Undo this migration."""
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_files_duration'))
        batch_op.drop_column('bit_rate')
        batch_op.drop_column('audio_codec')
        batch_op.drop_column('video_codec')
        batch_op.drop_column('duration')
