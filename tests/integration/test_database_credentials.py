"""The consumers' database credentials at run time: a Secrets Manager secret (moto) holding the
password of a real PostgreSQL role that needs it, rotated under a running consumer; and RDS IAM
tokens, one per new connection."""

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
import sqlalchemy as sa
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from moto import mock_aws
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import make_url

from consumers import runtime
from consumers.ingest import handler
from eventstore.errors import ConfigurationError
from eventstore.store import credentials
from eventstore.store.credentials import database_url, fetch_secret
from eventstore.store.database import create_engine
from tests.helpers import LambdaContext
from tests.notification_factory import notification, put_records, sqs_lambda_event
from tests.postgres_server import libpq_url

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Secrets Manager in moto, and Powertools' per-container cache emptied around the test
    (its provider keeps a boto3 client made before moto started otherwise)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "EVENTSTORE_DB_URL", "EVENTSTORE_DB_IAM_HOST"):
        monkeypatch.delenv(name, raising=False)
    parameters.clear_caches()
    DEFAULT_PROVIDERS.clear()
    with mock_aws():
        yield boto3.session.Session(region_name=REGION).client("secretsmanager")
    parameters.clear_caches()
    DEFAULT_PROVIDERS.clear()


@dataclass
class PasswordRole:
    """A login role that must give its password (scram-sha-256), on the test's database."""

    name: str
    password: str
    socket_dir: str
    database: str
    admin: psycopg.Connection

    def rds_secret(self, password: str | None = None) -> str:
        """The secret JSON RDS rotation functions keep (host, port, dbname, engine...)."""
        return json.dumps(
            {
                "engine": "postgres",
                "host": self.socket_dir,
                "port": 5432,
                "username": self.name,
                "password": password or self.password,
                "dbname": self.database,
            }
        )

    def rotate(self, new_password: str) -> None:
        self.admin.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.name), sql.Literal(new_password)
            )
        )
        self.password = new_password

    def end_its_sessions(self) -> None:
        """What an idle timeout, a failover or pool recycling does to a container's connection."""
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (self.name,),
        )

    def refuses(self, password: str) -> bool:
        try:
            psycopg.connect(
                host=self.socket_dir, dbname=self.database, user=self.name, password=password
            ).close()
        except psycopg.OperationalError as error:
            return credentials.is_authentication_failure(error)
        return False


@pytest.fixture
def password_role(postgres_url: str) -> Iterator[PasswordRole]:
    """The suite's server trusts local connections; this role alone is made to authenticate by
    password, with a line of its own at the top of pg_hba.conf (first match wins)."""
    url = make_url(postgres_url)
    socket_dir = str(url.query["host"])
    name = f"es_rotating_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
        hba_file = admin.execute("SHOW hba_file").fetchone()[0]  # type: ignore[index]
        if not os.access(hba_file, os.W_OK):
            pytest.fail(
                f"this test edits pg_hba.conf ({hba_file}) to make one role use a password: "
                "run it against the suite's own throwaway server",
                pytrace=False,
            )
        with open(hba_file, encoding="utf-8") as file:
            original = file.read()
        with open(hba_file, "w", encoding="utf-8") as file:
            file.write(f"local all {name} scram-sha-256\n{original}")
        # Superuser: the consumer reads and writes every table of the log; what is under test
        # is only how it authenticates.
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(name), sql.Literal("first-password")
            )
        )
        admin.execute("SELECT pg_reload_conf()")
        role = PasswordRole(name, "first-password", socket_dir, str(url.database), admin)
        deadline = time.monotonic() + 10
        while not role.refuses("not-the-password"):  # the reload is asynchronous
            assert time.monotonic() < deadline, "pg_hba.conf reload did not take effect"
            time.sleep(0.05)
        try:
            yield role
        finally:
            with open(hba_file, "w", encoding="utf-8") as file:
                file.write(original)
            admin.execute("SELECT pg_reload_conf()")
            role.end_its_sessions()
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def secret_arn(aws: Any, password_role: PasswordRole, monkeypatch: pytest.MonkeyPatch) -> str:
    """The role's secret in Secrets Manager, and a consumer environment naming only its ARN."""
    arn = str(
        aws.create_secret(
            Name=f"eventstore/{password_role.name}", SecretString=password_role.rds_secret()
        )["ARN"]
    )
    monkeypatch.setenv("EVENTSTORE_DB_SECRET_ARN", arn)
    return arn


