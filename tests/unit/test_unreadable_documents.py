"""Documents the parser cannot walk or split: nesting too deep, Lambda events of the wrong
shape, any JSON at all. Each fails as a malformed message, never as a Python error."""

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.core.events import Source
from eventstore.core.parsing import (
    MAX_NESTING,
    Envelope,
    envelopes_of_file,
    iter_documents,
    parse_envelope,
    parse_sqs_body,
    parse_sqs_record,
    split_document,
    sqs_records,
)
from eventstore.errors import MalformedMessageError
from tests.conftest import load_event
from tests.helpers import first_record, sqs_message
from tests.notification_factory import notification

DEEP = 100_000
DEEP_OBJECTS = 50_000  # as deep as an SQS body of objects can be within 256 KB
TOO_DEEP = "nested too deeply (more than 100 levels)"


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"":' * depth + "{}" + "}" * depth


def notification_with_unknown_field(value_json: str) -> str:
    """A valid notification whose record carries `value_json` in an unknown field."""
    text = json.dumps(notification([first_record("s3_put.json")]))
    return text.replace('"eventVersion"', f'"deep": {value_json}, "eventVersion"', 1)


def failure_of(envelope: Envelope) -> MalformedMessageError:
    with pytest.raises(MalformedMessageError) as failure:
        parse_envelope(envelope)
    return failure.value


# -- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [nested_lists(DEEP), nested_objects(DEEP_OBJECTS)], ids=["list", "dict"]
)
def test_a_body_nested_100k_deep_is_malformed(body: str) -> None:
    # Given an SQS body nested 100,000 levels deep (json.loads raises RecursionError on it)
    # When it is parsed
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id="deep-1")
    # Then the message fails alone, saying why
    assert failure.value.message_id == "deep-1"
    assert failure.value.reason == f"SQS message body is {TOO_DEEP}"


def test_an_sns_message_nested_100k_deep_is_malformed() -> None:
    body = json.dumps({"Type": "Notification", "MessageId": "n-1", "Message": nested_lists(DEEP)})
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id="deep-2")
    assert failure.value.reason == f"SNS Message is {TOO_DEEP}"


def test_a_record_that_decodes_but_nests_past_the_limit_is_malformed() -> None:
    # Given a notification json.loads can decode, whose record nests 500 levels deep in an
    # unknown field (its JSON encoding in the append could then exceed the recursion limit)
    body = notification_with_unknown_field(nested_lists(500))
    assert json.loads(body)
    # When it is parsed, Then it fails alone before it reaches the append
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_body(body, message_id="deep-3")
    assert failure.value.reason == f"SQS message body is {TOO_DEEP}"


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # Given a record whose unknown field brings the body to exactly MAX_NESTING levels
    # (the body is an object holding Records, a list, holding the record, an object: 3 levels)
    body = notification_with_unknown_field(nested_lists(MAX_NESTING - 3))
    (event,) = parse_sqs_body(body, message_id="deep-4").events
    assert event.key == "invoices/2026/03/inv-1042.pdf"
    # and one level more is refused
    with pytest.raises(MalformedMessageError, match="nested too deeply"):
        parse_sqs_body(
            notification_with_unknown_field(nested_lists(MAX_NESTING - 2)), message_id="x"
        )


@pytest.mark.parametrize(
    "text", [nested_lists(DEEP), nested_objects(DEEP_OBJECTS)], ids=["list", "dict"]
)
def test_a_file_of_one_document_nested_100k_deep_fails_alone(text: str) -> None:
    # Given a file holding one document nested 100,000 levels deep
    # When its envelopes are read and parsed
    (envelope,) = envelopes_of_file(text, name="deep.json")
    # Then it is one message that fails, saying why
    failure = failure_of(envelope)
    assert failure.message_id == "deep.json"
    assert TOO_DEEP in failure.reason


def test_a_deep_json_line_fails_alone_among_good_lines() -> None:
    # Given JSON lines: a notification, a line nested 100,000 deep, another notification
    lines = [
        json.dumps(load_event("s3_copy.json")),
        nested_lists(DEEP),
        json.dumps(load_event("s3_post.json")),
    ]
    envelopes = list(envelopes_of_file("\n".join(lines), name="mixed.jsonl"))
    # Then the deep line fails alone and the others parse
    assert [e.message_id for e in envelopes] == ["mixed.jsonl:1", "mixed.jsonl:2", "mixed.jsonl:3"]
    assert parse_envelope(envelopes[0]).events[0].event_name == "ObjectCreated:Copy"
    assert TOO_DEEP in failure_of(envelopes[1]).reason
    assert parse_envelope(envelopes[2]).events[0].event_name == "ObjectCreated:Post"


def test_a_pretty_printed_deep_document_is_one_failure_not_one_per_line() -> None:
    # Given a document nested 2,000 deep written one bracket per line
    text = "\n".join(["["] * 2000 + ["]"] * 2000)
    # Then the file is one document, which fails
    (document_id, _document), *rest = iter_documents(text, name="pretty.json")
    assert (document_id, rest) == ("pretty.json", [])
    (envelope,) = envelopes_of_file(text, name="pretty.json")
    assert TOO_DEEP in failure_of(envelope).reason


def test_a_file_document_that_decodes_but_nests_past_the_limit_fails_alone() -> None:
    text = notification_with_unknown_field(nested_objects(300))
    (envelope,) = envelopes_of_file(text, name="deep.json")
    assert TOO_DEEP in failure_of(envelope).reason


