"""`eventstore replay --from archive | s3 | sqs`: arguments in, one replay source run, its
summary out (JSON on stdout, a closing line and each failure on stderr)."""

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from eventstore.errors import ConfigurationError
from eventstore.progress import Progress
from eventstore.replay.archive import DEFAULT_PREFIX, replay_from_archive
from eventstore.replay.aws import make_client, parse_s3_location, queue_region
from eventstore.replay.base import ReplaySummary
from eventstore.replay.s3_versions import backfill_from_s3_versions
from eventstore.replay.sqs import drain_queue
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import EventStore

EXIT_OK, EXIT_FAILED = 0, 1
TARGETS = {
    "archive": "s3://BUCKET/PREFIX/ (the archive's prefix; raw/ when none is given)",
    "s3": "s3://BUCKET[/PREFIX]",
    "sqs": "QUEUE_URL",
}


def run_replay(
    source: str,
    target: str | None,
    *,
    event_store: Callable[[], EventStore],  # opened only once the arguments are checked
    endpoint_url: str | None = None,
    region: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one replay source into the store; exit 1 if anything failed."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    if source not in TARGETS:
        raise ConfigurationError(f"unknown replay source {source!r}")
    if not target:
        raise ConfigurationError(f"--from {source} needs {TARGETS[source]}")
    if (since or until) and source != "archive":
        raise ConfigurationError(f"--since / --until apply to --from log and archive, not {source}")
    run = _plan(source, target, endpoint_url=endpoint_url, region=region, since=since, until=until)
    opened = event_store()  # opened once the arguments are known to be usable
    progress = Progress(f"replay from {source}", stream=err)
    summary = run(opened.log, progress)
    progress.close(summary.describe())
    _catch_up(opened, err)
    for failure in summary.failures:
        print(f"eventstore: failed {failure.item}: {failure.reason}", file=err)
    print(json.dumps(summary.as_dict(), ensure_ascii=False), file=out)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _plan(
    source: str,
    target: str,
    *,
    endpoint_url: str | None,
    region: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Callable[[SqlEventStore, Progress], ReplaySummary]:
    """Check the target and make the client; return the replay, still to be run."""
    if source == "sqs":
        sqs = make_client("sqs", endpoint_url=endpoint_url, region=region or queue_region(target))
        return lambda log, progress: drain_queue(log, sqs, target, progress=progress)
    bucket, prefix = parse_s3_location(target)
    s3 = make_client("s3", endpoint_url=endpoint_url, region=region)
    if source == "s3":
        return lambda log, progress: backfill_from_s3_versions(
            log, s3, bucket, prefix, progress=progress
        )
    if not prefix:
        prefix = DEFAULT_PREFIX
    elif not prefix.endswith("/"):
        prefix += "/"
    return lambda log, progress: replay_from_archive(
        log, s3, bucket, prefix, since=since, until=until, progress=progress
    )


def _catch_up(event_store: EventStore, err: TextIO) -> None:
    """Bring the projections up to the new head, as `eventstore ingest` does."""
    for report in event_store.catch_up():
        if report.error:
            print(f"eventstore: projection {report.name} failed: {report.error}", file=err)
