"""infra/template.yaml keeps secrets out of the functions' environment, lets no principal but S3
and the topic inject notifications, and protects the archive (the log's disaster-recovery
copy). Read from the template as the fan-out reads it, and checked on what moto builds from it."""

import json
import uuid
from typing import Any

import pytest

from eventstore.local.fanout import MOTO_SKIPPED_TYPES, create_fanout
from eventstore.local.template import DEFAULT_TEMPLATE, Resolver, load_template
from tests.e2e.conftest import REGION, Stack

TEMPLATE = load_template(DEFAULT_TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
TEXT = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/eventstore/db-AbCdEf"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SOURCE_QUEUES = (
    "IngestQueue", "ArchiveQueue", "PutQueue", "CopyQueue",
    "CsvToJsonQueue", "ExtractTextQueue", "CopyToBucketQueue",
)  # fmt: skip
DEAD_LETTER_QUEUES = tuple(q.replace("Queue", "DeadLetterQueue") for q in SOURCE_QUEUES)
# The queue csv-to-json sends to: fed by that function, not by the topic.
OUTPUT_QUEUE, OUTPUT_DEAD_LETTER_QUEUE = "CsvOutputQueue", "CsvOutputDeadLetterQueue"
DATABASE_ROLES = [
    {"Ref": role}
    for role in (
        "IngestRole", "PutConsumerRole", "CopyConsumerRole", "CsvToJsonRole", "ExtractTextRole",
        "CopyToBucketRole", "ApiRole",
    )
]  # fmt: skip


def _resolver(**parameters: str) -> Resolver:
    return Resolver.for_template(
        TEMPLATE,
        {"BucketName": "landing-zone", "CodeBucket": "artifacts", **parameters},
        stack_name="es",
        region="eu-west-1",
        account_id="111122223333",
    )


def _statements(logical_id: str) -> list[dict[str, Any]]:
    return list(RESOURCES[logical_id]["Properties"]["PolicyDocument"]["Statement"])


def _denies(logical_id: str) -> list[dict[str, Any]]:
    return [s for s in _statements(logical_id) if s["Effect"] == "Deny"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- 9: no password in the Lambda environment ------------------------------------------------


def test_the_functions_environment_names_where_credentials_are_never_a_password() -> None:
    # Given the template, with a secret or with IAM authentication
    with_secret = _resolver(DatabaseSecretArn=SECRET_ARN)
    with_iam = _resolver(
        DatabaseIamHost="log.cluster-x.eu-west-1.rds.amazonaws.com",
        DatabaseIamUser="eventstore_ingest",
        DatabaseResourceId="cluster-ABCDEFGHIJKL",
    )
    variables = RESOURCES["IngestFunction"]["Properties"]["Environment"]["Variables"]

    # Then the ingest function gets the secret's ARN, or the host and user, and nothing else
    database = {k: v for k, v in with_secret.resolve(variables).items() if "_DB_" in k}
    assert database == {"EVENTSTORE_DB_SECRET_ARN": SECRET_ARN}
    database = {k: v for k, v in with_iam.resolve(variables).items() if "_DB_" in k}
    assert database == {
        "EVENTSTORE_DB_IAM_HOST": "log.cluster-x.eu-west-1.rds.amazonaws.com",
        "EVENTSTORE_DB_IAM_PORT": "5432",
        "EVENTSTORE_DB_IAM_USER": "eventstore_ingest",
        "EVENTSTORE_DB_IAM_NAME": "eventstore",
    }
    # and no parameter carries a password, nor is a secret resolved into the environment
    assert not any(spec.get("NoEcho") for spec in TEMPLATE["Parameters"].values())
    assert "{{resolve:secretsmanager" not in TEXT
    assert "EVENTSTORE_DB_URL" not in TEXT


def test_the_log_writers_read_only_the_database_secret_or_connect_as_its_one_user() -> None:
    # (the ingest function and every reactor function append to the log)
    secret = RESOURCES["DatabaseSecretPolicy"]
    (read,) = secret["Properties"]["PolicyDocument"]["Statement"]
    assert secret["Condition"] == "UseDatabaseSecret"
    assert secret["Properties"]["Roles"] == DATABASE_ROLES
    assert (read["Effect"], read["Action"]) == ("Allow", "secretsmanager:GetSecretValue")
    assert read["Resource"] == {"Ref": "DatabaseSecretArn"}  # that secret, no wildcard

    key = RESOURCES["DatabaseSecretKeyPolicy"]
    (decrypt,) = key["Properties"]["PolicyDocument"]["Statement"]
    assert key["Condition"] == "SecretUsesKmsKey"
    assert key["Properties"]["Roles"] == DATABASE_ROLES
    assert (decrypt["Action"], decrypt["Resource"]) == (
        "kms:Decrypt",
        {"Ref": "DatabaseSecretKeyArn"},
    )
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"
    }

    iam = RESOURCES["DatabaseIamPolicy"]
    (connect,) = iam["Properties"]["PolicyDocument"]["Statement"]
    assert iam["Condition"] == "UseIamAuth"
    assert iam["Properties"]["Roles"] == DATABASE_ROLES
    assert connect["Action"] == "rds-db:connect"
    resolver = _resolver(
        DatabaseIamHost="h", DatabaseIamUser="eventstore_ingest", DatabaseResourceId="db-ABC123"
    )
    assert resolver.resolve(connect["Resource"]) == (
        "arn:aws:rds-db:eu-west-1:111122223333:dbuser:db-ABC123/eventstore_ingest"
    )
    # the archive function never sees the database
    assert "secretsmanager" not in json.dumps(RESOURCES["ArchiveRole"])


