"""Alembic environment: run on the engine pepsctl hands over (never a URL from a file)."""

from alembic import context
from sqlmodel import SQLModel

import pepsctl.store.models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("pepsctl runs its migrations online only")
run_migrations_online()
