"""A throwaway PostgreSQL for tests and benchmarks, and fresh databases built by the migrations.

`PostgresServer` runs `initdb` and `pg_ctl` in a temporary directory, listening only on a Unix
socket there (never on a network port), and removes everything on `stop()`. As root the server
runs as the `postgres` OS user (created when missing): PostgreSQL refuses to run as root.

`TestDatabases` turns a server URL into one database per test: a template database is built
once by running the Alembic migrations (`eventstore db upgrade`'s code path), and every test
gets `CREATE DATABASE ... TEMPLATE` of it, dropped afterwards. With `EVENTSTORE_TEST_POSTGRES_URL`
set, an existing server is used the same way (its role must be allowed to create databases).
"""

import contextlib
import getpass
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from eventstore.store.database import create_engine, upgrade_schema

ENV_URL = "EVENTSTORE_TEST_POSTGRES_URL"
SERVER_USER = "postgres"  # the OS user the server runs as when we are root
TEST_SETTINGS = {
    # A test server may lose data on a crash; it is thrown away anyway.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be started or reached; the message says why."""


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for initdb in candidates:
        if (initdb.parent / "pg_ctl").exists():
            return initdb.parent
    raise PostgresUnavailableError(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin; "
        f"install Debian's postgresql package or set {ENV_URL}"
    )


def _ensure_os_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


class PostgresServer:
    """One PostgreSQL server in a temporary directory, reachable on a Unix socket there."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.bin = find_binaries()
        self.root: Path | None = None
        self.as_root = os.geteuid() == 0
        self.user = SERVER_USER if self.as_root else getpass.getuser()

    @property
    def socket_dir(self) -> Path:
        if self.root is None:
            raise PostgresUnavailableError("the server is not started")
        return self.root

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database as the superuser."""
        return f"postgresql+psycopg://postgres@/postgres?host={self.socket_dir}"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        argv = list(command)
        if self.as_root:
            argv = ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"{Path(command[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def start(self) -> "PostgresServer":
        # A short path: the socket path must fit in sun_path (about 100 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="espg-", dir="/tmp"))
        if self.as_root:
            _ensure_os_user(self.user)
            shutil.chown(self.root, user=self.user)
        data = self.root / "data"
        initdb = [
            str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-sync",
        ]  # fmt: skip
        try:
            try:
                # A natural-language default collation, as on RDS (en_US.UTF-8): the key
                # columns must then carry their own "C" collation for prefix ranges to work.
                self._run(
                    *initdb, "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"
                )
            except PostgresUnavailableError:  # before PostgreSQL 15, or built without ICU
                shutil.rmtree(data, ignore_errors=True)
                self._run(*initdb, "--locale=C")
            options = " ".join(
                [
                    "-c listen_addresses=''",
                    f"-c unix_socket_directories='{self.root}'",
                    *(f"-c {name}={value}" for name, value in self.settings.items()),
                ]
            )
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                "-o", options, "-w", "-t", "60", "start",
            )  # fmt: skip
        except (PostgresUnavailableError, OSError, subprocess.SubprocessError) as error:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise PostgresUnavailableError(f"cannot start PostgreSQL: {error}\n{tail}") from error
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailableError, subprocess.SubprocessError):
                self._run(
                    str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"
                )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as psycopg itself takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


class TestDatabases:
    """Fresh databases, each a copy of a template built once by running the migrations."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.tag = uuid.uuid4().hex[:10]
        self.template = f"es_template_{self.tag}"
        self._count = 0

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.admin_url), autocommit=True, connect_timeout=10)

    def build_template(self) -> None:
        with self._admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        engine = create_engine(with_database(self.admin_url, self.template))
        try:
            upgrade_schema(engine)
        finally:
            engine.dispose()

    def create(self) -> str:
        """A new database with the current schema; returns its SQLAlchemy URL."""
        self._count += 1
        name = f"es_{self.tag}_{os.getpid()}_{self._count}"
        with self._admin() as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.template)
                )
            )
        return with_database(self.admin_url, name)

    def create_empty(self) -> str:
        """A new database with no schema at all (for `eventstore db upgrade`)."""
        self._count += 1
        name = f"es_{self.tag}_{os.getpid()}_{self._count}_empty"
        with self._admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return with_database(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = make_url(url).database or ""
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextlib.contextmanager
    def fresh(self, *, empty: bool = False) -> Iterator[str]:
        url = self.create_empty() if empty else self.create()
        try:
            yield url
        finally:
            self.drop(url)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.drop(with_database(self.admin_url, self.template))


@contextlib.contextmanager
def postgres_databases(
    env_var: str = ENV_URL, *, settings: dict[str, str] | None = None
) -> Iterator[TestDatabases]:
    """TestDatabases on $`env_var` when set, else on a server started here and stopped after.

    Raises PostgresUnavailableError when neither works; the caller decides to skip or fail."""
    server: PostgresServer | None = None
    given = os.environ.get(env_var)
    if given:
        admin_url = given
    else:
        server = PostgresServer(settings=settings).start()
        admin_url = server.url
    try:
        databases = TestDatabases(admin_url)
        try:
            databases.build_template()
        except psycopg.Error as error:
            raise PostgresUnavailableError(
                f"cannot use PostgreSQL at {admin_url}: {error}"
            ) from error
        try:
            yield databases
        finally:
            databases.close()
    finally:
        if server is not None:
            server.stop()
