"""The consumers' CloudWatch metrics (EMF through Powertools): what one invocation counted,
kept in the invocation and flushed at its end, or never kept at all when metrics are off.

Powertools' shared `Metrics` object keeps adding values while POWERTOOLS_METRICS_DISABLED is
set (its flush skips printing but never clears), so a warm container grows without bound, and
a dimension added in one invocation stays for the next. Here each invocation gets a fresh
`InvocationMetrics`; when metrics are disabled it is a no-op that keeps nothing, and when they
are on it builds a fresh Powertools EMF provider only at flush time, with this invocation's
dimensions only.

Metric names and units (namespace $POWERTOOLS_METRICS_NAMESPACE, default S3EventStore;
dimension `service`, and `reactor` on the reactor metrics):

- EventsReceived / EventsAppended / EventsDuplicates / EventsConflicts / EventsSkipped /
  EventsFailed (Count, one value per batch);
- IngestLag (Seconds, one value per S3 event received: now minus its S3 event time; EMF takes
  at most 100 values per metric per document, so Powertools prints a document per 100 and
  every value reaches CloudWatch, where p50/p99 are computed exactly);
- ProjectionLagEvents / ProjectionLagSeconds (dimension `projection`) after the catch-up, at
  most once per EVENTSTORE_LAG_METRICS_SECONDS (default 30) per container: measuring them
  takes two queries, which per invocation halved the consumer's throughput, and CloudWatch
  keeps them per minute anyway (the alarm reads the maximum of each minute);
  ProjectionFailures (Count);
- ReactorProcessed / ReactorFailed / ReactorProduced (Count) and ReactorDuration
  (Milliseconds, one value per event reacted to).
"""

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from consumers import runtime

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from eventstore.core.events import NewEvent, StoredEvent
    from eventstore.health import ProjectionLag
    from eventstore.wiring import EventStore

COUNT, SECONDS, MILLISECONDS = "Count", "Seconds", "Milliseconds"

LAG_INTERVAL_DEFAULT = 30.0  # seconds; under the alarm's 60-second period
_lags_reported: dict[str, float] = {}  # database URL -> when its lags were last measured


def lag_interval() -> float:
    """Seconds between two measurements of the projections' lags in one container."""
    return float(os.environ.get("EVENTSTORE_LAG_METRICS_SECONDS", LAG_INTERVAL_DEFAULT))


def _lags_due(event_store: "EventStore") -> bool:
    now = time.monotonic()
    database = event_store.log.engine.url.render_as_string(hide_password=True)
    last = _lags_reported.get(database)
    if last is not None and now - last < lag_interval():
        return False
    _lags_reported[database] = now
    return True


# EMF's limit on dimension sets per document; one per projection, so this bounds how many
# projections one invocation reports (more are reported by `eventstore status`).
MAX_PROJECTION_SETS = 30


@dataclass(slots=True)
class _Series:
    unit: str
    values: list[float] = field(default_factory=list)


@dataclass(slots=True)
class InvocationMetrics:
    """The metrics of one invocation: series under one dimension set, and per-projection
    series (each its own EMF document, dimensioned by projection)."""

    enabled: bool
    dimensions: dict[str, str] = field(default_factory=dict)
    series: dict[str, _Series] = field(default_factory=dict)
    per_projection: dict[str, dict[str, _Series]] = field(default_factory=dict)

    @classmethod
    def start(cls, **dimensions: str) -> "InvocationMetrics":
        """Read the switch once per invocation, so a changed environment takes effect."""
        return cls(enabled=not is_metrics_disabled(), dimensions=dict(dimensions))

    def add(self, name: str, unit: str, value: float) -> None:
        if self.enabled:
            self.series.setdefault(name, _Series(unit)).values.append(float(value))

    def add_all(self, name: str, unit: str, values: Iterable[float]) -> None:
        if self.enabled:
            self.series.setdefault(name, _Series(unit)).values.extend(float(v) for v in values)

    def ingest_lag(self, events: Iterable["NewEvent"], now: datetime | None = None) -> None:
        """Seconds from each event's S3 event time to now (a clock skew shows as 0)."""
        if not self.enabled:
            return
        at = now or datetime.now(UTC)
        self.add_all(
            "IngestLag", SECONDS, (max(0.0, (at - e.event_time).total_seconds()) for e in events)
        )

    def projection_lags(self, lags: Iterable["ProjectionLag"]) -> None:
        if not self.enabled:
            return
        for lag in lags:
            if len(self.per_projection) >= MAX_PROJECTION_SETS:
                break
            series = self.per_projection.setdefault(lag.name, {})
            series.setdefault("ProjectionLagEvents", _Series(COUNT)).values.append(lag.events)
            series.setdefault("ProjectionLagSeconds", _Series(SECONDS)).values.append(lag.seconds)

    def flush(self) -> None:
        """Print the EMF documents to stdout (Lambda's log, which CloudWatch reads) and keep
        nothing; with metrics disabled there is nothing to print."""
        if not self.enabled:
            return
        documents = [(self.series, self.dimensions)] if self.series else []
        documents += [
            (series, {**self.dimensions, "projection": name})
            for name, series in self.per_projection.items()
        ]
        if documents:
            _print(documents)
        self.series = {}
        self.per_projection = {}


def _print(documents: list[tuple[dict[str, _Series], dict[str, str]]]) -> None:
    # Imported here: the provider module pulls in Powertools' EMF validation, which only an
    # invocation with metrics on needs.
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    # One provider for the invocation's documents: each flush prints one and clears it.
    provider = AmazonCloudWatchEMFProvider(
        namespace=runtime.metrics_namespace(), service=runtime.service_name()
    )
    for series, dimensions in documents:
        for dimension, label in dimensions.items():
            provider.add_dimension(name=dimension, value=label)
        for name, one in series.items():
            for value in one.values:
                provider.add_metric(name=name, unit=one.unit, value=value)
        provider.flush_metrics(raise_on_empty_metrics=False)


def with_metrics(
    dimensions: Callable[[], dict[str, str]] | None = None,
) -> Callable[
    [Callable[[dict[str, Any], "LambdaContext", InvocationMetrics], dict[str, Any]]],
    Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]],
]:
    """A handler decorator: a fresh InvocationMetrics per invocation, flushed when the handler
    returns or raises (what it counted before failing is still true)."""

    def decorate(
        handle: Callable[[dict[str, Any], "LambdaContext", InvocationMetrics], dict[str, Any]],
    ) -> Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]:
        @functools.wraps(handle)
        def handler(event: dict[str, Any], context: "LambdaContext") -> dict[str, Any]:
            metrics = InvocationMetrics.start(**(dimensions() if dimensions else {}))
            try:
                return handle(event, context, metrics)
            finally:
                metrics.flush()

        return handler

    return decorate


def catch_up_measured(
    event_store: "EventStore",
    context: "LambdaContext",
    head: int | None,
    metrics: InvocationMetrics,
    logger: "Logger",
    *,
    appended: "Sequence[StoredEvent]" = (),
) -> None:
    """Catch projections up (runtime.catch_up), log and count their failures, and measure
    each projection's lag after it (two small queries, made only when metrics are on and
    lag_interval() has passed since this container last measured them)."""
    failures = 0
    for report in runtime.catch_up(event_store, context, head, appended):
        if report.error:
            failures += 1
            logger.error(
                "projection failed", extra={"projection": report.name, "error": report.error}
            )
    metrics.add("ProjectionFailures", COUNT, failures)
    if metrics.enabled and _lags_due(event_store):
        from eventstore.health import projection_lags

        metrics.projection_lags(projection_lags(event_store))