@pytest.mark.parametrize(
    ("parameters", "secret", "iam", "secret_key"),
    [
        ({"DatabaseSecretArn": SECRET_ARN}, True, False, False),
        ({"DatabaseSecretArn": SECRET_ARN, "DatabaseSecretKeyArn": KEY_ARN}, True, False, True),
        ({"DatabaseIamHost": "h", "DatabaseIamUser": "u"}, False, True, False),
    ],
)
def test_one_way_of_authenticating_is_deployed_at_a_time(
    parameters: dict[str, str], secret: bool, iam: bool, secret_key: bool
) -> None:
    resolver = _resolver(**parameters)
    assert resolver.condition("UseDatabaseSecret") is secret
    assert resolver.condition("UseIamAuth") is iam
    assert resolver.condition("SecretUsesKmsKey") is secret_key
    assert "DatabaseGivenOnce" in TEMPLATE["Rules"]


# -- 10: forged notifications ----------------------------------------------------------------


def test_the_topic_denies_every_publisher_but_this_bucket_in_this_account() -> None:
    denies = _denies("TopicPolicy")
    by_condition = {
        (operator, key): (statement, value)
        for statement in denies
        for operator, condition in statement["Condition"].items()
        for key, value in condition.items()
    }
    statement, bucket = by_condition[("ArnNotEquals", "aws:SourceArn")]
    assert _resolver().resolve(bucket) == "arn:aws:s3:::landing-zone"
    assert (statement["Principal"], statement["Action"]) == ("*", "sns:Publish")
    statement, account = by_condition[("StringNotEquals", "aws:SourceAccount")]
    assert account == {"Ref": "AWS::AccountId"}
    assert (statement["Principal"], statement["Action"]) == ("*", "sns:Publish")
    # one condition per Deny: conditions in one statement are ANDed, which would let a
    # publish through when only one of them is wrong
    assert all(len(s["Condition"]) == 1 for s in denies)


def test_the_source_queues_deny_every_sender_but_the_topic() -> None:
    (deny,) = [s for s in _denies("QueuePolicy") if s["Action"] == "sqs:SendMessage"]
    assert deny["Principal"] == "*"
    assert deny["Condition"] == {"ArnNotEquals": {"aws:SourceArn": {"Ref": "Topic"}}}
    assert deny["Resource"] == [{"Fn::GetAtt": [q, "Arn"]} for q in SOURCE_QUEUES]


def test_the_topic_and_every_queue_refuse_requests_without_tls() -> None:
    insecure = {"Bool": {"aws:SecureTransport": "false"}}
    (topic,) = [s for s in _denies("TopicPolicy") if s["Condition"] == insecure]
    assert topic["Resource"] == {"Ref": "Topic"}
    covered: set[str] = set()
    for policy in ("QueuePolicy", "DeadLetterQueuePolicy", "CsvOutputQueuePolicy"):
        (deny,) = [s for s in _denies(policy) if s["Condition"] == insecure]
        assert (deny["Principal"], deny["Action"]) == ("*", "sqs:*")
        covered |= {r["Fn::GetAtt"][0] for r in _as_list(deny["Resource"])}
    queues = {n for n, s in RESOURCES.items() if s["Type"] == "AWS::SQS::Queue"}
    assert (
        covered
        == queues
        == {*SOURCE_QUEUES, *DEAD_LETTER_QUEUES, OUTPUT_QUEUE, OUTPUT_DEAD_LETTER_QUEUE}
    )


