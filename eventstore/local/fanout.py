"""The fan-out of infra/template.yaml created with boto3 against any endpoint (moto's server for
the demo and the end-to-end tests): buckets, topic, queues with their dead-letter queues,
subscriptions with filter policies and raw delivery, policies and bucket notifications.

Lambda functions, roles, log groups and event source mappings are not created: their settings
become `ConsumerSpec`s for the local poller (eventstore.local.poller), since moto's Lambda
needs Docker, and `ConsumerSpec.load_handler` gives the handler each function would run.
Everything comes from the template itself, not from a second list here.
"""

import importlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from eventstore.local.poller import EventSource, Handler, load_handler
from eventstore.local.reactors import REACTOR_VARIABLE
from eventstore.local.template import (
    NO_VALUE,
    Resolver,
    TemplateError,
    as_json_text,
    load_template,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

# CloudFormation property of AWS::SQS::Queue -> SQS attribute; the rest are not attributes.
# (moto 5.2 accepts RedriveAllowPolicy and silently drops it: set anyway, for real endpoints.)
_QUEUE_ATTRIBUTES = (
    "DelaySeconds", "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize",
    "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "RedriveAllowPolicy",
    "RedrivePolicy", "SqsManagedSseEnabled", "VisibilityTimeout", "FifoQueue",
    "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
)  # fmt: skip
_TOPIC_ATTRIBUTES = ("KmsMasterKeyId", "DisplayName", "FifoTopic", "ContentBasedDeduplication")
_SUBSCRIPTION_ATTRIBUTES = (
    "RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy",
    "DeliveryPolicy", "SubscriptionRoleArn",
)  # fmt: skip


# Resource types to leave out when the endpoint is moto. moto 5.2 evaluates a bucket policy's
# statements with any Condition as DENIED when the request lacks the condition key, whatever the
# statement's Effect (moto/iam/access_control.py, _check_conditions), so the TLS-only Deny
# (aws:SecureTransport) would refuse every object request.
MOTO_SKIPPED_TYPES = ("AWS::S3::BucketPolicy",)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str
    dead_letter_queue: str | None = None  # logical id
    max_receive_count: int | None = None
    visibility_timeout: int = 30


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    logical_id: str
    topic_arn: str
    queue: str  # logical id
    raw_message_delivery: bool
    filter_policy: dict[str, Any] | None
    filter_policy_scope: str | None


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A Lambda function and its SQS event source mapping, as the template declares them."""

    function: str  # logical id
    function_name: str
    handler: str  # dotted path, "consumers.ingest.handler"
    queue: str  # logical id of the event source queue
    batch_size: int
    batching_window: float
    report_batch_item_failures: bool
    timeout: float
    memory_mb: int
    maximum_concurrency: int | None
    environment: dict[str, str]

    @property
    def reactor(self) -> str | None:
        """The reactor this function runs (its EVENTSTORE_REACTOR), if it is a reactor's."""
        return self.environment.get(REACTOR_VARIABLE)

    def shared_environment(self) -> dict[str, str]:
        """The environment a local process running this consumer beside others may set
        process-wide: all of it but the reactor's name, which each reactor function has its
        own of (`load_handler` binds it instead)."""
        return {k: v for k, v in self.environment.items() if k != REACTOR_VARIABLE}

    def load_handler(self) -> Handler:
        """The handler Lambda would invoke for this function, for the local poller.

        Lambda gives each reactor function its own process, whose EVENTSTORE_REACTOR tells the
        shared handler which reactor it is; locally several reactor functions share a process,
        so the handler's module is asked for the handler of this one reactor instead
        (`handler_for(name)`, as consumers.reactor defines it)."""
        reactor = self.reactor
        if reactor is None:
            return load_handler(self.handler)
        module_name = self.handler.rpartition(".")[0]
        factory = getattr(importlib.import_module(module_name), "handler_for", None)
        if not callable(factory):
            raise TemplateError(
                f"{self.function} runs reactor {reactor!r} but its handler's module "
                f"{module_name} has no handler_for(name) to bind it locally"
            )
        handler: Handler = factory(reactor)
        return handler


@dataclass
class Fanout:
    """What was created, by logical id, and the consumers to run against it."""

    stack_name: str
    region: str
    account_id: str
    endpoint_url: str | None
    buckets: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    subscriptions: list[SubscriptionInfo] = field(default_factory=list)
    consumers: list[ConsumerSpec] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # logical ids left out on purpose

    def queue_for_dead_letters_of(self, logical_id: str) -> QueueInfo | None:
        dead_letter = self.queues[logical_id].dead_letter_queue
        return self.queues[dead_letter] if dead_letter else None

    def consumer_of(self, queue: str) -> ConsumerSpec | None:
        """The template's function reading the queue `queue` (a logical id), if any."""
        return next((c for c in self.consumers if c.queue == queue), None)

    def event_source(self, queue: str, *, concurrency: int = 2) -> EventSource:
        """The local event source mapping for `queue`: its function's settings when the template
        has one, Lambda's defaults otherwise."""
        info = self.queues[queue]
        consumer = self.consumer_of(queue)
        if consumer is None:
            return EventSource(
                queue_url=info.url, queue_arn=info.arn, function_name=f"{info.name}-reader",
                concurrency=concurrency, region=self.region,
            )  # fmt: skip
        return EventSource(
            queue_url=info.url, queue_arn=info.arn, function_name=consumer.function_name,
            batch_size=consumer.batch_size, batching_window=consumer.batching_window,
            report_batch_item_failures=consumer.report_batch_item_failures,
            timeout=consumer.timeout, memory_mb=consumer.memory_mb,
            concurrency=concurrency, region=self.region,
        )  # fmt: skip

    def source_queues(self) -> list[QueueInfo]:
        """Queues fed by a subscription (not the dead-letter queues), in template order."""
        subscribed = {s.queue for s in self.subscriptions}
        return [q for q in self.queues.values() if q.logical_id in subscribed]


def create_fanout(
    *,
    template_path: Path | str | None = None,
    parameters: Mapping[str, str] | None = None,
    stack_name: str = "eventstore-local",
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    session: boto3.session.Session | None = None,
    skip_types: Collection[str] = (),
) -> Fanout:
    """Create the template's fan-out resources at `endpoint_url` and describe them.

    `skip_types` names resource types not to create (MOTO_SKIPPED_TYPES against moto); they
    are listed in `Fanout.skipped`."""
    template = load_template(template_path)
    session = session or boto3.session.Session(region_name=region)
    clients = _Clients(session, region, endpoint_url)
    account_id = clients.account_id()
    resolver = Resolver.for_template(
        template, parameters or {}, stack_name=stack_name, region=region, account_id=account_id
    )
    fanout = Fanout(stack_name, region, account_id, endpoint_url)
    resources: dict[str, dict[str, Any]] = {}
    for name, spec in template["Resources"].items():
        if not resolver.included(spec):
            continue
        if spec.get("Type") in skip_types:
            fanout.skipped.append(name)
            continue
        resources[name] = spec

    def of_type(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(n, s) for n, s in resources.items() if s.get("Type") == kind]

    # Order matters only for references: keys, then topics and queues, then what points at them.
    for name, spec in of_type("AWS::IAM::Role"):
        # Not created (the local consumers run with the test credentials), but a resource
        # policy may name a role (the CSV output queue's only sender): give it its ARN.
        role_name = resolver.resolve(spec["Properties"].get("RoleName")) or f"{stack_name}-{name}"
        resolver.physical[name] = role_name
        resolver.attributes[name] = {"Arn": f"arn:aws:iam::{account_id}:role/{role_name}"}
    for name, spec in of_type("AWS::KMS::Key"):
        _create_key(clients, resolver, name, spec)
    for _name, spec in of_type("AWS::KMS::Alias"):
        props = resolver.resolve(spec.get("Properties", {}))
        clients.kms.create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    for name, spec in of_type("AWS::SNS::Topic"):
        _create_topic(clients, resolver, fanout, name, spec)
    queue_specs = of_type("AWS::SQS::Queue")
    for name, spec in queue_specs:
        _create_queue(clients, resolver, name, spec)
    for name, spec in queue_specs:  # redrive policies name other queues: set them second
        _configure_queue(clients, resolver, fanout, name, spec)
    for _name, spec in of_type("AWS::SNS::TopicPolicy"):
        props = resolver.resolve(spec["Properties"])
        for topic_arn in props["Topics"]:
            clients.sns.set_topic_attributes(
                TopicArn=topic_arn,
                AttributeName="Policy",
                AttributeValue=as_json_text(props["PolicyDocument"]),
            )
    for _name, spec in of_type("AWS::SQS::QueuePolicy"):
        props = resolver.resolve(spec["Properties"])
        for queue_url in props["Queues"]:
            clients.sqs.set_queue_attributes(
                QueueUrl=queue_url, Attributes={"Policy": as_json_text(props["PolicyDocument"])}
            )
    for name, spec in of_type("AWS::SNS::Subscription"):
        _create_subscription(clients, resolver, fanout, name, spec)
    for name, spec in of_type("AWS::S3::Bucket"):
        _create_bucket(clients, resolver, fanout, name, spec)
    for _name, spec in of_type("AWS::S3::BucketPolicy"):
        props = resolver.resolve(spec["Properties"])
        clients.s3.put_bucket_policy(
            Bucket=props["Bucket"], Policy=as_json_text(props["PolicyDocument"])
        )
    for name, spec in of_type("AWS::Lambda::Function"):
        props = spec["Properties"]
        function_name = resolver.resolve(props.get("FunctionName")) or f"{stack_name}-{name}"
        resolver.physical[name] = function_name
        resolver.attributes[name] = {
            "Arn": f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        }
    for _name, spec in of_type("AWS::Lambda::EventSourceMapping"):
        fanout.consumers.append(_consumer(resolver, resources, fanout, spec))
    for name, output in (template.get("Outputs") or {}).items():
        if resolver.included(output):
            try:
                fanout.outputs[name] = str(resolver.resolve(output["Value"]))
            except TemplateError:
                continue  # an output of something not created locally (a role, a log group)
    return fanout


class _Clients:
    def __init__(self, session: boto3.session.Session, region: str, endpoint: str | None) -> None:
        self.s3: S3Client = session.client("s3", region_name=region, endpoint_url=endpoint)
        self.sns: SNSClient = session.client("sns", region_name=region, endpoint_url=endpoint)
        self.sqs: SQSClient = session.client("sqs", region_name=region, endpoint_url=endpoint)
        self.kms: Any = session.client("kms", region_name=region, endpoint_url=endpoint)
        self._sts: Any = session.client("sts", region_name=region, endpoint_url=endpoint)

    def account_id(self) -> str:
        return str(self._sts.get_caller_identity()["Account"])


def _create_key(clients: _Clients, resolver: Resolver, name: str, spec: dict[str, Any]) -> None:
    props = resolver.resolve(spec.get("Properties", {}))
    arguments: dict[str, Any] = {"Description": props.get("Description", name)}
    if "KeyPolicy" in props:
        arguments["Policy"] = as_json_text(props["KeyPolicy"])
    metadata = clients.kms.create_key(**arguments)["KeyMetadata"]
    if props.get("EnableKeyRotation"):
        clients.kms.enable_key_rotation(KeyId=metadata["KeyId"])
    resolver.physical[name] = metadata["KeyId"]
    resolver.attributes[name] = {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}


def _create_topic(
    clients: _Clients, resolver: Resolver, fanout: Fanout, name: str, spec: dict[str, Any]
) -> None:
    props = resolver.resolve(spec.get("Properties", {}))
    attributes = {key: _attribute(props[key]) for key in _TOPIC_ATTRIBUTES if key in props}
    topic_name = props.get("TopicName") or f"{fanout.stack_name}-{name}"
    arn = clients.sns.create_topic(Name=topic_name, Attributes=attributes)["TopicArn"]
    resolver.physical[name] = arn
    resolver.attributes[name] = {"TopicArn": arn, "TopicName": topic_name}
    fanout.topics[name] = arn


def _create_queue(clients: _Clients, resolver: Resolver, name: str, spec: dict[str, Any]) -> None:
    props = spec.get("Properties", {})
    queue_name = (
        resolver.resolve(props.get("QueueName")) or f"{resolver.pseudo['AWS::StackName']}-{name}"
    )
    url = clients.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    resolver.physical[name] = url
    resolver.attributes[name] = {"Arn": arn, "QueueName": queue_name, "QueueUrl": url}


def _configure_queue(
    clients: _Clients, resolver: Resolver, fanout: Fanout, name: str, spec: dict[str, Any]
) -> None:
    props = resolver.resolve(spec.get("Properties", {}))
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    if redrive:  # a parameter resolves to text; SQS wants the count as a number
        redrive = {**redrive, "maxReceiveCount": int(redrive["maxReceiveCount"])}
        props["RedrivePolicy"] = redrive
    attributes: Any = {key: _attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    url = resolver.physical[name]
    if attributes:
        clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    dead_letter = None
    if redrive:
        target = redrive["deadLetterTargetArn"]
        dead_letter = next(
            (n for n, a in resolver.attributes.items() if a.get("Arn") == target), None
        )
    fanout.queues[name] = QueueInfo(
        logical_id=name,
        name=resolver.attributes[name]["QueueName"],
        url=url,
        arn=resolver.attributes[name]["Arn"],
        dead_letter_queue=dead_letter,
        max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
        visibility_timeout=int(props.get("VisibilityTimeout", 30)),
    )


def _create_subscription(
    clients: _Clients, resolver: Resolver, fanout: Fanout, name: str, spec: dict[str, Any]
) -> None:
    props = resolver.resolve(spec["Properties"])
    attributes = {key: _attribute(props[key]) for key in _SUBSCRIPTION_ATTRIBUTES if key in props}
    clients.sns.subscribe(
        TopicArn=props["TopicArn"],
        Protocol=props["Protocol"],
        Endpoint=props["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    queue = next(
        (n for n, a in resolver.attributes.items() if a.get("Arn") == props["Endpoint"]), None
    )
    if queue is None:
        raise TemplateError(f"{name}: only subscriptions of this template's queues are supported")
    policy = props.get("FilterPolicy")
    fanout.subscriptions.append(
        SubscriptionInfo(
            logical_id=name,
            topic_arn=props["TopicArn"],
            queue=queue,
            raw_message_delivery=_attribute(props.get("RawMessageDelivery", False)) == "true",
            filter_policy=json.loads(policy) if isinstance(policy, str) else policy,
            filter_policy_scope=props.get("FilterPolicyScope"),
        )
    )


def _create_bucket(
    clients: _Clients, resolver: Resolver, fanout: Fanout, name: str, spec: dict[str, Any]
) -> None:
    props = resolver.resolve(spec.get("Properties", {}))
    bucket = props.get("BucketName") or f"{fanout.stack_name}-{name}".lower()
    create: dict[str, Any] = {"Bucket": bucket}
    if fanout.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": fanout.region}
    if _attribute(props.get("ObjectLockEnabled", False)) == "true":
        # Object Lock can only be turned on when the bucket is created.
        create["ObjectLockEnabledForBucket"] = True
    clients.s3.create_bucket(**create)
    resolver.physical[name] = bucket
    resolver.attributes[name] = {
        "Arn": f"arn:aws:s3:::{bucket}",
        "DomainName": f"{bucket}.s3.amazonaws.com",
    }
    fanout.buckets[name] = bucket
    versioning = props.get("VersioningConfiguration")
    if versioning:
        clients.s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": versioning["Status"]}
        )
    encryption = props.get("BucketEncryption")
    if encryption:
        clients.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    _encryption_rule(rule)
                    for rule in encryption["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    lock = props.get("ObjectLockConfiguration")
    if lock:
        clients.s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration=_object_lock_configuration(lock)
        )
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        clients.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={k: bool(v) for k, v in block.items()},  # type: ignore[arg-type]
        )
    ownership = props.get("OwnershipControls")
    if ownership:
        clients.s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=ownership)
    notifications = props.get("NotificationConfiguration")
    if notifications:
        clients.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=_notification_configuration(notifications)
        )


