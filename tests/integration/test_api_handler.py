"""The audit API's Lambda entry point (consumers/api.py) with a real-shaped function URL
event: the same app and answers as `eventstore serve`, on both backends."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from consumers import api, runtime
from eventstore.wiring import open_event_store
from tests.conftest import load_event
from tests.helpers import LambdaContext
from tests.notification_factory import T0, iso, new_events, s3_record, sequencer_of

BUCKET = "audit-data"
REPORT = "reports/2026/q1 final+v2.csv"


@pytest.fixture
def api_database(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A log with one object's two versions, named by $EVENTSTORE_DB_URL as on Lambda."""
    store = open_event_store(backend_url)
    store.log.append(
        new_events(
            [
                s3_record(BUCKET, REPORT, when=T0, sequencer=sequencer_of(1), version_id="v1"),
                s3_record(
                    BUCKET,
                    REPORT,
                    event_name="ObjectRemoved:Delete",
                    when=T0,
                    sequencer=sequencer_of(2),
                    version_id="v1",
                ),
            ]
        )
    )
    store.catch_up()
    store.log.engine.dispose()
    monkeypatch.setenv("EVENTSTORE_DB_URL", backend_url)
    yield backend_url
    cached = runtime._event_stores.pop(backend_url, None)
    if cached is not None:
        cached.log.engine.dispose()


def _invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = api.handler(event, LambdaContext())  # type: ignore[arg-type]
    return response["statusCode"], json.loads(response["body"])


def test_a_function_url_request_gets_the_objects_history(api_database: str) -> None:
    # Given a signed GET of the history as the function URL delivers it
    event = load_event("api/function_url_get_history.json")

    # When the handler answers it
    status, body = _invoke(event)

    # Then it is the object's history with the CLI's field names, the key decoded
    assert status == 200
    assert body["key"] == REPORT
    assert [(e["event_name"], e["event_time"]) for e in body["events"]] == [
        ("ObjectCreated:Put", iso(T0)),
        ("ObjectRemoved:Delete", iso(T0)),
    ]


def test_a_function_url_request_for_an_unknown_object_gets_404(api_database: str) -> None:
    event = load_event("api/function_url_get_history.json")
    event["queryStringParameters"]["key"] = "missing.csv"
    event["rawQueryString"] = "bucket=audit-data&key=missing.csv"
    status, body = _invoke(event)
    assert status == 404 and body["error"] == "no events of s3://audit-data/missing.csv in the log"


def test_repeated_parameters_arrive_comma_joined_and_bad_ones_get_400(api_database: str) -> None:
    event = load_event("api/function_url_get_history.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/events"
    # Function URLs join a repeated query parameter's values with commas
    event["queryStringParameters"] = {"type": "ObjectRemoved:*,ObjectTagging:*"}
    status, body = _invoke(event)
    assert status == 200
    assert [e["event_name"] for e in body["events"]] == ["ObjectRemoved:Delete"]

    event["queryStringParameters"] = {"limit": "0"}
    status, body = _invoke(event)
    assert status == 400 and "limit" in body["error"]
