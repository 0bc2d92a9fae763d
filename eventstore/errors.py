"""The library's exceptions; every one derives from EventStoreError."""


class EventStoreError(Exception):
    """Base of every error this library raises on purpose."""


class MalformedMessageError(EventStoreError):
    """A message that cannot be turned into S3 events; it fails alone, the batch goes on."""

    def __init__(self, reason: str, *, message_id: str | None = None) -> None:
        self.reason = reason
        self.message_id = message_id
        where = f"message {message_id}: " if message_id else ""
        super().__init__(f"{where}{reason}")

    def for_message(self, message_id: str) -> "MalformedMessageError":
        """The same failure, naming the message it came from."""
        return MalformedMessageError(self.reason, message_id=message_id)


class ConfigurationError(EventStoreError):
    """Bad settings: a database URL that cannot be used, an unknown option value."""


class BadCursorError(EventStoreError, ValueError):
    """A paging cursor that no reading handed out: not in its form, or naming a position the
    log does not hold."""


class StorageError(EventStoreError):
    """The database refused or lost a write; the whole batch must be retried."""


class SchemaNotReadyError(StorageError):
    """The database schema is missing or older than this code; run `eventstore db upgrade`."""


class MalformedEventError(EventStoreError):
    """A Lambda invocation event that is not an SQS batch at all (no `Records` list, a record
    without its `messageId`): no message can be named, so the invocation itself fails."""
