"""infra/template.yaml's alarms and dashboard cover every queue and function: a new reactor's
queue or function without them fails here. Alarms notify the AlarmTopicArn parameter when
it is given, and nothing when it is empty."""

import json
import re
from typing import Any

from eventstore.local.template import DEFAULT_TEMPLATE, load_template

TEMPLATE: dict[str, Any] = load_template(DEFAULT_TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {n: s["Properties"] for n, s in RESOURCES.items() if s["Type"] == kind}


ALARMS = of_type("AWS::CloudWatch::Alarm")
FUNCTIONS = of_type("AWS::Lambda::Function")
SOURCE_QUEUES = {n: p for n, p in of_type("AWS::SQS::Queue").items() if "RedrivePolicy" in p}


def dead_letter_queue_of(queue: str) -> str:
    target = SOURCE_QUEUES[queue]["RedrivePolicy"]["deadLetterTargetArn"]
    name: str = target["Fn::GetAtt"][0]
    return name


def alarms_on(namespace: str, metric: str) -> dict[str, Any]:
    """Per dimension value (a GetAtt/Ref target's logical id), the alarm on it."""
    found: dict[str, Any] = {}
    for alarm in ALARMS.values():
        if (alarm.get("Namespace"), alarm.get("MetricName")) != (namespace, metric):
            continue
        ((dimension,),) = [alarm["Dimensions"]]
        value = dimension["Value"]
        target = value["Fn::GetAtt"][0] if "Fn::GetAtt" in value else value["Ref"]
        found[target] = alarm
    return found


def test_every_dead_letter_queue_alarms_on_its_first_message() -> None:
    alarms = alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert SOURCE_QUEUES, "the template has source queues"
    for queue in SOURCE_QUEUES:
        alarm = alarms.get(dead_letter_queue_of(queue))
        assert alarm is not None, f"no alarm on the dead-letter queue of {queue}"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
        )


def test_every_source_queue_alarms_on_the_age_of_its_oldest_message() -> None:
    alarms = alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert set(alarms) == set(SOURCE_QUEUES)
    for alarm in alarms.values():
        assert alarm["Threshold"] == {"Ref": "QueueAgeThreshold"}


def test_every_function_alarms_on_errors_and_throttles() -> None:
    assert set(alarms_on("AWS/Lambda", "Errors")) == set(FUNCTIONS)
    assert set(alarms_on("AWS/Lambda", "Throttles")) == set(FUNCTIONS)


def test_ingest_lag_and_projection_lag_alarm_on_the_consumers_metrics() -> None:
    (ingest_lag,) = [a for a in ALARMS.values() if a.get("MetricName") == "IngestLag"]
    service = FUNCTIONS["IngestFunction"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert ingest_lag["Dimensions"] == [{"Name": "service", "Value": service}]
    assert ingest_lag["ExtendedStatistic"] == "p99"
    (projection_lag,) = [
        a for a in ALARMS.values() if "ProjectionLagSeconds" in json.dumps(a.get("Metrics", []))
    ]
    assert projection_lag["Threshold"] == {"Ref": "ProjectionLagThreshold"}
    namespaces = {
        f["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] for f in FUNCTIONS.values()
    }
    assert namespaces == {"S3EventStore"}


def test_alarms_notify_the_topic_parameter_only_when_it_is_given() -> None:
    assert TEMPLATE["Parameters"]["AlarmTopicArn"]["Default"] == ""
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == notify, name
        assert alarm["OKActions"] == notify, name


def test_the_dashboard_shows_every_dead_letter_queue_queue_and_function() -> None:
    ((_, dashboard),) = of_type("AWS::CloudWatch::Dashboard").items()
    body = dashboard["DashboardBody"]["Fn::Sub"]
    json.loads(re.sub(r"\$\{[^}]+\}", "x", body))  # valid JSON once substituted
    for queue in SOURCE_QUEUES:
        assert f"${{{queue}.QueueName}}" in body
        assert f"${{{dead_letter_queue_of(queue)}.QueueName}}" in body
    for function in FUNCTIONS:
        assert f"${{{function}}}" in body
    for metric in ("IngestLag", "ProjectionLagSeconds", "ReactorProcessed", "EventsAppended"):
        assert metric in body
