"""The API's response models: the CLI's JSON field names, one pydantic model per response."""

from typing import Any

from pydantic import BaseModel, Field


class Event(BaseModel):
    """One S3 event of the log, with the fields of `eventstore events --format json`."""

    position: int
    event_id: str
    event_name: str
    event_time: str
    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None
    size: int | None
    etag: str | None
    principal_id: str | None
    source_ip: str | None
    request_id: str | None
    region: str | None
    source: str


class EventPage(BaseModel):
    """A page of events in position order; `next_after` is the cursor of the next page (None
    when this was the last one)."""

    events: list[Event]
    next_after: int | None = Field(description="pass as ?after= for the next page")


class History(BaseModel):
    """One object's events, in S3's order (sequencer, then event time), a page at a time;
    `next_cursor` reads the next page (None when this was the last one)."""

    bucket: str
    key: str
    events: list[Event]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class CatalogObject(BaseModel):
    """One row of the object catalog, with the fields of `eventstore objects --format json`."""

    bucket: str
    key: str
    version_id: str | None
    size: int | None
    etag: str | None
    sequencer: str | None
    last_event_name: str
    last_event_time: str
    deleted: bool


class CatalogPage(BaseModel):
    """A page of the catalog in (bucket, key) order; `as_of` is the time it was reconstructed
    at (None: now, from the object_catalog projection, `lag` events behind the log)."""

    objects: list[CatalogObject]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")
    as_of: str | None
    lag: int


class ProjectionState(BaseModel):
    """One projection's checkpoint and lag (`eventstore projections status --format json`)."""

    name: str
    state: str
    code_version: int
    live_version: int | None
    position: int
    head: int
    lag: int
    rebuild_position: int | None
    error_position: int | None
    last_error: str | None
    filter: str | None


class Projections(BaseModel):
    head: int
    projections: list[ProjectionState]


class VerifyReport(BaseModel):
    """The hash chain check (`eventstore verify --format json`); `anchor` is the head to keep
    elsewhere for the next check (`?anchor=POSITION:HASH`)."""

    ok: bool
    checked: int
    head_position: int
    first_bad_position: int | None
    reason: str | None
    head_hash: str | None
    projection_faults: dict[str, str]
    anchor: str | None
    checked_anchor: str | None


class HourCount(BaseModel):
    hour: str
    event_name: str
    events: int


class Activity(BaseModel):
    """Events per hour (event time, UTC) and event name, of the events matching the filters."""

    bucket: str | None
    prefix: str | None
    total: int
    hours: list[HourCount]


class PrincipalRow(BaseModel):
    principal_id: str
    event_name: str
    events: int
    first_seen: str
    last_seen: str


class Principals(BaseModel):
    """Who did what: the principal_activity projection, `lag` events behind the log."""

    principals: list[PrincipalRow]
    lag: int


class Lineage(BaseModel):
    """`eventstore trace --format json`: the object's events, what reactors derived from
    each (recursively) and what it was derived from."""

    bucket: str
    key: str
    version_id: str | None
    lag: int | None
    derived_from: list[dict[str, Any]]
    events: list[dict[str, Any]]


class Problem(BaseModel):
    """An error: the HTTP status and the reason."""

    status: int
    error: str
