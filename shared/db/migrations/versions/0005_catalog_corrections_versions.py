"""document types, per-file sync reports, corrections, and every version of a dossier

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

`loai_tai_lieu` holds the one-stop catalog (a type gone from it is kept, `retired_at` set);
`tai_lieu.reported_at` is when the file was reported synced to the one-stop system; `ho_so_version`
is one row per version of a dossier ever indexed; `hieu_chinh` one row per correction sent back.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'loai_tai_lieu',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('maloaitailieu', sa.String(length=200), nullable=False),
        sa.Column('tenloaitailieu', sa.Text(), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_loai_tai_lieu_maloaitailieu', 'loai_tai_lieu', ['maloaitailieu'], unique=True)
    op.create_table(
        'ho_so_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mahoso', sa.String(length=200), nullable=False),
        sa.Column('version_hash', sa.String(length=64), nullable=False),
        sa.Column('source_hash', sa.String(length=64), nullable=False),
        sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('file_count', sa.Integer(), nullable=False),
        sa.Column('object_keys', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('mahoso', 'version_hash', name='uq_ho_so_version'),
    )
    op.create_index('ix_ho_so_version_mahoso', 'ho_so_version', ['mahoso'])
    op.create_table(
        'hieu_chinh',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('correction_id', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=10), nullable=False),
        sa.Column('mahoso', sa.String(length=200), nullable=False),
        sa.Column('madonvi', sa.String(length=200), nullable=False),
        sa.Column('matailieu', sa.String(length=200), nullable=False),
        sa.Column('ten_file', sa.Text(), nullable=False),
        sa.Column('object_key', sa.String(length=1024), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.Column('url_file', sa.Text(), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_hieu_chinh_correction_id', 'hieu_chinh', ['correction_id'], unique=True)
    op.create_index('ix_hieu_chinh_mahoso', 'hieu_chinh', ['mahoso'])
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.drop_column('reported_at')
    op.drop_index('ix_hieu_chinh_mahoso', table_name='hieu_chinh')
    op.drop_index('ix_hieu_chinh_correction_id', table_name='hieu_chinh')
    op.drop_table('hieu_chinh')
    op.drop_index('ix_ho_so_version_mahoso', table_name='ho_so_version')
    op.drop_table('ho_so_version')
    op.drop_index('ix_loai_tai_lieu_maloaitailieu', table_name='loai_tai_lieu')
    op.drop_table('loai_tai_lieu')