def test_the_key_serves_s3_and_sns_only_for_this_bucket_and_this_topic() -> None:
    resolver = _resolver()
    statements = RESOURCES["EventKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = {
        resolver.resolve(s["Principal"]["Service"]): s
        for s in statements
        if "Service" in s.get("Principal", {})
    }
    s3 = services["s3.amazonaws.com"]["Condition"]
    assert resolver.resolve(s3["ArnEquals"]["aws:SourceArn"]) == "arn:aws:s3:::landing-zone"
    sns = services["sns.amazonaws.com"]["Condition"]
    topic_name = resolver.resolve(RESOURCES["Topic"]["Properties"]["TopicName"])
    assert resolver.resolve(sns["ArnEquals"]["aws:SourceArn"]) == (
        f"arn:aws:sns:eu-west-1:111122223333:{topic_name}"
    )
    for condition in (s3, sns):
        assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_dead_letter_queues_take_redrives_only_from_their_own_source_queue() -> None:
    resolver = _resolver()
    pairs = [*zip(SOURCE_QUEUES, DEAD_LETTER_QUEUES, strict=True)]
    for source, dead_letter in [*pairs, (OUTPUT_QUEUE, OUTPUT_DEAD_LETTER_QUEUE)]:
        redrive = RESOURCES[source]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter, "Arn"]}
        allow = RESOURCES[dead_letter]["Properties"]["RedriveAllowPolicy"]
        assert allow["redrivePermission"] == "byQueue"
        name = resolver.resolve(RESOURCES[source]["Properties"]["QueueName"])
        assert resolver.resolve(allow["sourceQueueArn"]) == [
            f"arn:aws:sqs:eu-west-1:111122223333:{name}"
        ]


# -- 11: the archive is the disaster-recovery copy -------------------------------------------


def test_the_archive_bucket_is_versioned_and_object_locked_in_governance_mode() -> None:
    archive = RESOURCES["ArchiveBucket"]["Properties"]
    assert archive["VersioningConfiguration"] == {"Status": "Enabled"}
    assert archive["ObjectLockEnabled"] is True
    assert archive["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {
            "DefaultRetention": {"Mode": "GOVERNANCE", "Days": {"Ref": "ArchiveRetentionDays"}}
        },
    }
    retention = TEMPLATE["Parameters"]["ArchiveRetentionDays"]
    assert retention["Type"] == "Number" and retention["MinValue"] >= 1


def test_buckets_the_key_and_the_log_groups_outlive_the_stack() -> None:
    kept = [
        name
        for name, spec in RESOURCES.items()
        if spec["Type"] in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::Logs::LogGroup")
    ]
    assert set(kept) >= {"Bucket", "ArchiveBucket", "EventKey", "IngestLogGroup", "ArchiveLogGroup"}
    for name in kept:
        assert RESOURCES[name].get("DeletionPolicy") == "Retain", name
        assert RESOURCES[name].get("UpdateReplacePolicy") == "Retain", name


# -- what moto builds from the same template -------------------------------------------------


def test_the_local_fan_out_locks_the_archive_and_sets_the_new_policies(stack: Stack) -> None:
    # Given the fan-out built in moto from the template (the stack fixture)
    fanout = stack.fanout
    # Then the archive bucket has governance-mode Object Lock, and new objects get retention
    lock = stack.s3.get_object_lock_configuration(Bucket=stack.archive_bucket)
    retention = lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 365)
    stack.s3.put_object(Bucket=stack.archive_bucket, Key="anchors/x.json", Body=b"{}")
    head = stack.s3.head_object(Bucket=stack.archive_bucket, Key="anchors/x.json")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    # (moto 5.2 accepts a dead-letter queue's RedriveAllowPolicy and drops it, so that one is
    # checked on the template only: test_dead_letter_queues_take_redrives_only_from_...)
    # and the source queues carry the Deny statements
    policy = stack.sqs.get_queue_attributes(
        QueueUrl=fanout.queues["IngestQueue"].url, AttributeNames=["Policy"]
    )["Attributes"]["Policy"]
    assert {s["Sid"] for s in json.loads(policy)["Statement"]} >= {
        "DenySendersOtherThanTheTopic",
        "DenyInsecureTransport",
    }


def test_the_local_consumer_environment_leaves_out_the_settings_not_chosen(
    stack: Stack, moto_endpoint: str
) -> None:
    # Given the fan-out built with a database secret
    fanout = create_fanout(
        parameters={
            "BucketName": f"e2e-{uuid.uuid4().hex[:12]}",
            "CodeBucket": "not-used",
            "DatabaseSecretArn": SECRET_ARN,
        },
        stack_name="e2e-secret",
        region=REGION,
        endpoint_url=moto_endpoint,
        skip_types=MOTO_SKIPPED_TYPES,
    )
    # Then the ingest consumer's environment names the secret and no IAM setting (and the
    # default fan-out names no database at all: the tests give their own URL)
    consumer = fanout.consumer_of("IngestQueue")
    assert consumer is not None
    assert {k for k in consumer.environment if "_DB_" in k} == {"EVENTSTORE_DB_SECRET_ARN"}
    assert consumer.environment["EVENTSTORE_DB_SECRET_ARN"] == SECRET_ARN
    default = stack.fanout.consumer_of("IngestQueue")
    assert default is not None
    assert not any("_DB_" in k for k in default.environment)