@pytest.fixture
def consumer_cache() -> Iterator[None]:
    """The consumer keeps one store per URL for the container's life; a test is one container."""
    yield
    for url in [u for u in runtime._event_stores if credentials.PLUGIN in u]:
        runtime._event_stores.pop(url).log.engine.dispose()


def _invocation(keys: list[str], start: int = 0) -> dict[str, Any]:
    return sqs_lambda_event([notification(put_records("bucket", keys, start=start))])


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.usefixtures("consumer_cache")
def test_the_consumer_keeps_ingesting_after_the_database_password_is_rotated(
    secret_arn: str,
    password_role: PasswordRole,
    aws: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a consumer whose environment holds the secret's ARN and no password, and which has
    # ingested once (its container caches the secret)
    monkeypatch.setenv("EVENTSTORE_DB_IDLE_PING_SECONDS", "0")  # check pooled connections
    assert "password" not in (database_url() or "")
    assert handler(_invocation(["a", "b"]), LambdaContext()) == {"batchItemFailures": []}

    # When the password is rotated (the role and the secret, as a rotation function does) and
    # the container's connection is cut
    password_role.rotate("second-password")
    aws.put_secret_value(SecretId=secret_arn, SecretString=password_role.rds_secret())
    password_role.end_its_sessions()
    with caplog.at_level(logging.WARNING, logger=credentials.__name__):
        response = handler(_invocation(["c"], start=2), LambdaContext())

    # Then the stale password was refused once, the secret fetched again, and the batch stored
    assert response == {"batchItemFailures": []}
    assert runtime.event_store().log.head_position() == 3
    refused = [r for r in caplog.records if "refused the cached credentials" in r.getMessage()]
    assert len(refused) == 1
    assert "second-password" not in caplog.text  # no secret value in the logs
    assert fetch_secret(secret_arn)["password"] == "second-password"  # the cache is refreshed


def test_a_new_connection_with_the_stale_password_fails_then_the_refresh_connects(
    secret_arn: str, password_role: PasswordRole, aws: Any
) -> None:
    # Given an engine on the secret, connected once (the secret is now cached)
    engine = create_engine(database_url() or "")
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT current_user")).scalar() == (
                password_role.name
            )

        # When the password is rotated and the secret updated behind the cache
        password_role.rotate("second-password")
        aws.put_secret_value(SecretId=secret_arn, SecretString=password_role.rds_secret())
        engine.dispose()  # the next checkout opens a new connection

        # Then the cached password is the stale one, refused by the server...
        stale = fetch_secret(secret_arn)["password"]
        assert stale == "first-password"
        assert password_role.refuses(stale)
        # ...yet the engine's next connection succeeds, with the secret fetched again
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
        assert fetch_secret(secret_arn)["password"] == "second-password"
    finally:
        engine.dispose()


def test_the_secret_is_fetched_once_per_container_not_per_connection(
    secret_arn: str, password_role: PasswordRole, aws: Any
) -> None:
    # Given an engine that connected once with the secret
    engine = create_engine(database_url() or "")
    try:
        with engine.connect():
            pass
        # When the stored secret changes to a password the server would refuse, without any
        # refusal of the cached one
        aws.put_secret_value(
            SecretId=secret_arn, SecretString=password_role.rds_secret("a-wrong-password")
        )
        engine.dispose()

        # Then new connections keep using the cached secret: no call per connection
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.execute(sa.text("SELECT 1")).scalar() == 1
            engine.dispose()
    finally:
        engine.dispose()