def test_split_document_of_a_python_list_nested_100k_deep_gives_a_failing_envelope() -> None:
    # Given a decoded document (built in Python, no JSON involved) nested 100,000 deep
    document: list[Any] = []
    for _ in range(DEEP):
        document = [document]
    # When it is split and parsed, Then no RecursionError: one envelope that fails
    (envelope,) = split_document(document, default_id="built")
    failure = failure_of(envelope)
    assert failure.message_id.startswith("built")
    assert TOO_DEEP in failure.reason


def test_a_decoded_document_with_names_that_are_not_text_is_walked_without_error() -> None:
    # Given a notification built in Python (not decoded from JSON) with a number as a name
    document: dict[Any, Any] = load_event("s3_put.json")
    document[1] = "one"
    # When it is parsed, Then it is checked and parsed like any other
    (event,) = parse_envelope(Envelope("built", document, Source.S3)).events
    assert event.key == "invoices/2026/03/inv-1042.pdf"


# -- the shape of a Lambda SQS event ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "Lambda event is not a JSON object"),
        ({}, "Lambda event has no Records list"),
        ({"Records": None}, "Lambda event has no Records list"),
        ({"Records": {"messageId": "m-1", "body": "{}"}}, "Lambda event has no Records list"),
        ({"Records": "[]"}, "Lambda event has no Records list"),
        ({"Records": [sqs_message("{}"), "m-2"]}, "Lambda event Records[1] is not an object"),
        ({"Records": [{"body": "{}"}]}, "Lambda event Records[0] has no messageId"),
        ({"Records": [{"messageId": 7, "body": "{}"}]}, "Lambda event Records[0] has no messageId"),
        (
            {"Records": [{"messageId": "", "body": "{}"}]},
            "Lambda event Records[0] has no messageId",
        ),
    ],
)
def test_a_lambda_event_that_is_not_an_sqs_batch_is_malformed_as_a_whole(
    event: Any, reason: str
) -> None:
    # Given a Lambda event whose messages cannot each be named in a partial batch response
    # When its records are asked for
    with pytest.raises(MalformedMessageError) as failure:
        sqs_records(event)
    # Then the whole event is refused, with no message id to blame
    assert failure.value.reason == reason
    assert failure.value.message_id is None


def test_the_records_of_an_sqs_batch_are_returned_as_they_are() -> None:
    event = load_event("sqs_sns_batch_realistic.json")
    assert sqs_records(event) == event["Records"]
    assert sqs_records({"Records": []}) == []


@pytest.mark.parametrize("body", [None, 42, {"Records": []}])
def test_an_sqs_record_without_a_text_body_fails_alone(body: object) -> None:
    record = sqs_message("unused", message_id="m-7")
    if body is None:
        del record["body"]
    else:
        record["body"] = body
    with pytest.raises(MalformedMessageError) as failure:
        parse_sqs_record(record)
    assert failure.value.message_id == "m-7"
    assert failure.value.reason == "SQS message body is missing or not text"


def test_an_sqs_record_is_parsed_from_its_body() -> None:
    record = load_event("sqs_sns_put.json")["Records"][0]
    (event,) = parse_sqs_record(record).events
    assert event.causation_id == record["messageId"]
    assert event.source is Source.SQS_SNS


@pytest.mark.parametrize(
    "record",
    [
        {},  # no messageId, no body
        {"messageId": "m-1"},  # no body
        {"messageId": {"id": 1}, "body": 42},
        {"messageId": "m-2", "body": None},
    ],
)
def test_split_lambda_sqs_records_without_id_or_body_fail_as_messages(
    record: dict[str, Any],
) -> None:
    # Given a Lambda SQS event (as a file may hold one) whose second record lacks its
    # messageId or body
    good = sqs_message(json.dumps(load_event("s3_put.json")), message_id="good")
    document = {"Records": [good, {"eventSource": "aws:sqs", **record}]}
    # When it is split and parsed
    first, second = split_document(document, default_id="event.json")
    # Then the broken record fails alone, under its own id or its place
    assert len(parse_envelope(first).events) == 1
    failure = failure_of(second)
    given_id = record.get("messageId")
    assert failure.message_id == (given_id if isinstance(given_id, str) else "event.json#1")
    assert failure.reason == "SQS message body is missing or not text"


def test_split_lambda_sqs_records_that_are_not_objects_fail_as_messages() -> None:
    good = sqs_message(json.dumps(load_event("s3_put.json")), message_id="good")
    envelopes = split_document({"Records": [good, "not a record", None, 3]}, default_id="e")
    assert [e.message_id for e in envelopes] == ["good", "e#1", "e#2", "e#3"]
    for envelope in envelopes[1:]:
        assert failure_of(envelope).reason == "SQS message body is missing or not text"


def test_a_lambda_event_whose_records_is_not_a_list_fails_as_a_message() -> None:
    (envelope,) = split_document({"Records": {"messageId": "m-1"}}, default_id="event.json")
    assert failure_of(envelope).reason == "Records is not a list"


# -- any JSON at all -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["Records", "body", "messageId", "eventSource", "Sns", "Type", "Message", "s3",
             "detail", "detail-type", "source", "key", "object", "bucket", "name", "x"]
        ),
        children,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300)
@given(json_values)
def test_any_json_document_either_parses_or_is_a_malformed_message(document: Any) -> None:
    # Given any JSON document, as a file or as an SQS body
    text = json.dumps(document)
    # When it is split and parsed, Then the only error is MalformedMessageError
    for envelope in envelopes_of_file(text, name="any.json"):
        with contextlib.suppress(MalformedMessageError):
            parse_envelope(envelope)
    with contextlib.suppress(MalformedMessageError):
        parse_sqs_body(text, message_id="any")
