"""Alembic environment. `eventstore db upgrade` hands in a live connection; the `alembic`
command line builds one from EVENTSTORE_DB_URL or sqlalchemy.url."""

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from eventstore.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("EVENTSTORE_DB_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set EVENTSTORE_DB_URL or sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=os.environ.get("EVENTSTORE_DB_URL") or config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
