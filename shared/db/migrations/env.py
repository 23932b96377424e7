"""Alembic environment: runs the migrations against the URL given by `shared.db.engine.upgrade`."""

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

# Each import registers its tables on SQLModel.metadata.
import shared.db.archive_models  # noqa: F401  (catalog, versions, corrections)
import shared.db.integrity_models  # noqa: F401  (the archive's proofs: audits, PDF facts)
import shared.db.models  # noqa: F401  (dossiers, files, sync state)
import shared.db.web_models  # noqa: F401  (web accounts, sessions, access log)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                     poolclass=pool.NullPool)
    with connectable.connect() as connection:
        # Batch mode lets later migrations alter tables on SQLite too.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