def _object_lock_configuration(lock: dict[str, Any]) -> Any:
    """CloudFormation's ObjectLockConfiguration -> the API's (the retention period is a number
    there; a parameter resolves to text)."""
    converted: dict[str, Any] = {"ObjectLockEnabled": lock.get("ObjectLockEnabled", "Enabled")}
    retention = (lock.get("Rule") or {}).get("DefaultRetention")
    if retention:
        converted["Rule"] = {
            "DefaultRetention": {
                "Mode": retention["Mode"],
                **{k: int(retention[k]) for k in ("Days", "Years") if k in retention},
            }
        }
    return converted


def _encryption_rule(rule: dict[str, Any]) -> Any:
    default = rule["ServerSideEncryptionByDefault"]
    converted: dict[str, Any] = {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": default["SSEAlgorithm"]}
    }
    if "KMSMasterKeyID" in default:
        converted["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default[
            "KMSMasterKeyID"
        ]
    if "BucketKeyEnabled" in rule:
        converted["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return converted


def _notification_configuration(notifications: dict[str, Any]) -> Any:
    """CloudFormation's one-event-per-entry shape -> the API's, one entry per destination and
    filter (S3 rejects overlapping entries for the same destination)."""
    grouped: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind, destination, api_kind, api_destination in (
        ("TopicConfigurations", "Topic", "TopicConfigurations", "TopicArn"),
        ("QueueConfigurations", "Queue", "QueueConfigurations", "QueueArn"),
        ("LambdaConfigurations", "Function", "LambdaFunctionConfigurations", "LambdaFunctionArn"),
    ):
        for entry in notifications.get(kind, []):
            filter_ = entry.get("Filter")
            group = (api_kind, entry[destination], json.dumps(filter_, sort_keys=True))
            if group not in grouped:
                grouped[group] = {api_destination: entry[destination], "Events": []}
                if filter_:
                    grouped[group]["Filter"] = {"Key": {"FilterRules": filter_["S3Key"]["Rules"]}}
            grouped[group]["Events"].append(entry["Event"])
    configuration: dict[str, list[dict[str, Any]]] = {}
    for (api_kind, _destination, _filter), entry in grouped.items():
        configuration.setdefault(api_kind, []).append(entry)
    if notifications.get("EventBridgeConfiguration"):
        configuration["EventBridgeConfiguration"] = []
    return configuration


def _consumer(
    resolver: Resolver,
    resources: Mapping[str, dict[str, Any]],
    fanout: Fanout,
    spec: dict[str, Any],
) -> ConsumerSpec:
    raw = spec["Properties"]
    function_node = raw["FunctionName"]
    if not (isinstance(function_node, dict) and "Ref" in function_node):
        raise TemplateError("an event source mapping must !Ref its function")
    function = str(function_node["Ref"])
    props = resolver.resolve(raw)
    queue = next(
        (q.logical_id for q in fanout.queues.values() if q.arn == props["EventSourceArn"]), None
    )
    if queue is None:
        raise TemplateError(
            f"event source {props['EventSourceArn']} is not a queue of the template"
        )
    function_props = resources[function]["Properties"]
    variables = function_props.get("Environment", {}).get("Variables", {})
    environment: dict[str, str] = {}
    for key, value in variables.items():
        resolved = resolver.resolve(value)
        # AWS::NoValue: a variable of a branch not taken (the database settings the chosen
        # authentication does not use); CloudFormation leaves it out, and so do we.
        if resolved is NO_VALUE or resolved is None:
            continue
        if "{{resolve:" not in str(resolved):
            environment[key] = _attribute(resolved)
    scaling = props.get("ScalingConfig") or {}
    return ConsumerSpec(
        function=function,
        function_name=resolver.physical[function],
        handler=str(resolver.resolve(function_props["Handler"])),
        queue=queue,
        batch_size=int(props.get("BatchSize", 10)),
        batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures"
        in props.get("FunctionResponseTypes", []),
        timeout=float(resolver.resolve(function_props.get("Timeout", 3))),
        memory_mb=int(resolver.resolve(function_props.get("MemorySize", 128))),
        maximum_concurrency=int(scaling["MaximumConcurrency"])
        if "MaximumConcurrency" in scaling
        else None,
        environment=environment,
    )


def _attribute(value: Any) -> str:
    """A resolved property as an SQS/SNS attribute string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
