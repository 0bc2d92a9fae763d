"""`eventstore status`: one screen for the on-call engineer (eventstore.health gathers the
figures), exit 1 when something needs attention, so it can run from cron."""

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from eventstore.core.timeutil import format_time
from eventstore.health import Health, QueueDepth, dlq_urls, gather, queue_depths
from eventstore.output import escape_controls
from eventstore.wiring import EventStore

STATUS_FORMATS = ("table", "json")


def status_command(
    event_store: EventStore,
    *,
    dlq: Sequence[str],
    fmt: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    out: TextIO | None = None,
) -> int:
    from eventstore.reactors.registry import load_reactors

    urls = dlq_urls(dlq)

    def depths() -> list[QueueDepth]:
        from eventstore.replay.aws import make_client

        return queue_depths(urls, make_client("sqs", endpoint_url=endpoint_url, region=region))

    health = gather(event_store, load_reactors(), depths if urls else None)
    out = out or sys.stdout
    if fmt == "json":
        json.dump(as_json(health), out)
        out.write("\n")
    else:
        _table(health, out)
    return 0 if health.ok else 1


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def as_json(health: Health) -> dict[str, Any]:
    def verify(run: Any) -> dict[str, Any] | None:
        if run is None:
            return None
        return {
            "checked_at": _time(run.checked_at),
            "ok": run.ok,
            "checked": run.checked,
            "anchor": run.head_anchor,
            "checked_against": run.anchor,
            "first_bad_position": run.first_bad_position,
            "reason": run.reason,
        }

    return {
        "ok": health.ok,
        "problems": health.problems,
        "now": _time(health.now),
        "head": {
            "position": health.head.position,
            "recorded_at": _time(health.head.recorded_at),
            "newest_s3_event_time": _time(health.head.newest_s3_event_time),
        },
        "ingest_lag_seconds": health.ingest_lag_seconds,
        "projections": [
            {
                "name": p.name,
                "state": p.state,
                "lag_events": p.events,
                "lag_seconds": p.seconds,
                "last_error": p.last_error,
            }
            for p in health.projections
        ],
        "reactors": [
            {
                "name": r.reactor,
                "processed": r.processed,
                "failed_attempts": r.failed_attempts,
                "failing_events": r.failing_events,
                "last_error": r.last_error,
                "last_error_at": _time(r.last_error_at),
                "unprocessed": r.unprocessed,
            }
            for r in health.reactors
        ],
        "dead_letter_queues": [
            {"url": q.url, "messages": q.visible, "in_flight": q.in_flight, "delayed": q.delayed}
            for q in health.queues
        ],
        "last_verify": verify(health.last_verify),
        "last_verify_passed": verify(health.last_passed),
    }


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    if value < 172800:
        return f"{value / 3600:.1f}h"
    return f"{value / 86400:.1f}d"


def _table(health: Health, out: TextIO) -> None:
    def line(text: str = "") -> None:
        out.write(escape_controls(text) + "\n")

    line("ATTENTION" if health.problems else "ok")
    for problem in health.problems:
        line(f"  ! {problem}")
    head = health.head
    line()
    line(
        f"log      head {head.position}, last stored {_time(head.recorded_at) or '-'}; "
        f"ingest lag {_seconds(health.ingest_lag_seconds)} "
        f"(newest S3 event {_time(head.newest_s3_event_time) or '-'})"
    )
    run, passed = health.last_verify, health.last_passed
    if run is None:
        line("verify   never run (`eventstore verify` records its result)")
    else:
        verdict = "passed" if run.ok else f"FAILED at {run.first_bad_position}"
        line(f"verify   last run {_time(run.checked_at)}: {verdict}")
        if passed is not None:
            line(f"         last passed {_time(passed.checked_at)}, anchor {passed.head_anchor}")
    line()
    line("projection                 state        lag events  lag")
    for p in health.projections:
        line(f"{p.name:<26} {p.state:<12} {p.events:>10}  {_seconds(p.seconds)}")
        if p.last_error and p.state in ("failed", "cut-off"):
            line(f"  {p.last_error}")
    if health.reactors:
        line()
        line("reactor                    processed  failing  unprocessed  last error")
        for r in health.reactors:
            error = f"{_time(r.last_error_at)} {r.last_error}" if r.failing else ""
            line(
                f"{r.reactor:<26} {r.processed:>9}  {r.failing_events:>7}  "
                f"{r.unprocessed:>11}  {error}"
            )
    if health.queues:
        line()
        line("dead-letter queue                                             messages")
        for q in health.queues:
            line(f"{q.url:<60} {q.total:>9}")
