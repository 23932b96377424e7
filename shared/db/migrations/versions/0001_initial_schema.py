# mypy: disable-error-code="attr-defined"
"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('backfill_window',
    sa.Column('madonvi', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tungay', sa.Date(), nullable=False),
    sa.Column('denngay', sa.Date(), nullable=False),
    sa.Column('dossiers', sa.Integer(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('madonvi', 'tungay', 'denngay')
    )
    op.create_table('ho_so',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mahoso', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('madonvi', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tentochuccanhan', sa.Text(), nullable=False),
    sa.Column('ngaynhan', sa.Date(), nullable=True),
    sa.Column('mathutuc', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tenthutuc', sa.Text(), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ho_so', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ho_so_madonvi'), ['madonvi'], unique=False)
        batch_op.create_index(batch_op.f('ix_ho_so_mahoso'), ['mahoso'], unique=True)
        batch_op.create_index(batch_op.f('ix_ho_so_ngaynhan'), ['ngaynhan'], unique=False)

    op.create_table('service_status',
    sa.Column('instance', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('service', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_progress_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('instance')
    )
    with op.batch_alter_table('service_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_status_service'), ['service'], unique=False)

    op.create_table('sync_state',
    sa.Column('mahoso', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('madonvi', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('publish_count', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_reason', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('mahoso')
    )
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.create_index('ix_sync_state_unit_status', ['madonvi', 'status'], unique=False)

    op.create_table('tai_lieu',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ho_so_id', sa.Integer(), nullable=False),
    sa.Column('mahoso', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('matailieu', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tentailieu', sa.Text(), nullable=False),
    sa.Column('ten_file', sa.Text(), nullable=False),
    sa.Column('url_file', sa.Text(), nullable=False),
    sa.Column('object_key', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('content_type_mismatch', sa.Boolean(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ho_so_id'], ['ho_so.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('object_key', name='uq_tai_lieu_object_key')
    )
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tai_lieu_ho_so_id'), ['ho_so_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tai_lieu_mahoso'), ['mahoso'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tai_lieu_mahoso'))
        batch_op.drop_index(batch_op.f('ix_tai_lieu_ho_so_id'))

    op.drop_table('tai_lieu')
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_state_unit_status')

    op.drop_table('sync_state')
    with op.batch_alter_table('service_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_status_service'))

    op.drop_table('service_status')
    with op.batch_alter_table('ho_so', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ho_so_ngaynhan'))
        batch_op.drop_index(batch_op.f('ix_ho_so_mahoso'))
        batch_op.drop_index(batch_op.f('ix_ho_so_madonvi'))

    op.drop_table('ho_so')
    op.drop_table('backfill_window')
