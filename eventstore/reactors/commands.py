"""The reactors' commands: `eventstore trace`, `eventstore reactors list | status | run`.
eventstore/cli.py parses the arguments and opens the store; this module runs the command and
writes its output (stdout) and diagnostics (stderr)."""

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TextIO

from eventstore.core.events import StoredEvent
from eventstore.core.timeutil import format_time
from eventstore.errors import ConfigurationError
from eventstore.output import EVENT_FIELDS, EVENT_TABLE_FIELDS, escape_controls, event_row, render
from eventstore.progress import Progress
from eventstore.projections.reactor_outcomes import ReactorOutcomesProjection
from eventstore.reactors.base import Reactor
from eventstore.reactors.history import (
    DEFAULT_CHUNK,
    RunSummary,
    dry_run_from_log,
    history_query,
    new_run_id,
    run_from_log,
)
from eventstore.reactors.registry import get_reactor, load_reactors
from eventstore.reactors.runner import Reaction, ReactorRunner
from eventstore.reactors.status import ReactorStatus, reactor_statuses
from eventstore.reactors.trace import (
    Handling,
    Lineage,
    Origin,
    TracedEvent,
    lineage_document,
    trace,
)
from eventstore.wiring import EventStore

EXIT_OK, EXIT_FAILED = 0, 1
OUTCOMES = ReactorOutcomesProjection.name  # the projection trace and status read
INDENT = "  "


# -- trace ---------------------------------------------------------------------------------------


