"""infra/template.yaml deploys every built-in reactor the way the fan-out is built: its own
queue, dead-letter queue and filtered subscription (the reactor's own filter policy: no drift),
one handler shape, the ingest function's database settings, and a role that reads and writes
only where the reactor does. Checked on the template, and on what moto builds from it."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import consumers.reactor
from eventstore.core.events import NewEvent
from eventstore.local.poller import load_handler
from eventstore.local.reactors import REACTOR_HANDLER, REACTOR_VARIABLE, reactor_drift, reactor_name
from eventstore.local.template import DEFAULT_TEMPLATE, load_template
from eventstore.reactors import Reactor, ReactorIO, load_reactors
from tests.e2e.conftest import Stack

TEMPLATE = load_template(DEFAULT_TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
BUILTIN = ("put-consumer", "copy-consumer", "csv-to-json", "extract-text", "copy-to-bucket")


def _reactors() -> list[Reactor]:
    return load_reactors()


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in RESOURCES.items() if spec["Type"] == kind}


def _function_of(reactor: str) -> tuple[str, dict[str, Any]]:
    functions = _of_type("AWS::Lambda::Function").items()
    (found,) = [(n, s) for n, s in functions if reactor_name(s) == reactor]
    return found


def _grants(role: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role's inline policies allow, resources as JSON text."""
    grants: set[tuple[str, str]] = set()
    for policy in RESOURCES[role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                grants.add((action, json.dumps(statement["Resource"], sort_keys=True)))
    return grants


def _sub(text: str) -> str:
    return json.dumps({"Fn::Sub": text})


def _arn(resource: str) -> str:
    return json.dumps({"Fn::GetAtt": [resource, "Arn"]})


# -- one description, no drift --------------------------------------------------------------


def test_the_template_deploys_every_reactor_with_its_own_filter_policy() -> None:
    assert reactor_drift(DEFAULT_TEMPLATE, reactors=_reactors()) == []


def test_every_built_in_reactor_is_registered() -> None:
    assert {r.name for r in load_reactors()} >= set(BUILTIN)


def test_the_drift_check_reads_the_variable_the_reactor_handler_reads() -> None:
    assert REACTOR_VARIABLE == consumers.reactor.REACTOR_VARIABLE
    assert load_handler(REACTOR_HANDLER) is consumers.reactor.handler


def _edited(tmp_path: Path, edit: Any) -> Path:
    template = load_template(DEFAULT_TEMPLATE)
    edit(template["Resources"])
    path = tmp_path / "template.yaml"
    # Long-form intrinsic functions are plain YAML, which load_template reads back as is.
    path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    return path


def _set(path: tuple[str, ...], value: Any) -> Any:
    def edit(resources: dict[str, Any]) -> None:
        node = resources
        for part in path[:-1]:
            node = node[part]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return edit


PUT_POLICY = ("PutSubscription", "Properties", "FilterPolicy")


def _variable(function: str) -> tuple[str, ...]:
    return (function, "Properties", "Environment", "Variables", REACTOR_VARIABLE)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _set(PUT_POLICY, {"Records": {"eventName": [{"prefix": "ObjectCreated:"}]}}),
            [
                "subscription PutSubscription of reactor 'put-consumer' has filter policy "
                '{"Records":{"eventName":[{"prefix":"ObjectCreated:"}]}}; the reactor wants '
                '{"Records":{"eventName":["ObjectCreated:Put"]}}'
            ],
        ),
        (
            _set(PUT_POLICY, None),
            [
                "subscription PutSubscription of reactor 'put-consumer' has no filter policy; "
                'the reactor wants {"Records":{"eventName":["ObjectCreated:Put"]}}'
            ],
        ),
        (
            _set(("CopySubscription", "Properties", "FilterPolicyScope"), None),
            [
                "subscription CopySubscription of reactor 'copy-consumer' filters on "
                "MessageAttributes, not MessageBody"
            ],
        ),
        (
            _set(("CopySubscription",), None),
            ["queue CopyQueue of reactor 'copy-consumer' has no subscription to the topic"],
        ),
        (
            _set(("CsvToJsonSubscription", "Properties", "FilterPolicy", "Records", "s3"), None),
            [
                "subscription CsvToJsonSubscription of reactor 'csv-to-json' has filter policy "
                '{"Records":{"eventName":[{"prefix":"ObjectCreated:"}]}}; the reactor wants '
                '{"Records":{"eventName":[{"prefix":"ObjectCreated:"}],'
                '"s3":{"object":{"key":[{"prefix":"uploads/"}]}}}}'
            ],
        ),
        (
            _set(_variable("PutConsumerFunction"), "put-consumr"),
            [
                "function PutConsumerFunction runs reactor 'put-consumr', which is not "
                "registered (known: copy-consumer, copy-to-bucket, csv-to-json, extract-text, "
                "put-consumer)",
                "reactor 'put-consumer' has no function in the template",
            ],
        ),
        (
            _set(("ExtractTextFunction",), None),
            ["reactor 'extract-text' has no function in the template"],
        ),
        (
            _set(("PutConsumerEventSourceMapping",), None),
            ["function PutConsumerFunction (reactor 'put-consumer') has no event source mapping"],
        ),
        (
            _set(("CopyToBucketQueue", "Properties", "RedrivePolicy"), None),
            ["queue CopyToBucketQueue of reactor 'copy-to-bucket' has no dead-letter queue"],
        ),
        (
            _set(("CopyConsumerFunction", "Properties", "Handler"), "consumers.ingest.handler"),
            [
                "function CopyConsumerFunction runs reactor 'copy-consumer' with handler "
                "'consumers.ingest.handler', not consumers.reactor.handler"
            ],
        ),
        (
            _set(_variable("CopyConsumerFunction"), "put-consumer"),
            [
                "reactor 'put-consumer' is run by 2 functions (PutConsumerFunction, "
                "CopyConsumerFunction): each event would be handled twice",
                "subscription CopySubscription of reactor 'put-consumer' has filter policy "
                '{"Records":{"eventName":["ObjectCreated:Copy"]}}; the reactor wants '
                '{"Records":{"eventName":["ObjectCreated:Put"]}}',
                "reactor 'copy-consumer' has no function in the template",
            ],
        ),
    ],
    ids=[
        "policy-widened", "policy-removed", "scope-removed", "subscription-removed",
        "key-prefix-dropped", "unknown-reactor", "function-removed", "mapping-removed",
        "no-dead-letter-queue", "other-handler", "deployed-twice",
    ],
)  # fmt: skip
def test_an_edited_template_is_caught(tmp_path: Path, edit: Any, expected: list[str]) -> None:
    # Given a copy of the template with one edit
    path = _edited(tmp_path, edit)
    # When it is checked against the reactors
    problems = reactor_drift(path, reactors=_reactors())
    # Then exactly that edit is reported
    assert sorted(problems) == sorted(expected)


