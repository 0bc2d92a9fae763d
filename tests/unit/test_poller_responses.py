"""ReportBatchItemFailures, as Lambda reads a handler's response (no I/O)."""

from typing import Any

import pytest

from eventstore.local.poller import EventSource, LambdaContext, failed_message_ids, lambda_record

IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}, {"other": 1}],
)
def test_empty_or_null_responses_mean_the_whole_batch_succeeded(response: Any) -> None:
    assert failed_message_ids(response, IDS, report_batch_item_failures=True) == (set(), None)


def test_named_items_fail_alone() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert failed_message_ids(response, IDS, report_batch_item_failures=True) == ({"m2"}, None)


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifer": "m1"}]},  # a bad key name
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "m1"},
        "m1",
        ["m1"],
    ],
)
def test_invalid_responses_fail_the_whole_batch(response: Any) -> None:
    failed, reason = failed_message_ids(response, IDS, report_batch_item_failures=True)
    assert failed == set(IDS)
    assert reason


def test_without_report_batch_item_failures_the_response_is_ignored() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert failed_message_ids(response, IDS, report_batch_item_failures=False) == (set(), None)


def test_records_and_context_have_lambdas_shape() -> None:
    source = EventSource(queue_url="u", queue_arn="arn:aws:sqs:eu-west-1:1:q", region="eu-west-1",
                         function_name="f", timeout=2.0)  # fmt: skip
    message: Any = {
        "MessageId": "id-1", "ReceiptHandle": "rh", "Body": "{}", "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {"a": {"StringValue": "v", "DataType": "String"}},
    }  # fmt: skip
    record = lambda_record(message, source)
    assert record["messageId"] == "id-1"
    assert record["receiptHandle"] == "rh"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:eu-west-1:1:q"
    assert record["awsRegion"] == "eu-west-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["a"]["stringValue"] == "v"
    context = LambdaContext(source)
    assert 0 < context.get_remaining_time_in_millis() <= 2000
    assert context.invoked_function_arn.endswith(":function:f")
