"""What a consumer container keeps between invocations: one store per database URL, opened
on first use (never at import), and the Powertools defaults that need no environment."""

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from eventstore.core.events import StoredEvent
    from eventstore.projections.runner import RunReport
    from eventstore.reactors.runner import ReactorRunner
    from eventstore.wiring import EventStore

SERVICE_DEFAULT = "s3-eventstore"
NAMESPACE_DEFAULT = "S3EventStore"

_event_stores: dict[str, "EventStore"] = {}
# By (database URL, reactor name): a runner writes to the log of the URL it was made for, and a
# process that serves several databases (the end-to-end tests, one log per test) must not
# write one's outcomes into another.
_reactor_runners: dict[tuple[str, str], "ReactorRunner"] = {}
_lock = threading.Lock()


def service_name(default: str = SERVICE_DEFAULT) -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE_DEFAULT


def event_store() -> "EventStore":
    """The event store (log, projections, runner) for the database the environment names
    (eventstore.store.credentials: a secret ARN, RDS IAM settings or $EVENTSTORE_DB_URL),
    opened once per container and per URL through eventstore.wiring, like every other entry
    point.

    SQLAlchemy is imported here, on the first invocation, not when the module loads."""
    from eventstore.store.credentials import database_url
    from eventstore.wiring import open_event_store

    url = database_url() or ""
    with _lock:
        existing = _event_stores.get(url)
        if existing is None:
            existing = open_event_store(url or None, auto_upgrade_sqlite=True)
            _event_stores[url] = existing
        return existing


def catch_up_thresholds() -> tuple[int, float]:
    """(min_lag, max_delay): a projection fewer than EVENTSTORE_CATCH_UP_MIN_LAG events
    behind (default 1000) is caught up only once its checkpoint is older than
    EVENTSTORE_CATCH_UP_MAX_DELAY seconds (default 5)."""
    min_lag = int(os.environ.get("EVENTSTORE_CATCH_UP_MIN_LAG", "1000"))
    max_delay = float(os.environ.get("EVENTSTORE_CATCH_UP_MAX_DELAY", "5"))
    return min_lag, max_delay


CATCH_UP_SHARE = 0.5  # of the invocation's remaining time, at most
CATCH_UP_RESERVE_MS = 3000  # always left for returning the batch response


def catch_up_seconds(remaining_ms: int) -> float:
    """How long projections may catch up in this invocation, from the time Lambda has left."""
    return max(0.0, min(remaining_ms * CATCH_UP_SHARE, remaining_ms - CATCH_UP_RESERVE_MS)) / 1000


def catch_up(
    event_store: "EventStore",
    context: "LambdaContext",
    head: int | None,
    appended: "Sequence[StoredEvent]" = (),
) -> list["RunReport"]:
    """Catch projections up for part of the invocation's remaining time (see
    catch_up_thresholds for when a projection only a little behind is left for later);
    `appended`, what the invocation just stored, is folded without being read back."""
    import time

    budget = catch_up_seconds(context.get_remaining_time_in_millis())
    if budget <= 0:
        return []  # no time left in this invocation: a later one catches up
    min_lag, max_delay = catch_up_thresholds()
    return event_store.runner.catch_up(
        deadline=time.monotonic() + budget,
        min_lag=min_lag,
        max_delay=max_delay,
        head=head,
        appended=appended,
    )


def reactor_runner(name: str) -> "ReactorRunner":
    """The runner of reactor `name` over this container's event store, S3 and SQS clients
    (the default credential chain; AWS_ENDPOINT_URL points them at an emulator), made on
    first use and kept."""
    from eventstore.reactors.aws import S3ObjectStore, SqsMessageSender
    from eventstore.reactors.registry import get_reactor
    from eventstore.reactors.runner import ReactorRunner
    from eventstore.replay.aws import make_client
    from eventstore.store.credentials import database_url

    key = (database_url() or "", name)
    with _lock:
        existing = _reactor_runners.get(key)
    if existing is not None:
        return existing
    made = ReactorRunner(
        get_reactor(name),
        event_store().log,
        S3ObjectStore(make_client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))),
        SqsMessageSender(make_client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))),
    )
    with _lock:
        return _reactor_runners.setdefault(key, made)
