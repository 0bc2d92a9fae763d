"""Storage adapters: the SQL event log (SQLite, PostgreSQL), its schema and migrations.

`eventstore.store.sql` holds the SQL log; it is not imported here, so that code needing only
the interfaces (the Lambda handler at import time) does not pay for SQLAlchemy."""

from eventstore.store.base import AppendResult, EventLog, EventQuery

__all__ = ["AppendResult", "EventLog", "EventQuery"]
