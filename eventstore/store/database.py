"""Engines and schema: turning a database URL into a ready SQLAlchemy engine.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` for writers, so concurrent appenders queue on
the database lock rather than failing on upgrade from a read lock. PostgreSQL gets a pool fit
for Lambda (one connection per container, checked before use).
"""

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from eventstore.errors import ConfigurationError, SchemaNotReadyError
from eventstore.store.schema import SCHEMA_REVISION, metadata

ENV_URL = "EVENTSTORE_DB_URL"
DEFAULT_FILE = "eventstore.db"
WRITE = "eventstore_write"  # execution option: this connection's transactions will write
APPEND_LOCK_ID = 0x5E7E_0001  # the advisory lock that serialises appends on PostgreSQL
# A pooled PostgreSQL connection idle this long (seconds) is pinged before use.
IDLE_PING_DEFAULT = "10"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# SQLite copies the write-ahead log back into the database every this many pages (its default
# is 1,000, 4 MB). A page that every commit changes (an index's last leaf, the head of the
# log) is copied back once per checkpoint, not once per commit: at 10,000 pages an append
# wrote 4.9 KB per event instead of 6.9 (batch 1000) and 20.2 instead of 24.9 (batch 10),
# and took 8-10 % less time. Each commit still waits for its fsync (synchronous=FULL).
WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the log file is cut back to after a checkpoint


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else $EVENTSTORE_DB_URL, else a SQLite file here."""
    chosen = url or os.environ.get(ENV_URL)
    if chosen:
        return chosen
    return f"sqlite:///{Path.cwd() / DEFAULT_FILE}"


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"not a database URL: {url!r} (try sqlite:///path/to/file.db or "
            "postgresql+psycopg://user:pass@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"unsupported database {backend!r}: use sqlite or postgresql")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str, *, pool: str | None = None) -> Engine:
    """An engine for `url`, configured for this library. Makes no connection."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed, pool or os.environ.get("EVENTSTORE_DB_POOL"))


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigurationError(f"folder of the SQLite file does not exist: {folder}")
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, explicitly
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE) else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: URL, pool: str | None) -> Engine:
    options: dict[str, Any] = {
        # Not pool_pre_ping: that costs a round trip on every checkout; see _ping_if_idle.
        # Appends rely on each statement seeing every transaction committed before it began
        # (see sql.py): stated per transaction ("BEGIN ISOLATION LEVEL ..."), not per session.
        "isolation_level": "READ COMMITTED",
        "connect_args": {
            "connect_timeout": 10,
            # No server-side prepared statements: they are session state, which pins an RDS
            # Proxy connection (and breaks transaction-mode PgBouncer).
            "prepare_threshold": None,
            # Notice a dead peer within about a minute instead of the kernel's two hours.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    }
    if pool == "null":
        options["poolclass"] = sa.pool.NullPool  # e.g. behind RDS Proxy, which pools for us
    elif pool not in (None, "", "single"):
        raise ConfigurationError(f"EVENTSTORE_DB_POOL={pool!r}: use 'null' or leave it unset")
    else:
        # One Lambda container handles one invocation at a time: one connection is enough.
        options.update(pool_size=1, max_overflow=0, pool_recycle=300)
    try:
        engine = sa.create_engine(url, **options)
    except NoSuchModuleError:
        raise ConfigurationError(
            "PostgreSQL needs psycopg: pip install 's3-eventstore[postgres]'"
        ) from None
    statement_timeout, lock_timeout = database_timeouts()
    timeouts = {"statement_timeout": statement_timeout, "lock_timeout": lock_timeout}
    set_timeouts = sa.text(
        "SELECT set_config('statement_timeout', :statement_timeout, true),"
        " set_config('lock_timeout', :lock_timeout, true)"
    )

    idle_ping = float(os.environ.get("EVENTSTORE_DB_IDLE_PING_SECONDS") or IDLE_PING_DEFAULT)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A pooled connection that sat idle (a Lambda container frozen between invocations,
        # a proxy or NAT that forgot it) is checked before use; a busy one is not.
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_ping:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()
        except Exception as error:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {error}") from error

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Transaction-local (SET LOCAL), so nothing outlives the transaction: a pooler may
        # hand the server connection to another client right after COMMIT.
        if connection.get_execution_options().get(WRITE):
            connection.execute(set_timeouts, timeouts)

    return engine


def database_timeouts() -> tuple[str, str]:
    """(statement_timeout, lock_timeout) for PostgreSQL writers, from the environment."""
    return (
        os.environ.get("EVENTSTORE_DB_STATEMENT_TIMEOUT") or "60s",
        os.environ.get("EVENTSTORE_DB_LOCK_TIMEOUT") or "15s",
    )


def current_revision(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases, memory and `file:` URIs."""
    parsed = parse_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


def check_sqlite_file(url: str, *, create: bool) -> None:
    """Refuse, in one line, a SQLite file no command should open: a missing one when the
    command only reads (opening it would create an empty database and report on nothing),
    a folder, a file that is not SQLite, another application's database.

    Looked at before an engine connects: connecting switches the file to WAL mode, which is
    a write to whatever file the URL names."""
    path = sqlite_file(url)
    if path is None:
        return
    if not path.exists():
        if create or not path.resolve().parent.is_dir():
            return  # (the engine names the missing folder)
        raise ConfigurationError(
            f"no database at {path}: check the path (only ingest, replay, db upgrade and demo "
            "create one)"
        )
    if path.is_dir():
        raise ConfigurationError(f"{path} is a folder, not a SQLite database file")
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise ConfigurationError(f"cannot read the database {path}: {error.strerror}") from None
    if not header:
        if create:
            return
        raise ConfigurationError(f"{path} is empty, not an eventstore database yet")
    if header != SQLITE_HEADER:
        raise ConfigurationError(f"{path} is not a SQLite database")
    tables = _sqlite_tables(path)
    if tables and "alembic_version" not in tables and "events" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ConfigurationError(
            f"{path} is not an eventstore database (it holds other tables: {shown})"
        )


def _sqlite_tables(path: Path) -> set[str]:
    # Read-only, and without the engine's connect hook (which would switch on WAL mode).
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return set()  # cannot even open it read-only: let the engine report why
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows}
    except sqlite3.OperationalError:
        return set()  # locked, say: not a verdict on the file; the engine will try
    except sqlite3.DatabaseError as error:
        raise ConfigurationError(f"{path} is a damaged SQLite database: {error}") from None
    finally:
        connection.close()


def upgrade_schema(engine: Engine) -> str:
    """Apply every migration (Alembic); return the revision the database is now at."""
    from alembic import command  # imported here: the hot ingest path never needs Alembic
    from alembic.config import Config
    from alembic.util import CommandError

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    try:
        with engine.connect() as plain:
            # On SQLite the migration takes the write lock at BEGIN, like every writer here.
            connection = (
                plain.execution_options(**{WRITE: True})
                if engine.dialect.name == "sqlite"
                else plain
            )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
            return current_revision(connection) or ""
    except CommandError as error:  # e.g. a revision newer than this code's migrations
        raise ConfigurationError(f"cannot upgrade the database: {error}") from None
    except DBAPIError as error:  # a damaged or foreign database the migrations trip over
        raise ConfigurationError(f"cannot upgrade the database: {error.orig}") from None


def ensure_schema(engine: Engine, *, auto_upgrade_sqlite: bool = True) -> None:
    """Check the schema is current. An empty or older SQLite file is upgraded on the spot;
    any other database must be upgraded by `eventstore db upgrade`. A database that is
    damaged, another application's, or newer than this code is refused with one line."""
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            revisions: Sequence[str] = []
            if "alembic_version" in tables:
                query = sa.text("SELECT version_num FROM alembic_version")
                revisions = connection.execute(query).scalars().all()
    except OperationalError as error:
        raise ConfigurationError(f"cannot open the database: {error.orig}") from None
    except DBAPIError as error:  # "file is not a database", a damaged alembic_version...
        raise ConfigurationError(f"not a usable eventstore database: {error.orig}") from None
    if "alembic_version" in tables and len(revisions) != 1:
        raise ConfigurationError(
            f"the database is damaged: alembic_version holds {len(revisions)} revisions, not one"
        )
    revision = revisions[0] if revisions else None
    if revision == SCHEMA_REVISION:
        missing = sorted(set(metadata.tables) - tables)
        if missing:
            raise ConfigurationError(
                f"the database is damaged: table {', '.join(missing)} missing "
                f"(at revision {revision})"
            )
        return
    if revision is not None and not _known_revision(revision):
        raise ConfigurationError(
            f"the database is at revision {revision!r}, which this code does not know: it was "
            f"made by a newer eventstore (this one needs {SCHEMA_REVISION}), or its "
            "alembic_version is damaged"
        )
    if revision is None and tables and engine.dialect.name == "sqlite":
        # (A PostgreSQL database may well be shared: there `db upgrade` adds our tables.)
        raise ConfigurationError(
            "the database has tables but no schema revision (alembic_version): it is "
            "another application's, or damaged"
        )
    if engine.dialect.name == "sqlite" and auto_upgrade_sqlite:
        upgrade_schema(engine)
        return
    found = f"revision {revision}" if revision else "no schema"
    raise SchemaNotReadyError(
        f"the database has {found}, this code needs {SCHEMA_REVISION}: run `eventstore db upgrade`"
    )


def _known_revision(revision: str) -> bool:
    """Whether the migrations shipped with this code include `revision`."""
    from alembic.script import ScriptDirectory  # only when the schema is not current

    import migrations

    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    return any(script.revision == revision for script in scripts.walk_revisions())
