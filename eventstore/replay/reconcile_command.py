"""`eventstore reconcile s3://BUCKET[/PREFIX]`: the object catalog against what S3 holds
(ListObjectVersions or an S3 Inventory report), the differences and completeness as a table
or JSON, and with `--repair` a back-fill from S3's versions and a second report."""

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from eventstore.errors import ConfigurationError
from eventstore.output import render
from eventstore.progress import Progress
from eventstore.replay.aws import make_client, parse_s3_location
from eventstore.replay.base import ReplaySummary
from eventstore.replay.reconcile import Difference, LiveObject, Tally, reconcile
from eventstore.replay.s3_current import live_objects_from_inventory, live_objects_from_listing
from eventstore.replay.s3_versions import backfill_from_s3_versions
from eventstore.wiring import CATALOG, EventStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EXIT_OK, EXIT_INCOMPLETE = 0, 1
REPORT_FORMATS = ("table", "json")
# Up to this many keys to repair are back-filled key by key; past it, the whole prefix is
# listed once (cheaper than thousands of listings, and the key list stays bounded).
REPAIR_KEYS = 1000

DIFFERENCE_FIELDS = (
    "kind", "key", "fields", "s3_version_id", "s3_size", "s3_etag", "log_version_id",
    "log_size", "log_etag",
)  # fmt: skip
DIFFERENCE_TABLE_FIELDS = ("kind", "key", "fields", "s3_version_id", "log_version_id")
PREFIX_FIELDS = (
    "prefix", "s3_objects", "complete", "completeness", "missing", "missed_deletes", "differing",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReconcileTarget:
    bucket: str
    prefix: str
    inventory: str | None
    depth: int

    @property
    def source(self) -> str:
        return f"inventory {self.inventory}" if self.inventory else "ListObjectVersions"


def run_reconcile(
    target: str,
    *,
    event_store: Callable[[], EventStore],  # opened only once the arguments are checked
    inventory: str | None = None,
    repair: bool = False,
    depth: int = 1,
    fmt: str = "table",
    endpoint_url: str | None = None,
    region: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Report where the catalog and S3 disagree; exit 1 when they do (after repair, if any)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    if fmt not in REPORT_FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}: use one of {', '.join(REPORT_FORMATS)}")
    if depth < 0:
        raise ConfigurationError("--depth must be 0 or more")
    bucket, prefix = parse_s3_location(target)
    if inventory is not None:
        parse_s3_location(inventory)
    plan = ReconcileTarget(bucket, prefix, inventory, depth)
    s3 = make_client("s3", endpoint_url=endpoint_url, region=region)
    store = event_store()
    lag = _caught_up_catalog(store, err)

    repaired: dict[str, Any] | None = None
    if repair:
        before = Tally(depth)
        keys = _repair_keys(_differences(plan, s3, store, before, err))
        print(f"eventstore: before repair: {_describe(before)}", file=err)
        summary = _repair(store, s3, plan, keys, err)
        lag = _caught_up_catalog(store, err)
        repaired = {"before": _summary(before, lag=None), "backfill": summary.as_dict()}

    tally = Tally(depth)
    differences = _differences(plan, s3, store, tally, err)
    if fmt == "json":
        _write_json(plan, differences=differences, tally=tally, lag=lag, repaired=repaired, out=out)
        # For whoever watches a machine-readable run (the table ends with this line already).
        print(f"eventstore: s3://{bucket}/{prefix}: {_describe(tally)}", file=err)
    else:
        _write_table(plan, differences=differences, tally=tally, lag=lag, out=out)
    return EXIT_INCOMPLETE if tally.total.differences or lag else EXIT_OK


def _caught_up_catalog(store: EventStore, err: TextIO) -> int:
    """Catch the projections up first, so the catalog answers for the whole log; return
    how far it is still behind (a projection that failed says so)."""
    for report in store.catch_up():
        if report.error:
            print(f"eventstore: projection {report.name} failed: {report.error}", file=err)
    status = store.status(CATALOG)
    if status.state != "live":
        print(
            f"eventstore: projection {CATALOG} is {status.state}, {status.lag} events behind "
            "the log: the report compares S3 with what it has folded so far",
            file=err,
        )
    return int(status.lag)


def _differences(
    plan: ReconcileTarget, s3: "S3Client", store: EventStore, tally: Tally, err: TextIO
) -> Iterator[Difference]:
    progress = Progress(f"reconcile: reading {plan.source}", stream=err, enabled=None)
    s3_side: Iterable[LiveObject]
    if plan.inventory:
        s3_side = live_objects_from_inventory(
            s3, plan.inventory, plan.bucket, plan.prefix, progress=progress
        )
    else:
        s3_side = live_objects_from_listing(s3, plan.bucket, plan.prefix, progress=progress)
    log_side = (
        LiveObject.of(e.key, e.version_id, e.size, e.etag)
        for e in store.objects(bucket=plan.bucket, prefix=plan.prefix)
    )
    yield from reconcile(s3_side, log_side, tally)
    if progress.enabled:
        progress.close(f"{tally.total.s3_objects} live objects in S3")


def _repair_keys(differences: Iterable[Difference]) -> list[str] | None:
    """The keys to back-fill, or None when there are more than REPAIR_KEYS of them."""
    keys: list[str] = []
    for difference in differences:
        if len(keys) == REPAIR_KEYS:
            for _ in differences:  # the tally still counts every difference
                pass
            return None
        keys.append(difference.key)
    return keys


def _repair(
    store: EventStore,
    s3: "S3Client",
    plan: ReconcileTarget,
    keys: list[str] | None,
    err: TextIO,
) -> ReplaySummary:
    """Back-fill from S3's versions (events marked as such) the keys that differ, or the
    whole prefix when there are many; what S3 no longer lists cannot be back-filled."""
    progress = Progress("reconcile: back-filling from S3 versions", stream=err)
    total = ReplaySummary("s3")
    for prefix in [plan.prefix] if keys is None else keys:
        # Listing by the key as a prefix also lists longer keys that start with it; the
        # back-fill skips any version the log holds, so that costs a listing, not a duplicate.
        one = backfill_from_s3_versions(store.log, s3, plan.bucket, prefix, progress=progress)
        for name in ("read", "received", "appended", "duplicates", "skipped", "failed"):
            setattr(total, name, getattr(total, name) + getattr(one, name))
        total.failures.extend(one.failures)
    progress.close(total.describe())
    for failure in total.failures:
        print(f"eventstore: failed {failure.item}: {failure.reason}", file=err)
    return total


def _difference_row(difference: Difference) -> dict[str, Any]:
    s3, log = difference.s3, difference.log
    return {
        "kind": str(difference.kind),
        "key": difference.key,
        "fields": ",".join(difference.fields) or None,
        "s3_version_id": s3.version_id if s3 else None,
        "s3_size": s3.size if s3 else None,
        "s3_etag": s3.etag if s3 else None,
        "log_version_id": log.version_id if log else None,
        "log_size": log.size if log else None,
        "log_etag": log.etag if log else None,
    }


def _prefix_rows(tally: Tally) -> Iterator[dict[str, Any]]:
    for prefix in sorted(tally.prefixes):
        counts = tally.prefixes[prefix]
        yield {
            "prefix": prefix,
            "s3_objects": counts.s3_objects,
            "complete": counts.complete,
            "completeness": round(counts.completeness, 6),
            "missing": counts.missing,
            "missed_deletes": counts.missed_deletes,
            "differing": counts.differing,
        }


def _summary(tally: Tally, *, lag: int | None) -> dict[str, Any]:
    total = tally.total
    summary: dict[str, Any] = {
        "s3_objects": total.s3_objects,
        "log_objects": tally.log_objects,
        "complete": total.complete,
        "completeness": round(total.completeness, 6),
        "missing": total.missing,
        "missed_deletes": total.missed_deletes,
        "differing": total.differing,
    }
    if lag is not None:
        summary["catalog_lag"] = lag
    return summary


def _describe(tally: Tally) -> str:
    total = tally.total
    return (
        f"{total.complete} of {total.s3_objects} objects in S3 complete in the log "
        f"({total.completeness:.2%}); missing {total.missing}, "
        f"missed deletes {total.missed_deletes}, differing {total.differing}"
    )


def _write_json(
    plan: ReconcileTarget,
    *,
    differences: Iterator[Difference],
    tally: Tally,
    lag: int,
    repaired: dict[str, Any] | None,
    out: TextIO,
) -> None:
    # One JSON object, laid out as json.dumps(indent=2) would; the differences are written as
    # they are found (bounded memory), so the summary, which needs all of them, comes after.
    head = {
        "bucket": plan.bucket,
        "prefix": plan.prefix,
        "source": plan.source,
        "depth": plan.depth,
    }
    out.write(json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "differences": [')
    for count, difference in enumerate(differences):
        element = json.dumps(_difference_row(difference), ensure_ascii=False, indent=2)
        out.write(("\n" if count == 0 else ",\n") + _indented(element, "    "))
    tail = {
        "summary": _summary(tally, lag=lag),
        "prefixes": list(_prefix_rows(tally)),
        "repair": repaired,
    }
    out.write("\n  ],\n" + _indented(json.dumps(tail, ensure_ascii=False, indent=2), "")[2:] + "\n")


def _indented(text: str, margin: str) -> str:
    # Safe line by line: JSON text has no raw newline inside a string.
    return "\n".join(margin + line for line in text.split("\n"))


def _write_table(
    plan: ReconcileTarget,
    *,
    differences: Iterator[Difference],
    tally: Tally,
    lag: int,
    out: TextIO,
) -> None:
    out.write(f"differences between the log and s3://{plan.bucket}/{plan.prefix} ({plan.source})\n")
    render(
        (_difference_row(d) for d in differences), DIFFERENCE_FIELDS, "table", out,
        table_fields=DIFFERENCE_TABLE_FIELDS,
    )  # fmt: skip
    out.write(f"\ncompleteness per prefix (depth {plan.depth})\n")
    render(_prefix_rows(tally), PREFIX_FIELDS, "table", out)
    out.write(f"\n{_describe(tally)}" + (f"; catalog {lag} events behind" if lag else "") + "\n")