def test_a_policy_written_as_json_text_in_another_order_is_no_drift(tmp_path: Path) -> None:
    policy = {"Records": {"s3": {"object": {"key": [{"prefix": "uploads/"}]}},
                          "eventName": [{"prefix": "ObjectCreated:"}]}}  # fmt: skip
    as_text = _set(("ExtractTextSubscription", "Properties", "FilterPolicy"), json.dumps(policy))
    path = _edited(tmp_path, as_text)
    assert reactor_drift(path, reactors=_reactors()) == []


def test_a_registered_reactor_without_a_function_is_reported() -> None:
    class Orphan(Reactor):
        name = "orphan"

        def react(self, event: NewEvent, io: ReactorIO) -> None:
            pass

    problems = reactor_drift(DEFAULT_TEMPLATE, reactors=[*_reactors(), Orphan()])
    assert problems == ["reactor 'orphan' has no function in the template"]


# -- how each reactor is deployed -----------------------------------------------------------


@pytest.mark.parametrize("reactor", BUILTIN)
def test_each_reactor_runs_the_one_handler_on_its_own_queue_like_the_ingest_function(
    reactor: str,
) -> None:
    name, function = _function_of(reactor)
    props = function["Properties"]
    ingest = RESOURCES["IngestFunction"]["Properties"]
    # one handler shape, told its reactor by the environment
    assert props["Handler"] == "consumers.reactor.handler"
    variables = props["Environment"]["Variables"]
    assert variables[REACTOR_VARIABLE] == reactor
    # the ingest function's database settings (secret or IAM, behind the same conditions),
    # network, encryption and limits
    ingest_variables = ingest["Environment"]["Variables"]
    database = {k: v for k, v in variables.items() if k.startswith("EVENTSTORE_DB_")}
    assert database == {k: v for k, v in ingest_variables.items() if k.startswith("EVENTSTORE_DB_")}
    for key in ("VpcConfig", "KmsKeyArn", "Runtime", "Timeout", "MemorySize", "Code",
                "ReservedConcurrentExecutions"):  # fmt: skip
        assert props[key] == ingest[key], key
    # its own log group, created before it, kept after it
    log_group = function["DependsOn"]
    assert RESOURCES[log_group]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/" + props["FunctionName"]["Fn::Sub"]
    }
    # one event source mapping reporting batch item failures, on a queue with a dead-letter
    # queue and a visibility timeout of six times the function's timeout
    (mapping,) = [
        m["Properties"]
        for m in _of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": name}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = RESOURCES[mapping["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
    assert "deadLetterTargetArn" in queue["RedrivePolicy"]
    assert queue["VisibilityTimeout"] == RESOURCES["IngestQueue"]["Properties"]["VisibilityTimeout"]


_LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
_RECEIVE = (
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)  # fmt: skip
_KEY = _arn("EventKey")
_UPLOADS = _sub("${Bucket.Arn}/uploads/*")


def _consumes(logical: str, queue: str) -> set[tuple[str, str]]:
    return {(a, _arn(f"{logical}LogGroup")) for a in _LOGS} | {(a, _arn(queue)) for a in _RECEIVE}


EXPECTED_GRANTS = {
    # records what it handled: reads and writes no object
    "PutConsumerRole": _consumes("PutConsumer", "PutQueue") | {("kms:Decrypt", _KEY)},
    "CopyConsumerRole": _consumes("CopyConsumer", "CopyQueue") | {("kms:Decrypt", _KEY)},
    "CsvToJsonRole": _consumes("CsvToJson", "CsvToJsonQueue") | {
        ("s3:GetObject", _UPLOADS), ("s3:GetObjectVersion", _UPLOADS),
        ("s3:PutObject", _sub("${Bucket.Arn}/converted/*")),
        ("sqs:SendMessage", _arn("CsvOutputQueue")),
        ("kms:Decrypt", _KEY), ("kms:GenerateDataKey", _KEY),
    },
    "ExtractTextRole": _consumes("ExtractText", "ExtractTextQueue") | {
        ("s3:GetObject", _UPLOADS), ("s3:GetObjectVersion", _UPLOADS),
        ("s3:PutObject", _sub("${Bucket.Arn}/extracted/*")),
        ("kms:Decrypt", _KEY), ("kms:GenerateDataKey", _KEY),
    },
    "CopyToBucketRole": _consumes("CopyToBucket", "CopyToBucketQueue") | {
        ("s3:GetObject", _UPLOADS), ("s3:GetObjectVersion", _UPLOADS),
        ("s3:GetObjectTagging", _UPLOADS), ("s3:GetObjectVersionTagging", _UPLOADS),
        ("s3:PutObject", _sub("${CopyTargetBucket.Arn}/*")),
        ("s3:PutObjectTagging", _sub("${CopyTargetBucket.Arn}/*")),
        ("kms:Decrypt", _KEY), ("kms:GenerateDataKey", _KEY),
    },
}  # fmt: skip


@pytest.mark.parametrize("role", sorted(EXPECTED_GRANTS))
def test_each_reactor_role_reads_and_writes_only_where_its_reactor_does(role: str) -> None:
    assert _grants(role) == EXPECTED_GRANTS[role]
    # (database access: the shared, conditional policies, test_template_hardening.py)


def test_reactors_write_outside_every_reactor_filter_so_outputs_cause_no_loops() -> None:
    # What reactors write to the watched bucket comes back through the topic as S3 events.
    written = {
        resource.removeprefix('{"Fn::Sub": "${Bucket.Arn}/').removesuffix('*"}')
        for grants in EXPECTED_GRANTS.values()
        for action, resource in grants
        if action == "s3:PutObject" and "${Bucket.Arn}" in resource
    }
    assert written == {"converted/", "extracted/"}
    unfiltered_by_key = []
    for name, subscription in _of_type("AWS::SNS::Subscription").items():
        record = (subscription["Properties"].get("FilterPolicy") or {}).get("Records", {})
        keys = record.get("s3", {}).get("object", {}).get("key", [])
        if not keys:
            unfiltered_by_key.append(name)
            continue
        for prefix in written:
            assert not any(prefix.startswith(k["prefix"]) for k in keys), (name, prefix)
    # Only the archive and ingest (everything, on purpose) and the put/copy consumers (which
    # write nothing: recording the outputs' uploads is their job) see the outputs.
    assert sorted(unfiltered_by_key) == [
        "ArchiveSubscription",
        "CopySubscription",
        "IngestSubscription",
        "PutSubscription",
    ]


def test_the_csv_output_queue_is_encrypted_dead_lettered_and_written_only_by_the_csv_reactor() -> (
    None
):
    queue = RESOURCES["CsvOutputQueue"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Ref": "EventKey"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["CsvOutputDeadLetterQueue", "Arn"]
    }
    statements = RESOURCES["CsvOutputQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Action"] == "sqs:SendMessage"]
    assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["CsvToJsonRole", "Arn"]}}
    }
    _, function = _function_of("csv-to-json")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["EVENTSTORE_CSV_OUTPUT_QUEUE_URL"] == {"Ref": "CsvOutputQueue"}
    senders = [r for r, g in EXPECTED_GRANTS.items() if any(a == "sqs:SendMessage" for a, _ in g)]
    assert senders == ["CsvToJsonRole"]


