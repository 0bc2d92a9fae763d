"""What a consumer container keeps between invocations: one store per database URL, opened
on first use (never at import), and the Powertools defaults that need no environment."""

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore.wiring import EventStore

SERVICE_DEFAULT = "s3-eventstore"
NAMESPACE_DEFAULT = "S3EventStore"

_event_stores: dict[str, "EventStore"] = {}
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