def test_a_refused_password_is_fetched_again_only_once(
    secret_arn: str,
    password_role: PasswordRole,
    aws: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a secret whose password the server refuses, before and after a refresh
    aws.put_secret_value(
        SecretId=secret_arn, SecretString=password_role.rds_secret("a-wrong-password")
    )
    engine = create_engine(database_url() or "")
    try:
        # When the engine connects
        with (
            caplog.at_level(logging.WARNING, logger=credentials.__name__),
            pytest.raises(sa.exc.OperationalError, match="authentication failed"),
        ):
            engine.connect()
        # Then it retried once, not in a loop
        refused = [r for r in caplog.records if "refused the cached credentials" in r.getMessage()]
        assert len(refused) == 1
    finally:
        engine.dispose()


def test_a_secret_that_is_not_for_postgresql_is_refused_with_its_reason(aws: Any) -> None:
    # Given a MySQL secret
    arn = aws.create_secret(
        Name="eventstore/mysql",
        SecretString='{"engine": "mysql", "host": "h", "username": "u", "password": "p"}',
    )["ARN"]
    engine = create_engine(database_url({"EVENTSTORE_DB_SECRET_ARN": arn}) or "")
    try:
        # When the engine connects, then the error names the problem and not the password
        with pytest.raises(ConfigurationError, match="needs PostgreSQL") as raised:
            engine.connect()
        assert '"p"' not in str(raised.value)
    finally:
        engine.dispose()


def test_a_missing_secret_is_a_configuration_error(aws: Any) -> None:
    # Given an ARN naming no secret
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nothing-here-AbCdEf"
    engine = create_engine(database_url({"EVENTSTORE_DB_SECRET_ARN": arn}) or "")
    try:
        # When the engine connects, then it says which secret it could not read
        with pytest.raises(ConfigurationError, match="cannot read the database secret"):
            engine.connect()
    finally:
        engine.dispose()


# -- RDS IAM authentication ------------------------------------------------------------------


class _Stop(Exception):
    """Ends a connection attempt once its parameters are seen (no RDS to accept a token)."""


class FakeRdsClient:
    """Stands in for boto3's RDS client: hands out numbered tokens and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    def generate_db_auth_token(self, DBHostname: str, Port: int, DBUsername: str) -> str:
        self.calls.append((DBHostname, Port, DBUsername))
        return f"token-{len(self.calls)}"


IAM_ENVIRONMENT = {
    "EVENTSTORE_DB_IAM_HOST": "log.cluster-abc.eu-west-1.rds.amazonaws.com",
    "EVENTSTORE_DB_IAM_PORT": "5432",
    "EVENTSTORE_DB_IAM_USER": "eventstore_ingest",
    "EVENTSTORE_DB_IAM_NAME": "eventstore",
}


def _connect_parameters_of(engine: sa.Engine, attempts: int) -> list[dict[str, Any]]:
    """The parameters psycopg would be called with, for `attempts` new connections."""
    seen: list[dict[str, Any]] = []

    @event.listens_for(engine, "do_connect")  # after the plugin's listener
    def capture(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(dict(cparams))
        raise _Stop

    for _ in range(attempts):
        with pytest.raises(_Stop):
            engine.connect()
    return seen


def test_iam_authentication_uses_a_new_token_for_every_new_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given IAM settings and a token source
    fake = FakeRdsClient()
    monkeypatch.setattr(credentials.rds_tokens, "_client", fake)
    engine = create_engine(database_url(IAM_ENVIRONMENT) or "")

    # When the engine opens two connections
    seen = _connect_parameters_of(engine, 2)

    # Then each got a fresh token as its password, over TLS, for the configured user
    assert [p["password"] for p in seen] == ["token-1", "token-2"]
    assert (
        fake.calls == [(IAM_ENVIRONMENT["EVENTSTORE_DB_IAM_HOST"], 5432, "eventstore_ingest")] * 2
    )
    assert all(p["sslmode"] == "require" and p["user"] == "eventstore_ingest" for p in seen)
    assert all(p["dbname"] == "eventstore" for p in seen)
    assert not any(k.startswith("eventstore_") for p in seen for k in p)  # plugin's own settings


def test_iam_tokens_are_signed_by_boto3_with_the_container_credentials(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IAM settings and the container's credentials (no fake client)
    monkeypatch.setattr(credentials.rds_tokens, "_client", None)
    engine = create_engine(database_url(IAM_ENVIRONMENT) or "")

    # When the engine opens a connection
    (parameters_seen,) = _connect_parameters_of(engine, 1)

    # Then the password is an RDS auth token: a presigned connect request for that user
    token = parameters_seen["password"]
    assert token.startswith(f"{IAM_ENVIRONMENT['EVENTSTORE_DB_IAM_HOST']}:5432/?")
    assert "Action=connect" in token and "DBUser=eventstore_ingest" in token
    assert "X-Amz-Signature=" in token
