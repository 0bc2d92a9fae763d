"""What every replay source reports: counts, and each item it could not store with the reason."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from eventstore.errors import EventStoreError
from eventstore.ingest import IngestSummary


class ReplaySourceError(EventStoreError):
    """The replay's source (a bucket, a queue) could not be read; what was stored stays."""


@contextmanager
def source_errors(what: str) -> Iterator[None]:
    """Translate boto3's errors about `what` into ReplaySourceError."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise ReplaySourceError(f"{what}: {code}: {error}") from error
    except BotoCoreError as error:
        raise ReplaySourceError(f"{what}: {error}") from error


@dataclass(frozen=True, slots=True)
class ReplayFailure:
    """One item a replay could not store: an archived object's key, or an SQS message id."""

    item: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


@dataclass(slots=True)
class ReplaySummary:
    """Counts of one replay.

    `read` counts what the source handed over (archived objects, listed versions and delete
    markers, SQS messages); `received` / `appended` / `duplicates` / `skipped` count S3 event
    records as `eventstore ingest` does; `failed` counts items that could not be stored, each
    named in `failures`. `deleted` is the SQS messages removed from the queue (SQS only).
    """

    source: str
    read: int = 0
    received: int = 0
    appended: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int | None = None
    failures: list[ReplayFailure] = field(default_factory=list)

    def fail(self, item: str, reason: str) -> None:
        self.failed += 1
        self.failures.append(ReplayFailure(item, reason))

    def absorb(self, ingest: IngestSummary) -> None:
        """Add the event counts of one ingest step (its failures are reported by the caller)."""
        self.received += ingest.received
        self.appended += ingest.appended
        self.duplicates += ingest.duplicates
        self.skipped += ingest.skipped

    def as_dict(self) -> dict[str, object]:
        counts: dict[str, object] = {
            "source": self.source,
            "read": self.read,
            "received": self.received,
            "appended": self.appended,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "failed": self.failed,
        }
        if self.deleted is not None:
            counts["deleted"] = self.deleted
        counts["failures"] = [f.as_dict() for f in self.failures]
        return counts

    def describe(self) -> str:
        """The closing line's counts, for people."""
        text = (
            f"{self.appended} appended, {self.duplicates} duplicates, "
            f"{self.skipped} skipped, {self.failed} failed"
        )
        if self.deleted is not None:
            text += f", {self.deleted} deleted from the queue"
        return text
