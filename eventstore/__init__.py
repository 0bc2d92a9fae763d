"""An append-only, verifiable log of S3 event notifications, with projections and audit queries."""

from eventstore.errors import (
    ConfigurationError,
    EventStoreError,
    MalformedMessageError,
    SchemaNotReadyError,
    StorageError,
)

__all__ = [
    "ConfigurationError",
    "EventStoreError",
    "MalformedMessageError",
    "SchemaNotReadyError",
    "StorageError",
]
