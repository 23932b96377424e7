"""archive integrity: file_audit, audit_run, pdf_facts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('file_audit',
    sa.Column('object_key', sa.String(length=1024), nullable=False),
    sa.Column('mahoso', sa.String(length=200), nullable=False),
    sa.Column('madonvi', sa.String(length=200), nullable=False),
    sa.Column('result', sa.String(length=20), nullable=False),
    sa.Column('expected_sha256', sa.String(length=64), nullable=False),
    sa.Column('seen_sha256', sa.String(length=64), nullable=True),
    sa.Column('seen_size', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('audited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('object_key')
    )
    with op.batch_alter_table('file_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_audit_mahoso'), ['mahoso'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_audit_madonvi'), ['madonvi'], unique=False)
        batch_op.create_index(batch_op.f('ix_file_audit_audited_at'), ['audited_at'], unique=False)

    op.create_table('audit_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('checked', sa.Integer(), nullable=False),
    sa.Column('ok', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('missing', sa.Integer(), nullable=False),
    sa.Column('unreadable', sa.Integer(), nullable=False),
    sa.Column('untracked', sa.Integer(), nullable=False),
    sa.Column('bytes_read', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )

    op.create_table('pdf_facts',
    sa.Column('object_key', sa.String(length=1024), nullable=False),
    sa.Column('mahoso', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('is_pdf', sa.Boolean(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=True),
    sa.Column('signed', sa.Boolean(), nullable=False),
    sa.Column('pdfa', sa.String(length=20), nullable=True),
    sa.Column('problem', sa.Text(), nullable=True),
    sa.Column('inspected_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('object_key')
    )
    with op.batch_alter_table('pdf_facts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pdf_facts_mahoso'), ['mahoso'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pdf_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pdf_facts_mahoso'))
    op.drop_table('pdf_facts')
    op.drop_table('audit_run')
    with op.batch_alter_table('file_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_audit_audited_at'))
        batch_op.drop_index(batch_op.f('ix_file_audit_madonvi'))
        batch_op.drop_index(batch_op.f('ix_file_audit_mahoso'))
    op.drop_table('file_audit')
