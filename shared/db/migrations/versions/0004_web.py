"""web application: accounts, sessions, access log, and search indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The applicant-name search compares a diacritic-free, lower-case form of `ho_so.tentochuccanhan`
(services/web/folding.py builds the same expression the queries use). On PostgreSQL it is indexed with
trigrams when pg_trgm can be created (it is a trusted extension: the database's owner may create it), so
a substring search uses the index; without pg_trgm a plain btree serves prefix searches only. SQLite
(the demo) has no such index: it folds in Python and scans.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from services.web.folding import folded_sql

    op.create_table('web_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('units', sa.Text(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_web_user_username', 'web_user', ['username'], unique=True)
    op.create_table('web_session',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['web_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_web_session_user_id', 'web_session', ['user_id'], unique=False)
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('mahoso', sa.String(length=200), nullable=True),
    sa.Column('tai_lieu_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_access_log_at', 'access_log', ['at'], unique=False)
    op.create_index('ix_access_log_login', 'access_log', ['username', 'ip', 'at'], unique=False)
    op.create_index('ix_access_log_mahoso', 'access_log', ['mahoso'], unique=False)

    # The dashboard counts synced dossiers per unit and day: (madonvi, synced_at) answers it from the index.
    op.create_index('ix_ho_so_madonvi_synced_at', 'ho_so', ['madonvi', 'synced_at'], unique=False)
    # Search results come newest received first: the index gives that order without sorting every match.
    postgresql = op.get_bind().dialect.name == 'postgresql'
    order = [sa.text('ngaynhan DESC NULLS LAST'), sa.text('id DESC')] if postgresql else ['ngaynhan', 'id']
    op.create_index('ix_ho_so_ngaynhan_desc', 'ho_so', order, unique=False)
    op.create_index('ix_ho_so_mathutuc', 'ho_so', ['mathutuc'], unique=False)
    # The dashboard: the newest dossier seen per unit, and the few dossiers not synced (in flight or parked).
    op.create_index('ix_sync_state_unit_first_seen', 'sync_state', ['madonvi', 'first_seen_at'], unique=False)
    op.create_index('ix_sync_state_unit_unsynced', 'sync_state', ['madonvi', 'status', 'last_reason'], unique=False,
                    postgresql_where=sa.text("status <> 'synced'"), sqlite_where=sa.text("status <> 'synced'"))
    if not postgresql:
        return
    # mahoso prefix search (LIKE 'x%') needs pattern ops unless the database's collation is C.
    op.execute('CREATE INDEX ix_ho_so_mahoso_pattern ON ho_so (mahoso varchar_pattern_ops)')
    folded = folded_sql('tentochuccanhan')
    bind = op.get_bind()
    with bind.begin_nested():
        try:
            bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
            trigram = True
        except sa.exc.DBAPIError:
            trigram = False
    if trigram:
        op.execute(f'CREATE INDEX ix_ho_so_ten_folded_trgm ON ho_so USING gin (({folded}) gin_trgm_ops)')
    else:
        op.execute(f'CREATE INDEX ix_ho_so_ten_folded ON ho_so (({folded}) text_pattern_ops)')


def downgrade() -> None:
    op.execute('DROP INDEX IF EXISTS ix_ho_so_ten_folded_trgm')
    op.execute('DROP INDEX IF EXISTS ix_ho_so_ten_folded')
    op.execute('DROP INDEX IF EXISTS ix_ho_so_mahoso_pattern')
    op.drop_index('ix_sync_state_unit_unsynced', table_name='sync_state')
    op.drop_index('ix_sync_state_unit_first_seen', table_name='sync_state')
    op.drop_index('ix_ho_so_mathutuc', table_name='ho_so')
    op.drop_index('ix_ho_so_ngaynhan_desc', table_name='ho_so')
    op.drop_index('ix_ho_so_madonvi_synced_at', table_name='ho_so')
    op.drop_table('access_log')
    op.drop_table('web_session')
    op.drop_table('web_user')
