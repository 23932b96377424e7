"""versions never go backwards: the source version of each dossier, superseded files kept

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

`ho_so.source_hash` names the version a row holds (with `fetched_at`, when the fetcher saw it);
`tai_lieu.superseded_at` / `superseded_reason` mark a file a newer version no longer lists, instead of
deleting its row (DESIGN, delivery rule 8).
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ho_so', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_hash', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_hash', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('superseded_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tai_lieu', schema=None) as batch_op:
        batch_op.drop_column('superseded_reason')
        batch_op.drop_column('superseded_at')
        batch_op.drop_column('source_hash')
    with op.batch_alter_table('ho_so', schema=None) as batch_op:
        batch_op.drop_column('source_hash')
