"""What a consumer container keeps between invocations: one store per database URL, opened
on first use (never at import), and the Powertools defaults that need no environment."""

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore.projections.runner import ProjectionRunner
    from eventstore.store.sql import SqlEventStore

SERVICE_DEFAULT = "s3-eventstore"
NAMESPACE_DEFAULT = "S3EventStore"

_stores: dict[str, "SqlEventStore"] = {}
_runners: dict[str, "ProjectionRunner"] = {}
_lock = threading.Lock()


def service_name(default: str = SERVICE_DEFAULT) -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE_DEFAULT


def store() -> "SqlEventStore":
    """The store for the database the environment names (eventstore.store.credentials: a
    secret ARN, RDS IAM settings or $EVENTSTORE_DB_URL), created once per container and per URL.

    SQLAlchemy is imported here, on the first invocation, not when the module loads."""
    from eventstore.store.credentials import database_url
    from eventstore.store.sql import open_store

    url = database_url() or ""
    with _lock:
        existing = _stores.get(url)
        if existing is None:
            existing = open_store(url or None)
            _stores[url] = existing
        return existing


def runner() -> "ProjectionRunner":
    """The projection runner over store(), created once per container."""
    from eventstore.projections.runner import ProjectionRunner
    from eventstore.store.credentials import database_url

    url = database_url() or ""
    current = store()
    with _lock:
        existing = _runners.get(url)
        if existing is None or existing.store is not current:
            existing = ProjectionRunner(current)
            _runners[url] = existing
        return existing


def catch_up_thresholds() -> tuple[int, float]:
    """(min_lag, max_delay): a projection fewer than EVENTSTORE_CATCH_UP_MIN_LAG events
    behind (default 100) is caught up only once its checkpoint is older than
    EVENTSTORE_CATCH_UP_MAX_DELAY seconds (default 5)."""
    min_lag = int(os.environ.get("EVENTSTORE_CATCH_UP_MIN_LAG", "100"))
    max_delay = float(os.environ.get("EVENTSTORE_CATCH_UP_MAX_DELAY", "5"))
    return min_lag, max_delay


CATCH_UP_SHARE = 0.5  # of the invocation's remaining time, at most
CATCH_UP_RESERVE_MS = 3000  # always left for returning the batch response


def catch_up_seconds(remaining_ms: int) -> float:
    """How long projections may catch up in this invocation, from the time Lambda has left."""
    return max(0.0, min(remaining_ms * CATCH_UP_SHARE, remaining_ms - CATCH_UP_RESERVE_MS)) / 1000
