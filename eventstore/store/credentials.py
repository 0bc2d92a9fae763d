"""The consumers' database credentials: a URL that never holds a password, and the engine
plugin that supplies one when a connection is opened — from a Secrets Manager secret (cached
per container, fetched again once when the server refuses it) or as an RDS IAM token.

boto3 and Powertools' parameters utility are imported on first use; import this module itself
from inside a function (as consumers.runtime does), so the handler's import path stays light.
"""

import logging
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import plugins
from sqlalchemy.engine import URL, CreateEnginePlugin, Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from eventstore.errors import ConfigurationError

ENV_URL = "EVENTSTORE_DB_URL"  # local use: a full URL, password included if any
ENV_SECRET_ARN = "EVENTSTORE_DB_SECRET_ARN"  # an RDS secret (JSON: username, password, host...)
ENV_IAM_HOST = "EVENTSTORE_DB_IAM_HOST"  # RDS IAM authentication: host, port, user, database
ENV_IAM_PORT = "EVENTSTORE_DB_IAM_PORT"
ENV_IAM_USER = "EVENTSTORE_DB_IAM_USER"
ENV_IAM_NAME = "EVENTSTORE_DB_IAM_NAME"

PLUGIN = "eventstore_credentials"  # SQLAlchemy engine plugin, named in the URL's query
SECRET_PARAM = "eventstore_secret"
IAM_PARAM = "eventstore_iam"
# A rotated secret is noticed at once (the server refuses the old password and we fetch it
# again), so the cache can be long; it only bounds how stale a still-working password gets.
SECRET_MAX_AGE_SECONDS = 900
POSTGRES_ENGINES = ("postgres", "postgresql", "aurora-postgresql")

logger = logging.getLogger(__name__)


def database_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The SQLAlchemy URL of the consumers' database, from the environment, or None (the
    store's default, a SQLite file).

    $EVENTSTORE_DB_SECRET_ARN and the $EVENTSTORE_DB_IAM_* settings give a URL with no password
    in it: the engine plugin of this module supplies one per new connection. $EVENTSTORE_DB_URL
    is used as given (local use). Only one of the three may be set."""
    env = os.environ if environ is None else environ
    given = [name for name in (ENV_URL, ENV_SECRET_ARN, ENV_IAM_HOST) if env.get(name)]
    if len(given) > 1:
        raise ConfigurationError(
            f"set only one of {', '.join(given)}: they disagree on the database"
        )
    secret_arn = env.get(ENV_SECRET_ARN)
    if secret_arn:
        return _plugin_url(query={SECRET_PARAM: secret_arn})
    host = env.get(ENV_IAM_HOST)
    if host:
        user = env.get(ENV_IAM_USER)
        if not user:
            raise ConfigurationError(f"{ENV_IAM_HOST} needs {ENV_IAM_USER} (the database user)")
        port_text = env.get(ENV_IAM_PORT) or "5432"
        if not port_text.isdigit():
            raise ConfigurationError(f"{ENV_IAM_PORT}={port_text!r} is not a port number")
        return _plugin_url(
            username=user,
            host=host,
            port=int(port_text),
            database=env.get(ENV_IAM_NAME) or None,
            # RDS accepts IAM tokens only over TLS.
            query={"sslmode": "require", IAM_PARAM: "rds"},
        )
    return env.get(ENV_URL) or None


def _plugin_url(
    *,
    query: dict[str, str],
    username: str | None = None,
    host: str | None = None,
    port: int | None = None,
    database: str | None = None,
) -> str:
    register_plugin()
    url = URL.create(
        "postgresql+psycopg",
        username=username,
        host=host,
        port=port,
        database=database,
        query={**query, "plugin": PLUGIN},
    )
    return url.render_as_string(hide_password=False)


def register_plugin() -> None:
    """Make `?plugin=eventstore_credentials` known to SQLAlchemy in this process (the
    `sqlalchemy.plugins` entry point does it for installed copies; this covers the rest)."""
    plugins.register(PLUGIN, __name__, "CredentialsPlugin")


# --- fetching -------------------------------------------------------------------------------


def fetch_secret(secret_id: str, *, force: bool = False) -> dict[str, Any]:
    """The secret's JSON, cached in this container for SECRET_MAX_AGE_SECONDS; `force` skips
    the cache (and refreshes it)."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(
            secret_id, transform="json", force_fetch=force, max_age=SECRET_MAX_AGE_SECONDS
        )
    except (parameters.exceptions.GetParameterError, parameters.TransformParameterError) as error:
        # No secret value in the message: only what went wrong and which secret.
        raise ConfigurationError(f"cannot read the database secret {secret_id}: {error}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"the database secret {secret_id} is not a JSON object")
    return value


def secret_connect_params(secret: Mapping[str, Any], secret_id: str) -> dict[str, Any]:
    """psycopg's connect parameters from an RDS secret (username, password, host, port, dbname,
    engine): the standard shape RDS rotation functions read and write."""
    engine = str(secret.get("engine") or "postgres")
    if engine not in POSTGRES_ENGINES:
        raise ConfigurationError(
            f"the database secret {secret_id} is for {engine!r}; the event log needs PostgreSQL"
        )
    missing = [key for key in ("username", "password", "host") if not secret.get(key)]
    if missing:
        raise ConfigurationError(f"the database secret {secret_id} has no {', '.join(missing)}")
    params: dict[str, Any] = {
        "host": str(secret["host"]),
        "port": int(secret.get("port") or 5432),
        "user": str(secret["username"]),
        "password": str(secret["password"]),
    }
    if secret.get("dbname"):
        params["dbname"] = str(secret["dbname"])
    return params


def is_authentication_failure(error: BaseException) -> bool:
    """Whether the server refused the credentials (as opposed to being unreachable).

    psycopg reports a refused login as an OperationalError without an SQLSTATE; the server's
    message is the only sign ("password authentication failed", "PAM authentication failed"
    for an IAM token)."""
    sqlstate = getattr(error, "sqlstate", None)
    return sqlstate in ("28P01", "28000") or "authentication failed" in str(error)


class _RdsTokens:
    """RDS IAM tokens: signed locally with the container's role, valid 15 minutes, so one per
    new connection is cheap and never stale."""

    def __init__(self) -> None:
        self._client: Any = None

    def token(self, host: str, port: int, user: str) -> str:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client("rds")
        return str(self._client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user))


