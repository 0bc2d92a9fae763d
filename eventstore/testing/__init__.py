"""Testing your projections and reactors: real-shaped S3 events, a migrated log, moto, and
helpers that run a projection or a reactor through the library's own code paths.

The pytest plugin (eventstore.testing.plugin, registered as the `eventstore` pytest11 entry
point) provides the fixtures `eventstore_db_url`, `eventstore_log`, `eventstore`,
`eventstore_projections` and `moto_s3`. See docs/testing.md.
"""

from eventstore.testing.aws import MotoMissingError, MotoS3, moto_s3_context
from eventstore.testing.events import (
    DEFAULT_BUCKET,
    REGION,
    Notifications,
    aws_time,
    etag_of,
    events_of,
    s3_notification,
    s3_record,
    sequencer_at,
    sns_message,
    sqs_event_of,
)
from eventstore.testing.harness import (
    ProjectionFailedError,
    ReactorFailedError,
    ReactorRun,
    ingest,
    migrated_sqlite_url,
    run_projection,
    run_reactor,
    table_rows,
)

__all__ = [
    "DEFAULT_BUCKET",
    "REGION",
    "MotoMissingError",
    "MotoS3",
    "Notifications",
    "ProjectionFailedError",
    "ReactorFailedError",
    "ReactorRun",
    "aws_time",
    "etag_of",
    "events_of",
    "ingest",
    "migrated_sqlite_url",
    "moto_s3_context",
    "run_projection",
    "run_reactor",
    "s3_notification",
    "s3_record",
    "sequencer_at",
    "sns_message",
    "sqs_event_of",
    "table_rows",
]