def trace_command(
    event_store: EventStore,
    bucket: str,
    key: str,
    *,
    version_id: str | None,
    fmt: str,
    lag: int | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the lineage of s3://bucket/key; exit 1 when the log knows nothing of it."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    lineage = trace(event_store.log, bucket, key, version_id)
    if not lineage.found:
        what = f"s3://{bucket}/{key}" + (f" version {version_id}" if version_id else "")
        print(f"eventstore: no events of {escape_controls(what)} in the log", file=err)
        return EXIT_FAILED
    if fmt == "json":
        out.write(json.dumps(lineage_document(lineage, lag=lag), ensure_ascii=False, indent=2))
        out.write("\n")
    else:
        for line in lineage_lines(lineage):
            out.write(line + "\n")
    return EXIT_OK


def lineage_lines(lineage: Lineage) -> Iterator[str]:
    """The lineage as an indented tree of plain text lines (keys' control characters
    escaped)."""
    yield _uri(lineage.bucket, lineage.key) + (
        f" version {_text(lineage.version_id)}" if lineage.version_id else ""
    )
    if lineage.derived_from:
        yield "derived from:"
        for origin in lineage.derived_from:
            yield from _origin_lines(origin, 1, root=True)
    else:
        yield "derived from: nothing a reactor recorded (an original upload)"
    yield "events:" if lineage.events else "events: none in the log yet"
    for traced in lineage.events:
        yield from _event_lines(traced, 1)


def _text(value: object) -> str:
    return escape_controls(str(value))


def _uri(bucket: str, key: str) -> str:
    return escape_controls(f"s3://{bucket}/{key}")


def _describe_event(stored: StoredEvent, *, with_key: bool = False) -> str:
    event = stored.event
    parts = [f"#{stored.position}", format_time(event.event_time), _text(event.event_name)]
    if with_key:
        parts.append(_uri(event.bucket, event.key))
    if event.version_id:
        parts.append(f"version {_text(event.version_id)}")
    if event.size is not None:
        parts.append(f"size {event.size}")
    if event.etag:
        parts.append(f"etag {_text(event.etag)}")
    if event.principal_id:
        parts.append(f"by {_text(event.principal_id)}")
    return "  ".join(parts)


_TRUNCATED = {
    "depth": "not followed further: depth bound reached",
    "cycle": "already shown above (a cycle): not followed again",
    "limit": "not followed further: the trace shows as many events as it may",
}


def _event_lines(traced: TracedEvent, level: int) -> Iterator[str]:
    pad = INDENT * level
    yield pad + _describe_event(traced.stored)
    if traced.truncated:
        yield pad + INDENT + f"({_TRUNCATED[traced.truncated]})"
        return
    if not traced.handlings:
        yield pad + INDENT + "no reactor has handled this event"
    for handling in traced.handlings:
        yield from _handling_lines(handling, level + 1)


def _handling_lines(handling: Handling, level: int) -> Iterator[str]:
    pad = INDENT * level
    name = f"{_text(handling.reactor)} v{handling.reactor_version}"
    processed = handling.processed
    if processed is not None:
        took = f" in {processed.duration_ms:g} ms" if processed.duration_ms is not None else ""
        retried = f" after {len(handling.failures)} failed attempt(s)" if handling.failures else ""
        yield f"{pad}{name}: processed at {format_time(processed.at)}{took}{retried}"
    elif handling.failures:
        yield f"{pad}{name}: FAILED ({len(handling.failures)} attempt(s), not processed)"
    else:
        yield f"{pad}{name}: outputs recorded without a processed outcome (incomplete)"
    for failure in handling.failures:
        yield (
            f"{pad}{INDENT}failed attempt {failure.attempt} at {format_time(failure.at)}: "
            f"{_text(failure.reason)}"
        )
        for left in failure.partial_outputs:  # written before it failed, still in S3
            yield f"{pad}{INDENT * 2}left behind " + _object_text(
                str(left.get("bucket")), str(left.get("key")), left.get("versionId"),
                left.get("eTag"), left.get("size"),
            )  # fmt: skip
        more = failure.partial_output_count - len(failure.partial_outputs)
        if more > 0:
            yield f"{pad}{INDENT * 2}… and {more} more left behind"
    for output in handling.outputs:
        produced = output.produced
        line = f"{pad}{INDENT}produced " + _object_text(
            produced.bucket, produced.key, produced.version_id, produced.etag, produced.size
        )
        if output.truncated:
            yield f"{line}  ({_TRUNCATED[output.truncated]})"
            continue
        yield line if output.seen else f"{line}  (not yet seen in the log)"
        for traced in output.events:
            yield from _event_lines(traced, level + 2)


def _object_text(
    bucket: str, key: str, version_id: str | None, etag: str | None, size: int | None
) -> str:
    line = _uri(bucket, key)
    if version_id:
        line += f"  version {_text(version_id)}"
    if etag:
        line += f"  etag {_text(etag)}"
    if size is not None:
        line += f"  size {size}"
    return line


def _origin_lines(origin: Origin, level: int, *, root: bool = False) -> Iterator[str]:
    pad = INDENT * level
    produced = origin.produced
    what = ""
    if root:  # which write of the traced object this origin is
        if produced.version_id:
            what = f"version {_text(produced.version_id)} "
        elif produced.etag:
            what = f"etag {_text(produced.etag)} "
        what += "" if origin.seen else "(not yet seen in the log) "
    by = f"{_text(produced.reactor)} v{produced.reactor_version} at {format_time(produced.at)}"
    yield f"{pad}{what}made by {by} from:"
    if origin.cause is None:
        yield f"{pad}{INDENT}event {produced.cause_event_id} (not in the log)"
        return
    yield pad + INDENT + _describe_event(origin.cause, with_key=True)
    if origin.truncated:
        yield pad + INDENT * 2 + f"({_TRUNCATED[origin.truncated]})"
    elif not origin.derived_from:
        yield pad + INDENT * 2 + "(an original upload)"
    for earlier in origin.derived_from:
        yield from _origin_lines(earlier, level + 2)


# -- reactors list -------------------------------------------------------------------------------

LIST_FIELDS = (
    "name", "version", "description", "event_names", "prefix", "suffixes", "filter_policy",
)  # fmt: skip
LIST_TABLE_FIELDS = ("name", "version", "event_names", "prefix", "suffixes", "description")


def list_command(fmt: str, out: TextIO | None = None) -> int:
    """Every registered reactor, with its filter and the SNS filter policy it implies."""
    out = out if out is not None else sys.stdout
    structured = fmt in ("json", "jsonl")

    def row(reactor: Reactor) -> dict[str, Any]:
        wants = reactor.wants
        policy = wants.filter_policy()
        return {
            "name": reactor.name,
            "version": reactor.version,
            "description": reactor.description,
            "event_names": list(wants.event_names) if structured else " ".join(wants.event_names),
            "prefix": wants.prefix,
            "suffixes": list(wants.suffixes) if structured else " ".join(wants.suffixes),
            "filter_policy": policy if structured else json.dumps(policy, sort_keys=True),
        }

    rows = (row(r) for r in sorted(load_reactors(), key=lambda r: r.name))
    render(rows, LIST_FIELDS, fmt, out, table_fields=LIST_TABLE_FIELDS)
    return EXIT_OK


# -- reactors status -----------------------------------------------------------------------------

STATUS_FIELDS = (
    "reactor", "version", "processed", "produced", "failed_attempts", "failing_events",
    "last_error", "last_error_at", "unprocessed", "oldest_unprocessed_position",
    "oldest_unprocessed_key", "oldest_unprocessed_event_time", "latency_samples",
    "latency_p50_s", "latency_p95_s",
)  # fmt: skip
STATUS_TABLE_FIELDS = (
    "reactor", "version", "processed", "failing_events", "failed_attempts", "produced",
    "unprocessed", "oldest_unprocessed_event_time", "oldest_unprocessed_key", "latency_p50_s",
    "latency_p95_s", "last_error",
)  # fmt: skip


def status_row(status: ReactorStatus) -> dict[str, Any]:
    oldest = status.oldest_unprocessed
    return {
        "reactor": status.reactor,
        "version": status.version,
        "processed": status.processed,
        "produced": status.produced,
        "failed_attempts": status.failed_attempts,
        "failing_events": status.failing_events,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
        "unprocessed": status.unprocessed,
        "oldest_unprocessed_position": oldest.position if oldest else None,
        "oldest_unprocessed_key": f"s3://{oldest.bucket}/{oldest.key}" if oldest else None,
        "oldest_unprocessed_event_time": oldest.event_time if oldest else None,
        "latency_samples": status.latency_samples,
        "latency_p50_s": status.latency_p50_s,
        "latency_p95_s": status.latency_p95_s,
    }


def status_command(
    event_store: EventStore,
    name: str | None,
    fmt: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Figures per reactor; exit 1 when one has events whose latest outcome is a failure."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    reactors = [get_reactor(name)] if name else sorted(load_reactors(), key=lambda r: r.name)
    statuses = reactor_statuses(event_store.log.engine, reactors)
    render((status_row(s) for s in statuses), STATUS_FIELDS, fmt, out,
           table_fields=STATUS_TABLE_FIELDS)  # fmt: skip
    failing = [s for s in statuses if s.failing]
    for status in failing:
        print(
            f"eventstore: reactor {status.reactor}: {status.failing_events} event(s) whose "
            f"latest outcome is a failure; last error: {escape_controls(status.last_error or '')}",
            file=err,
        )
    return EXIT_FAILED if failing else EXIT_OK


# -- reactors run --from log ---------------------------------------------------------------------


def run_command(
    open_store: Callable[[], EventStore],
    name: str,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: tuple[str, ...] = (),
    dry_run: bool = False,
    endpoint_url: str | None = None,
    region: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    fmt: str = "table",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Re-run a reactor over the log's history. Prints a JSON summary (a dry run: the events
    it would react to, in `fmt`, and its counts on stderr); exit 1 if any event failed."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    reactor = get_reactor(name)
    query = history_query(
        reactor, bucket=bucket, prefix=prefix, since=since, until=until, types=types
    )
    if query is None:
        raise ConfigurationError(
            f"--prefix {prefix!r} is outside reactor {name}'s prefix "
            f"{reactor.wants.prefix!r}: it wants no event there"
        )
    event_store = open_store()
    run_id = new_run_id()
    if dry_run:
        summary = RunSummary(reactor.name, reactor.version, run_id, dry_run=True)
        progress = Progress(f"reactors run {name} (dry run)", stream=err)
        pending = dry_run_from_log(
            reactor, event_store.log, query, summary=summary, chunk_size=chunk_size,
            progress=progress,
        )  # fmt: skip
        render((event_row(s) for s in pending), EVENT_FIELDS, fmt, out,
               table_fields=EVENT_TABLE_FIELDS)  # fmt: skip
        progress.close(summary.describe())
        return EXIT_OK
    runner = _runner(reactor, event_store, endpoint_url=endpoint_url, region=region)
    # The attempt numbers of failures count those the projection holds: bring it up to date.
    _catch_up(event_store, err)
    progress = Progress(f"reactors run {name}", stream=err)

    def report(reaction: Reaction) -> None:
        cause = reaction.cause
        progress.message(
            f"eventstore: failed {escape_controls(cause.stream)} ({cause.event_id}): "
            f"{escape_controls(reaction.error or '')}"
        )

    try:
        summary = run_from_log(
            runner, event_store.log, query, run_id=run_id, chunk_size=chunk_size,
            progress=progress, on_failure=report,
        )  # fmt: skip
    except KeyboardInterrupt:
        progress.close("interrupted: outcomes recorded so far are kept; run again to go on")
        raise
    progress.close(summary.describe())
    _catch_up(event_store, err)  # read-your-writes: trace and status see this run
    print(json.dumps(summary.as_dict()), file=out)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _runner(
    reactor: Reactor, event_store: EventStore, *, endpoint_url: str | None, region: str | None
) -> ReactorRunner:
    from eventstore.reactors.aws import S3ObjectStore, SqsMessageSender
    from eventstore.replay.aws import make_client

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    s3 = make_client("s3", endpoint_url=endpoint, region=region)
    sqs = make_client("sqs", endpoint_url=endpoint, region=region)
    return ReactorRunner(reactor, event_store.log, S3ObjectStore(s3), SqsMessageSender(sqs))


def _catch_up(event_store: EventStore, err: TextIO) -> None:
    for report in event_store.catch_up():
        if report.error:
            print(f"eventstore: projection {report.name} failed: {report.error}", file=err)
