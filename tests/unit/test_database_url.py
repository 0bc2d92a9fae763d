"""Which database the consumers use, from their environment: a URL that never holds a password
unless the operator typed one into $EVENTSTORE_DB_URL (local use)."""

import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from eventstore.errors import ConfigurationError
from eventstore.store.credentials import (
    IAM_PARAM,
    PLUGIN,
    SECRET_PARAM,
    database_url,
    is_authentication_failure,
    secret_connect_params,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/eventstore/db-AbCdEf"


def test_a_secret_arn_gives_a_url_naming_the_secret_and_no_password() -> None:
    # Given only the secret's ARN in the environment
    url = make_url(database_url({"EVENTSTORE_DB_SECRET_ARN": ARN}) or "")
    # Then the URL names the secret for the credentials plugin, and holds no credentials
    assert url.drivername == "postgresql+psycopg"
    assert url.query == {SECRET_PARAM: ARN, "plugin": PLUGIN}
    assert url.password is None and url.username is None


def test_iam_settings_give_a_url_for_that_user_over_tls_without_a_password() -> None:
    url = make_url(
        database_url(
            {
                "EVENTSTORE_DB_IAM_HOST": "log.cluster-abc.eu-west-1.rds.amazonaws.com",
                "EVENTSTORE_DB_IAM_USER": "eventstore_ingest",
                "EVENTSTORE_DB_IAM_NAME": "eventstore",
            }
        )
        or ""
    )
    assert (url.host, url.port, url.username, url.database) == (
        "log.cluster-abc.eu-west-1.rds.amazonaws.com",
        5432,
        "eventstore_ingest",
        "eventstore",
    )
    assert url.password is None
    assert url.query == {"sslmode": "require", IAM_PARAM: "rds", "plugin": PLUGIN}


def test_eventstore_db_url_is_used_as_given_and_nothing_means_the_default() -> None:
    local = "postgresql+psycopg://me:pw@localhost/events"
    assert database_url({"EVENTSTORE_DB_URL": local}) == local
    assert database_url({}) is None


@pytest.mark.parametrize(
    "environment",
    [
        {"EVENTSTORE_DB_URL": "sqlite:///x.db", "EVENTSTORE_DB_SECRET_ARN": ARN},
        {"EVENTSTORE_DB_SECRET_ARN": ARN, "EVENTSTORE_DB_IAM_HOST": "h"},
        {"EVENTSTORE_DB_IAM_HOST": "h"},  # no user
        {
            "EVENTSTORE_DB_IAM_HOST": "h",
            "EVENTSTORE_DB_IAM_USER": "u",
            "EVENTSTORE_DB_IAM_PORT": "x",
        },
    ],
)
def test_ambiguous_or_incomplete_settings_are_refused(environment: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        database_url(environment)


def test_an_rds_secret_becomes_connect_parameters() -> None:
    secret = {
        "engine": "postgres",
        "host": "db.example",
        "port": 6432,
        "username": "ingest",
        "password": "s3cret",
        "dbname": "eventstore",
    }
    assert secret_connect_params(secret, ARN) == {
        "host": "db.example",
        "port": 6432,
        "user": "ingest",
        "password": "s3cret",
        "dbname": "eventstore",
    }


def test_an_incomplete_secret_is_refused_without_showing_its_values() -> None:
    with pytest.raises(ConfigurationError, match="has no host") as raised:
        secret_connect_params({"username": "u", "password": "s3cret"}, ARN)
    assert "s3cret" not in str(raised.value)


def test_only_refused_credentials_count_as_an_authentication_failure() -> None:
    assert is_authentication_failure(
        Exception('FATAL:  password authentication failed for user "ingest"')
    )
    assert is_authentication_failure(Exception('FATAL:  PAM authentication failed for user "x"'))
    assert not is_authentication_failure(Exception("connection refused: is the server running?"))


def test_the_credentials_module_loads_neither_boto3_nor_the_parameters_utility() -> None:
    # The Lambda pays for boto3 and Powertools' parameters only when it first fetches a secret.
    code = (
        "import sys, eventstore.store.credentials as c\n"
        "c.database_url({'EVENTSTORE_DB_SECRET_ARN': 'arn'})\n"
        "print(sorted(m for m in ('boto3', 'aws_lambda_powertools.utilities.parameters')"
        " if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]"