rds_tokens = _RdsTokens()  # one per container: its boto3 client is made once


# --- the engine plugin ----------------------------------------------------------------------


def _connect_with_secret(secret_id: str) -> Any:
    """A do_connect listener: connect with the cached secret; if the server refuses it (the
    secret was rotated since it was cached), fetch it again and retry once."""

    def connect(
        dialect: Dialect,
        _record: ConnectionPoolEntry,
        cargs: tuple[Any, ...],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        params = {**cparams, **secret_connect_params(fetch_secret(secret_id), secret_id)}
        try:
            return dialect.connect(*cargs, **params)
        except dialect.loaded_dbapi.Error as error:
            if not is_authentication_failure(error):
                raise
            logger.warning(
                "the database refused the cached credentials of %s; fetching the secret again",
                secret_id,
            )
        params = {
            **cparams,
            **secret_connect_params(fetch_secret(secret_id, force=True), secret_id),
        }
        return dialect.connect(*cargs, **params)

    return connect


def _connect_with_iam_token(
    _dialect: Dialect,
    _record: ConnectionPoolEntry,
    _cargs: tuple[Any, ...],
    cparams: dict[str, Any],
) -> None:
    """A do_connect listener: a fresh IAM token as the password of every new connection;
    returning None lets SQLAlchemy connect with the updated parameters."""
    cparams["password"] = rds_tokens.token(
        str(cparams["host"]), int(cparams.get("port") or 5432), str(cparams["user"])
    )


class CredentialsPlugin(CreateEnginePlugin):
    """SQLAlchemy engine plugin (`?plugin=eventstore_credentials`): takes its own settings off
    the URL and installs the matching do_connect listener on the engine.

    A plugin, rather than a change to how the store builds its engine, because the URL is the
    one thing every entry point already passes to the store."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        self.secret_id = url.query.get(SECRET_PARAM)
        self.iam = url.query.get(IAM_PARAM)
        if isinstance(self.secret_id, tuple) or isinstance(self.iam, tuple):
            raise ConfigurationError("the database URL names its credentials more than once")
        if bool(self.secret_id) == bool(self.iam):
            raise ConfigurationError(
                f"plugin={PLUGIN} needs exactly one of {SECRET_PARAM}=ARN or {IAM_PARAM}=rds"
            )

    def update_url(self, url: URL) -> URL:
        return url.difference_update_query([SECRET_PARAM, IAM_PARAM])

    def engine_created(self, engine: Engine) -> None:
        if self.secret_id:
            event.listen(engine, "do_connect", _connect_with_secret(str(self.secret_id)))
        else:
            event.listen(engine, "do_connect", _connect_with_iam_token)
