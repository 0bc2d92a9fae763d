"""Replay sources that fill the log from history kept elsewhere: the raw-notification
archive, S3's own version listing, and an SQS queue (typically the dead-letter queue).

Each goes through the same parsing and append as ingestion, and each is idempotent: the
same S3 change always gets the same event id. boto3 clients are passed in; `make_client`
makes one for a region and an optional endpoint.
"""

from eventstore.replay.archive import (
    DEFAULT_PREFIX,
    archive_key,
    parse_archive_key,
    replay_from_archive,
)
from eventstore.replay.aws import make_client, parse_s3_location
from eventstore.replay.base import ReplayFailure, ReplaySourceError, ReplaySummary
from eventstore.replay.s3_versions import (
    BACKFILL_CREATED,
    BACKFILL_DELETE_MARKER,
    VersionedEventLog,
    backfill_from_s3_versions,
)
from eventstore.replay.sqs import drain_queue

__all__ = [
    "BACKFILL_CREATED",
    "BACKFILL_DELETE_MARKER",
    "DEFAULT_PREFIX",
    "ReplayFailure",
    "ReplaySourceError",
    "ReplaySummary",
    "VersionedEventLog",
    "archive_key",
    "backfill_from_s3_versions",
    "drain_queue",
    "make_client",
    "parse_archive_key",
    "parse_s3_location",
    "replay_from_archive",
]
