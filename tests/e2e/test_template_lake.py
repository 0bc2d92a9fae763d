"""The lake in infra/template.yaml: a Glue table over what `eventstore export` writes, with
partition projection on dt, and an export into the fan-out's lake bucket (moto) landing
exactly where that table reads."""

from datetime import date, timedelta
from typing import Any

import pyarrow as pa

from eventstore.export import S3Prefix, export_log, open_target
from eventstore.export.parquet import SCHEMA
from eventstore.local.template import DEFAULT_TEMPLATE, Resolver, load_template
from tests.e2e.conftest import REGION, Stack
from tests.helpers import make_event

TEMPLATE = load_template(DEFAULT_TEMPLATE)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
TABLE = RESOURCES["LakeEventsTable"]["Properties"]["TableInput"]


def athena_type(arrow: pa.DataType) -> str:
    if pa.types.is_int64(arrow):
        return "bigint"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    assert pa.types.is_string(arrow), arrow
    return "string"


def test_the_glue_table_has_the_exports_columns_with_athena_types() -> None:
    columns = [(c["Name"], c["Type"]) for c in TABLE["StorageDescriptor"]["Columns"]]
    assert columns == [(f.name, athena_type(f.type)) for f in SCHEMA]
    assert TABLE["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    serde = TABLE["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde.endswith("ParquetHiveSerDe")


def test_partitions_are_projected_by_day_with_no_crawler() -> None:
    parameters = TABLE["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.dt.type"] == "date"
    assert parameters["projection.dt.format"] == "yyyy-MM-dd"
    assert parameters["projection.dt.interval.unit"] == "DAYS"
    assert not [n for n, s in RESOURCES.items() if s["Type"] == "AWS::Glue::Crawler"]
    assert RESOURCES["LakeEventsTable"]["Properties"]["DatabaseName"] == {"Ref": "LakeDatabase"}


def test_an_export_lands_where_the_glue_table_reads(stack: Stack) -> None:
    lake = stack.fanout.buckets["LakeBucket"]
    destination = stack.fanout.outputs["LakeLocation"]
    assert destination == f"s3://{lake}/events/"
    log = stack.store()
    log.append(
        [make_event("ObjectCreated:Put", key=f"k=={n}/ü", seconds=n * 86_400) for n in range(3)]
    )

    report = export_log(
        log, open_target(destination, endpoint_url=stack.endpoint_url, region=REGION)
    )

    resolver = Resolver.for_template(
        TEMPLATE, {"BucketName": "x", "CodeBucket": "x"}, stack_name="e2e", region=REGION,
        account_id="123456789012",
    )  # fmt: skip
    resolver.physical["LakeBucket"] = lake
    template = resolver.resolve(TABLE["Parameters"]["storage.location.template"])
    location = resolver.resolve(TABLE["StorageDescriptor"]["Location"])
    assert location == destination
    days = [(date(2026, 3, 1) + timedelta(days=n)).isoformat() for n in range(3)]
    keys = sorted(
        f"s3://{lake}/{o['Key']}" for o in stack.s3.list_objects_v2(Bucket=lake)["Contents"]
    )
    assert report.files == len(keys) == 3
    assert [k.rsplit("/", 1)[0] + "/" for k in keys] == [
        template.replace("${dt}", day) for day in days
    ]
    rule = stack.s3.get_bucket_encryption(Bucket=lake)["ServerSideEncryptionConfiguration"]
    assert rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert isinstance(open_target(destination), S3Prefix)