def test_the_second_bucket_is_like_the_watched_one_but_notifies_no_one() -> None:
    bucket = RESOURCES["CopyTargetBucket"]
    props = bucket["Properties"]
    watched = RESOURCES["Bucket"]["Properties"]
    for key in ("VersioningConfiguration", "BucketEncryption", "PublicAccessBlockConfiguration",
                "OwnershipControls"):  # fmt: skip
        assert props[key] == watched[key], key
    assert "NotificationConfiguration" not in props
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    (deny,) = RESOURCES["CopyTargetBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["CopyTargetBucket", "Arn"]},
        {"Fn::Sub": "${CopyTargetBucket.Arn}/*"},
    ]
    _, function = _function_of("copy-to-bucket")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["EVENTSTORE_COPY_TARGET_BUCKET"] == {"Ref": "CopyTargetBucket"}
    writers = [r for r, g in EXPECTED_GRANTS.items() if any("CopyTargetBucket" in x for _, x in g)]
    assert writers == ["CopyToBucketRole"]


# -- what moto builds from the same template -------------------------------------------------


def test_the_local_fan_out_has_each_reactor_queue_subscribed_with_its_filter_policy(
    stack: Stack,
) -> None:
    fanout = stack.fanout
    by_reactor = {c.reactor: c for c in fanout.consumers if c.reactor}
    assert sorted(by_reactor) == sorted(BUILTIN)
    sns = stack.sns()
    attributes = {
        s["Endpoint"]: sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])[
            "Attributes"
        ]
        for s in sns.list_subscriptions_by_topic(TopicArn=fanout.topics["Topic"])["Subscriptions"]
    }
    wants = {r.name: r.wants for r in _reactors()}
    for name, consumer in by_reactor.items():
        queue = fanout.queues[consumer.queue]
        subscription = attributes[queue.arn]
        assert json.loads(subscription["FilterPolicy"]) == wants[name].filter_policy(), name
        assert subscription["FilterPolicyScope"] == "MessageBody"
        dead = fanout.queue_for_dead_letters_of(queue.logical_id)
        assert dead is not None and queue.max_receive_count == 2  # the e2e stack's setting
        assert consumer.report_batch_item_failures
    # the CSV reactor's output queue and the second bucket exist, and reach their functions
    output = fanout.queues["CsvOutputQueue"]
    assert fanout.queue_for_dead_letters_of("CsvOutputQueue") is not None
    assert by_reactor["csv-to-json"].environment["EVENTSTORE_CSV_OUTPUT_QUEUE_URL"] == output.url
    target = fanout.buckets["CopyTargetBucket"]
    assert by_reactor["copy-to-bucket"].environment["EVENTSTORE_COPY_TARGET_BUCKET"] == target
    assert stack.s3.get_bucket_versioning(Bucket=target)["Status"] == "Enabled"
    encryption = stack.s3.get_bucket_encryption(Bucket=target)
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    notifications = stack.s3.get_bucket_notification_configuration(Bucket=target)
    assert not notifications.get("TopicConfigurations")
    # a reactor function's process-wide environment leaves its reactor to its handler
    assert REACTOR_VARIABLE not in by_reactor["put-consumer"].shared_environment()


def test_the_check_template_command_agrees_and_names_a_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventstore.cli import main

    assert main(["reactors", "check-template"]) == 0
    assert "match" in capsys.readouterr().out

    def widen(resources: dict[str, Any]) -> None:
        policy = resources["CsvToJsonSubscription"]["Properties"]["FilterPolicy"]
        policy["Records"]["eventName"] = [{"prefix": "Object"}]

    assert main(["reactors", "check-template", "--template", str(_edited(tmp_path, widen))]) == 1
    assert "csv-to-json" in capsys.readouterr().out
