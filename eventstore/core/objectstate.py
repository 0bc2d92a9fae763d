"""What an object is, folded from its events: the rules of the object catalog, with no I/O.

Every version of a key is a last-writer-wins register ordered by S3's sequencer (event time
when there is none), so a DELETE delivered before the PUT it followed still wins. The
current version is the live version created last; deleting it makes the previous one
current again, and deleting a non-current version leaves the object as it was. Events that
do not change existence (tagging, ACL, restore, replication, tiering) are ignored here.
"""

from dataclasses import dataclass, field
from datetime import datetime

from eventstore.core.events import Effect, NewEvent, effect_of
from eventstore.core.ordering import OrderKey

NULL_VERSION = "null"  # S3's own name for the version of an object in an unversioned bucket


@dataclass(slots=True)
class VersionState:
    """One version of a key: whether it exists, and what it is. A removed version keeps
    only its last event (what it was no longer matters), so a key with one version is
    determined by its latest event and what the catalog shows: see ObjectState.of_one_version."""

    version_id: str | None
    exists: bool
    delete_marker: bool
    size: int | None
    etag: str | None
    last: OrderKey  # the latest event applied to this version
    created: OrderKey | None  # the create that made it exist; orders versions against each other

    @property
    def slot(self) -> str:
        return self.version_id or NULL_VERSION


def _created(version: VersionState) -> OrderKey:
    assert version.created is not None  # only live versions are compared
    return version.created


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The current state of one key, as the object catalog shows it."""

    bucket: str
    key: str
    version_id: str | None
    size: int | None
    etag: str | None
    sequencer: str | None
    last_event_name: str
    last_event_time: datetime
    deleted: bool
    last_position: int


@dataclass(slots=True)
class ObjectState:
    """All that is known of one key: its versions and its latest state-changing event."""

    bucket: str
    key: str
    versions: dict[str, VersionState] = field(default_factory=dict)
    last_event_name: str | None = None
    last_event_version: str | None = None
    last_order: OrderKey | None = None

    @classmethod
    def of_one_version(
        cls,
        bucket: str,
        key: str,
        *,
        last_event_name: str,
        last_event_version: str | None,
        last_order: OrderKey,
        size: int | None,
        etag: str | None,
    ) -> "ObjectState":
        """The state of a key that has one version, from its latest state-changing event and
        the size and etag the catalog shows: its version's last event is the key's, and the
        version was created by it unless that event removed it."""
        effect = effect_of(last_event_name)
        if effect is Effect.NONE:
            raise ValueError(f"{last_event_name} does not change a version")
        exists, marker = effect is not Effect.REMOVE, effect is Effect.DELETE_MARKER
        version = VersionState(
            last_event_version, exists, marker, size, etag, last_order,
            last_order if exists else None,
        )  # fmt: skip
        return cls(bucket, key, {version.slot: version}, last_event_name, last_event_version,
                   last_order)  # fmt: skip

    def apply(self, event: NewEvent, position: int) -> set[str]:
        """Fold one event in; return the version slots it changed (empty when ignored), and
        "" when the key's own summary (its latest event) changed."""
        slot, summary = self.fold(event, event.effect, position)
        changed = set() if slot is None else {slot}
        if summary:
            changed.add("")
        return changed

    def fold(self, event: NewEvent, effect: Effect, position: int) -> tuple[str | None, bool]:
        """`apply` for a caller that knows the event's effect and needs no set: the version
        slot it changed (None if none), and whether the key's summary changed."""
        if effect is Effect.NONE:
            return None, False
        order = OrderKey(event.sequencer, event.event_time, position)
        slot = event.version_id or NULL_VERSION
        version = self.versions.get(slot)
        changed: str | None = None
        if version is None:
            if effect is Effect.REMOVE:  # known only as gone
                version = VersionState(event.version_id, False, False, None, None, order, None)
            elif effect is Effect.DELETE_MARKER:
                version = VersionState(event.version_id, True, True, None, None, order, order)
            else:
                version = VersionState(
                    event.version_id, True, False, event.size, event.etag, order, order
                )
            self.versions[slot] = version
            changed = slot
        elif order.is_after(version.last):
            version.version_id = event.version_id  # S3 may spell one slot None or "null"
            version.last = order
            if effect is Effect.REMOVE:  # gone: nothing of what it was matters any more
                version.exists = version.delete_marker = False
                version.size = version.etag = version.created = None
            else:
                marker = effect is Effect.DELETE_MARKER
                version.exists, version.delete_marker, version.created = True, marker, order
                version.size = None if marker else event.size
                version.etag = None if marker else event.etag
            changed = slot
        last = self.last_order
        if last is None or order.compare(last) > 0:
            self.last_order = order
            self.last_event_name = event.event_name
            self.last_event_version = event.version_id
            return changed, True
        return changed, False

    def current_version(self) -> VersionState | None:
        """The live version created last.

        Picked with a total order, so the answer never depends on the order the versions
        were loaded in: by sequencer when every live version has one (S3's own order), else
        by creation time, then sequencer, then log position (a key whose history mixes
        sequenced events with back-filled or S3-compatible ones)."""
        if len(self.versions) == 1:  # most keys: no comparison to make
            (only,) = self.versions.values()
            return only if only.exists and only.created is not None else None
        live = [v for v in self.versions.values() if v.exists and v.created is not None]
        if not live:
            return None
        created = [v.created for v in live if v.created is not None]
        width = max((len(c.sequencer) for c in created if c.sequencer), default=0)

        def padded(order: OrderKey) -> str:
            return (order.sequencer or "").upper().ljust(width, "0")

        if all(c.sequencer for c in created):
            return max(live, key=lambda v: (padded(_created(v)), _created(v).position))
        return max(
            live,
            key=lambda v: (_created(v).event_time, padded(_created(v)), _created(v).position),
        )

    def shown(self) -> tuple[str | None, int | None, str | None, bool]:
        """What the catalog shows of the key: the version id, size and etag of its current
        version, and whether it shows as deleted (no live version: the id of its latest
        event, and no size or etag; a delete marker on top: the marker's id)."""
        current = self.current_version()
        if current is None:
            return self.last_event_version, None, None, True
        if current.delete_marker:
            return current.version_id, None, None, True
        return current.version_id, current.size, current.etag, False

    def entry(self) -> CatalogEntry | None:
        """The catalog row for this key; None until a state-changing event was seen."""
        if self.last_order is None or self.last_event_name is None:
            return None
        version_id, size, etag, deleted = self.shown()
        return CatalogEntry(
            bucket=self.bucket,
            key=self.key,
            version_id=version_id,
            size=size,
            etag=etag,
            sequencer=self.last_order.sequencer,
            last_event_name=self.last_event_name,
            last_event_time=self.last_order.event_time,
            deleted=deleted,
            last_position=self.last_order.position,
        )
