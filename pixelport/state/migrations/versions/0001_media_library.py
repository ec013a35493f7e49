"""the media library

Revision ID: 0001
Revises: 
Create Date: 2026-12-03 21:41:24.592534
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

def upgrade() -> None:
    """Apply this migration."""

    op.create_table('bulk_jobs',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('purge_request_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_jobs'))
    )
    op.create_table('custom_metadata_fields',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_metadata_fields')),
    sa.UniqueConstraint('name', name=op.f('uq_custom_metadata_fields_name'))
    )
    op.create_table('files',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('folder', sa.String(length=1024), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version_id', sa.String(length=24), nullable=False),
    sa.Column('version_number', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('file_type', sa.String(length=16), nullable=False),
    sa.Column('mime', sa.String(length=128), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('has_alpha', sa.Boolean(), nullable=False),
    sa.Column('is_private', sa.Boolean(), nullable=False),
    sa.Column('is_published', sa.Boolean(), nullable=False),
    sa.Column('custom_coordinates', sa.String(length=64), nullable=True),
    sa.Column('custom_metadata', sa.JSON(), nullable=False),
    sa.Column('embedded_metadata', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_files')),
    sa.UniqueConstraint('path', name=op.f('uq_files_path'))
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_files_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_file_type'), ['file_type'], unique=False)
        batch_op.create_index('ix_files_folder_created_at', ['folder', 'created_at'], unique=False)
        batch_op.create_index('ix_files_folder_name', ['folder', 'name'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_format'), ['format'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_height'), ['height'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_is_private'), ['is_private'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_size'), ['size'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_updated_at'), ['updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_files_width'), ['width'], unique=False)

    op.create_table('folders',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('parent', sa.String(length=1024), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('custom_metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_folders')),
    sa.UniqueConstraint('path', name=op.f('uq_folders_path'))
    )
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_folders_parent'), ['parent'], unique=False)

    op.create_table('named_transformations',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('transformation', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_named_transformations')),
    sa.UniqueConstraint('name', name=op.f('uq_named_transformations_name'))
    )
    op.create_table('retired_paths',
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('path', name=op.f('pk_retired_paths'))
    )
    op.create_table('upload_tokens',
    sa.Column('token', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_upload_tokens'))
    )
    with op.batch_alter_table('upload_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('file_tags',
    sa.Column('file_id', sa.String(length=24), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('ai', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_file_tags_file_id_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('file_id', 'tag', 'ai', name=op.f('pk_file_tags'))
    )
    with op.batch_alter_table('file_tags', schema=None) as batch_op:
        batch_op.create_index('ix_file_tags_tag', ['tag'], unique=False)

    op.create_table('file_versions',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('file_id', sa.String(length=24), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_file_versions_file_id_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_versions')),
    sa.UniqueConstraint('file_id', 'number', name=op.f('uq_file_versions_file_id_number'))
    )
    with op.batch_alter_table('file_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_versions_file_id'), ['file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_versions_storage_key'), ['storage_key'], unique=False)

def downgrade() -> None:
    """Undo this migration."""

    with op.batch_alter_table('file_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_versions_storage_key'))
        batch_op.drop_index(batch_op.f('ix_file_versions_file_id'))

    op.drop_table('file_versions')
    with op.batch_alter_table('file_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_file_tags_tag')

    op.drop_table('file_tags')
    with op.batch_alter_table('upload_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_tokens_expires_at'))

    op.drop_table('upload_tokens')
    op.drop_table('retired_paths')
    op.drop_table('named_transformations')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_folders_parent'))

    op.drop_table('folders')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_files_width'))
        batch_op.drop_index(batch_op.f('ix_files_updated_at'))
        batch_op.drop_index(batch_op.f('ix_files_size'))
        batch_op.drop_index(batch_op.f('ix_files_name'))
        batch_op.drop_index(batch_op.f('ix_files_is_private'))
        batch_op.drop_index(batch_op.f('ix_files_height'))
        batch_op.drop_index(batch_op.f('ix_files_format'))
        batch_op.drop_index('ix_files_folder_name')
        batch_op.drop_index('ix_files_folder_created_at')
        batch_op.drop_index(batch_op.f('ix_files_file_type'))
        batch_op.drop_index(batch_op.f('ix_files_created_at'))

    op.drop_table('files')
    op.drop_table('custom_metadata_fields')
    op.drop_table('bulk_jobs')

