"""Running projections: catch-up after appends, rebuilds into shadow tables, atomic swaps.

Each step folds one chunk of events and moves the checkpoint in the same transaction. The
checkpoint row is locked for the step (FOR UPDATE on PostgreSQL; SQLite serialises every
writer), so two runners never apply the same chunk. A rebuild writes to shadow copies of the
projection's tables (`<table>__rebuild`) and persists its own position, so it survives an
interruption and resumes; once it reaches the head it takes the append lock, folds the last
events and renames the shadow tables over the live ones in one transaction, so readers see
the old projection or the new one, never half of one. A projection that raises stops at the
failing event with the error recorded; other projections and ingestion carry on.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from eventstore.core.events import StoredEvent
from eventstore.errors import ConfigurationError, StorageError
from eventstore.progress import Progress
from eventstore.projections.base import Projection, ProjectionContext, describe_error
from eventstore.store.base import EventQuery
from eventstore.store.schema import NAMING_CONVENTION, copy_table, projection_checkpoints
from eventstore.store.sql import SqlEventStore

logger = logging.getLogger(__name__)

SHADOW_SUFFIX = "__rebuild"
BUSY = "busy"  # another runner holds the projection's checkpoint just now
FINAL = "final"  # a rebuild reached the head: next, hold appends and swap
DRY_RUN_SUFFIX = "__dryrun"
checkpoints = projection_checkpoints


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    description: str
    inline: bool
    code_version: int
    live_version: int | None
    position: int
    head: int
    state: str  # new | live | behind | rebuilding | outdated | failed
    rebuild_position: int | None
    last_error: str | None
    error_position: int | None
    live_filter: str | None

    @property
    def lag(self) -> int:
        if self.live_version is None or self.live_version != self.code_version:
            return self.head
        return self.head - self.position


@dataclass(slots=True)
class RunReport:
    name: str
    applied: int = 0
    swapped: bool = False
    caught_up: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TableDiff:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: int
    only_rebuilt: int
    samples_only_live: tuple[dict[str, Any], ...]
    samples_only_rebuilt: tuple[dict[str, Any], ...]


def live_tables(projection: Projection) -> dict[str, sa.Table]:
    return {table.name: table for table in projection.tables}


_copies: dict[tuple[str, str, str], sa.Table] = {}


def suffixed_tables(projection: Projection, suffix: str) -> dict[str, sa.Table]:
    """Copies of the projection's tables named `<table><suffix>`, with their own index and
    constraint names (the naming convention puts the table name in each)."""
    tables: dict[str, sa.Table] = {}
    for table in projection.tables:
        cache_key = (projection.name, table.name, suffix)
        copy = _copies.get(cache_key)
        if copy is None:
            target = sa.MetaData(naming_convention=NAMING_CONVENTION)
            copy = copy_table(table, target, table.name + suffix)
            _copies[cache_key] = copy
        tables[table.name] = copy
    return tables


class ProjectionRunner:
    """Catches projections up with the log, and rebuilds them."""

    def __init__(
        self,
        store: SqlEventStore,
        projections: Sequence[Projection] | None = None,
        *,
        chunk: int = 1000,
    ) -> None:
        self.store = store
        self.projections = tuple(projections if projections is not None else store.projections)
        self.chunk = chunk
        # What the last catch_up saw: per projection that could wait, its position and when
        # (time.monotonic()) its checkpoint last moved.
        self._seen: dict[str, tuple[int, float]] = {}

    def get(self, name: str) -> Projection:
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(p.name for p in self.projections)
        raise ConfigurationError(f"no projection named {name!r} (known: {known})")

    # -- status ---------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        head = self.store.head_position()
        with self.store.engine.connect() as connection:
            rows = {r.name: r for r in connection.execute(sa.select(checkpoints))}
        result = []
        for projection in self.projections:
            row = rows.get(projection.name)
            code = projection.effective_version
            if row is None:
                state, live_version, position = "new", None, 0
            else:
                live_version = row.version or None
                position = row.position
                if row.last_error:
                    state = "failed"
                elif row.rebuild_version is not None:
                    state = "rebuilding"
                elif row.version != code:
                    state = "outdated"
                else:
                    state = "live" if position >= head else "behind"
            result.append(
                ProjectionStatus(
                    name=projection.name,
                    description=projection.description,
                    inline=projection.inline,
                    code_version=code,
                    live_version=live_version,
                    position=position,
                    head=head,
                    state=state,
                    rebuild_position=row.rebuild_position if row is not None else None,
                    last_error=row.last_error if row is not None else None,
                    error_position=row.error_position if row is not None else None,
                    live_filter=row.live_filter if row is not None else None,
                )
            )
        return result

    # -- catching up ----------------------------------------------------------------------

    def catch_up(
        self,
        *,
        deadline: float | None = None,
        progress: Progress | None = None,
        min_lag: int = 0,
        max_delay: float | None = None,
        head: int | None = None,
    ) -> list[RunReport]:
        """Bring every projection to the head, or as far as the deadline (time.monotonic())
        allows. New and re-versioned projections are (re)built into shadow tables.

        A live projection fewer than `min_lag` events behind whose checkpoint moved less than
        `max_delay` seconds ago is left for a later call: a Lambda invocation then pays for
        catching up once per many small batches, and no projection lags longer than that.
        Given `head` (the position the caller's own append reached), a call that the last
        one's reading shows cannot have anything due returns without asking the database."""
        if head is not None and self._nothing_due(head, min_lag, max_delay):
            return [RunReport(p.name, caught_up=True) for p in self.projections]
        with self.store.engine.connect() as connection:
            head = self.store.head_position_in(connection)
            rows = {row.name: row for row in connection.execute(sa.select(checkpoints))}
        now = time.monotonic()
        waiting: dict[str, tuple[int, float]] = {}
        reports: dict[str, RunReport] = {}
        behind: list[Projection] = []  # live and healthy: caught up together, one read
        for projection in self.projections:
            row = rows.get(projection.name)
            if _is_current(projection, row, head) or _can_wait(
                projection, row, head, min_lag, max_delay
            ):
                assert row is not None  # a projection with no checkpoint is never current
                moved = now - (_now() - row.updated_at).total_seconds()
                waiting[projection.name] = (row.position, moved)
                reports[projection.name] = RunReport(projection.name, caught_up=True)
            elif (
                not projection.inline
                and _is_live_and_current_version(projection, row)
                and row is not None
                and not row.last_error
            ):
                behind.append(projection)
        if behind:
            reports.update(self._fold_together(behind, deadline, progress, live=True))
        for projection in self.projections:
            if projection.name in reports or projection in behind:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                break
            prepared = _is_live_and_current_version(projection, rows.get(projection.name))
            report = self._run(projection, deadline, progress, wait=False, prepared=prepared)
            reports[projection.name] = report
        for name, report in reports.items():
            if name not in waiting and report.caught_up and report.error is None:
                waiting[name] = (head, time.monotonic())
        self._seen = waiting
        return [reports[p.name] for p in self.projections if p.name in reports]

    def _nothing_due(self, head: int, min_lag: int, max_delay: float | None) -> bool:
        """Whether, by the last catch-up's reading, every projection may still wait at this
        head. An inline projection moves with every append, so only its health counts."""
        if not min_lag or max_delay is None:
            return False
        now = time.monotonic()
        for projection in self.projections:
            seen = self._seen.get(projection.name)
            if seen is None or now - seen[1] >= max_delay:
                return False
            if not projection.inline and head - seen[0] >= min_lag:
                return False
        return True

    def _run(
        self,
        projection: Projection,
        deadline: float | None,
        progress: Progress | None,
        *,
        wait: bool = True,
        prepared: bool = False,
    ) -> RunReport:
        """Fold chunks until caught up (or the deadline). With `wait` False, a projection
        another runner is folding right now (many Lambda containers catch up at once) is
        left to that runner instead of queueing behind it."""
        report = RunReport(projection.name)
        try:
            if not prepared and not self._prepare(projection, wait=wait):
                return report
            final = False
            while deadline is None or time.monotonic() < deadline:
                applied, done, error = self._step(projection, wait=wait, final=final)
                report.applied += applied
                if progress is not None and applied:
                    progress.advance(applied)
                if error is not None:
                    report.error = error
                    break
                if done == BUSY:
                    break
                if done == FINAL:
                    final = True
                    continue
                if done:
                    report.caught_up = True
                    report.swapped = done == "swapped"
                    break
        except DBAPIError as error:
            raise StorageError(f"projection {projection.name}: {error.orig}") from error
        return report

    def _lock_row(self, connection: Connection, name: str, *, wait: bool = True) -> Any:
        """The checkpoint row, locked for this transaction (SQLite: every writer already is).
        With `wait` False, None also when another transaction holds it."""
        statement = sa.select(checkpoints).where(checkpoints.c.name == name)
        if connection.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=not wait)
        return connection.execute(statement).first()

    def _prepare(self, projection: Projection, *, wait: bool = True) -> bool:
        """Start a rebuild where the projection is new, re-versioned, or its shadow is gone.
        False when another runner holds the projection (only when not waiting)."""
        version = projection.effective_version
        with self.store.write() as connection:
            row = self._lock_row(connection, projection.name, wait=wait)
            if row is None:
                # Two containers may meet a new projection at once: the first creates it.
                created = connection.execute(
                    _insert_ignoring_conflict(connection).values(
                        name=projection.name, version=0, position=0, updated_at=_now(),
                        rebuild_version=version, rebuild_position=0,
                    ).returning(checkpoints.c.name)
                ).first()  # fmt: skip
                if created is None:
                    return False
                self._create_shadow(connection, projection)
            elif row.rebuild_version is not None:
                shadow_missing = not all(
                    sa.inspect(connection).has_table(t.name)
                    for t in suffixed_tables(projection, SHADOW_SUFFIX).values()
                )
                if row.rebuild_version != version or shadow_missing:
                    self._restart_rebuild(connection, projection, row.rebuild_filter)
            elif row.version != version:
                self._restart_rebuild(connection, projection, row.live_filter)
        return True

    def _create_shadow(self, connection: Connection, projection: Projection) -> None:
        for table in suffixed_tables(projection, SHADOW_SUFFIX).values():
            table.drop(connection, checkfirst=True)
            table.create(connection)

    def _restart_rebuild(
        self, connection: Connection, projection: Projection, event_filter: str | None
    ) -> None:
        self._create_shadow(connection, projection)
        connection.execute(
            sa.update(checkpoints)
            .where(checkpoints.c.name == projection.name)
            .values(
                rebuild_version=projection.effective_version, rebuild_position=0,
                rebuild_filter=event_filter, last_error=None, error_position=None,
                updated_at=_now(),
            )
        )  # fmt: skip

    def _step(
        self, projection: Projection, *, wait: bool = True, final: bool = False
    ) -> tuple[int, str | None, str | None]:
        """Fold one chunk. Returns (events applied, "caught-up"/"swapped"/FINAL/BUSY/None,
        error). FINAL: the rebuild is at the head; the next step, `final`, holds appends,
        folds what arrived meanwhile and swaps the shadow tables in, in one transaction."""
        with self.store.write() as connection:
            self._hold_appends_if_needed(connection, projection, final=final)
            row = self._lock_row(connection, projection.name, wait=wait)
            if row is None:
                return 0, "caught-up" if wait else BUSY, None
            rebuilding = row.rebuild_version is not None
            if final and not rebuilding:  # another runner swapped it meanwhile
                return 0, "caught-up", None
            after = row.rebuild_position if rebuilding else row.position
            event_filter = EventQuery.from_json(
                row.rebuild_filter if rebuilding else row.live_filter
            )
            tables = (
                suffixed_tables(projection, SHADOW_SUFFIX)
                if rebuilding
                else live_tables(projection)
            )
            limit = None if final else self.chunk
            events = list(self.store.read_in(connection, after=after, limit=limit))
            if rebuilding and not final and len(events) < self.chunk:
                return 0, FINAL, None
            applied, error = self._fold(connection, projection, tables, events, event_filter)
            if error is not None or not final:
                self._record(
                    connection,
                    projection,
                    rebuilding=rebuilding,
                    events=events,
                    applied=applied,
                    error=error,
                )
                if error is not None:
                    return applied, None, error[1]
                # A short chunk reached the head: no need for another transaction to see that.
                return applied, None if len(events) == self.chunk else "caught-up", None
            self._swap(connection, projection, row, events[-1].position if events else after)
            return len(events), "swapped", None

    def _hold_appends_if_needed(
        self, connection: Connection, projection: Projection, *, final: bool
    ) -> None:
        """Take the append lock (before the checkpoint row: see SqlEventStore.lock_appends)
        for a swap, which needs the head to stay put, and for catching up an inline
        projection's live tables, which appends write too."""
        if connection.dialect.name != "postgresql":
            return  # every SQLite writer holds the database's write lock already
        if not final:
            if not projection.inline:
                return
            peek = connection.execute(
                sa.select(checkpoints.c.rebuild_version).where(
                    checkpoints.c.name == projection.name
                )
            ).first()
            if peek is not None and peek.rebuild_version is not None:
                return  # folding into shadow tables, which appends never touch
        self.store.lock_appends(connection)

    def _fold(
        self,
        connection: Connection,
        projection: Projection,
        tables: Mapping[str, sa.Table],
        events: list[StoredEvent],
        event_filter: EventQuery,
    ) -> tuple[int, tuple[int, str] | None]:
        """Apply events; on failure find the failing one. Returns (applied, (position, error))."""
        chosen = [e for e in events if event_filter.matches(e.event)]
        if not chosen:
            return len(events), None
        context = ProjectionContext(connection, tables)
        try:
            with connection.begin_nested():
                projection.apply(context, chosen)
            return len(events), None
        except Exception as error:  # a projection's bug stops that projection, nothing else
            _reraise_if_connection_lost(error)
            failure: Exception = error
        logger.warning("projection %s failed on a chunk: %s", projection.name, failure)
        # Find the failing event: apply one by one, keeping what succeeds before it.
        for index, stored in enumerate(events):
            if not event_filter.matches(stored.event):
                continue
            try:
                with connection.begin_nested():
                    projection.apply(context, [stored])
            except Exception as error:
                _reraise_if_connection_lost(error)
                return index, (stored.position, describe_error(error))
        # The chunk failed as a whole but no single event did: report it at the chunk start.
        return 0, (events[0].position, describe_error(failure))

    def _record(
        self,
        connection: Connection,
        projection: Projection,
        *,
        rebuilding: bool,
        events: list[StoredEvent],
        applied: int,
        error: tuple[int, str] | None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": _now()}
        if applied:
            position = events[applied - 1].position
            values["rebuild_position" if rebuilding else "position"] = position
        if error is not None:
            values.update(error_position=error[0], last_error=error[1])
        else:
            values.update(error_position=None, last_error=None)
        connection.execute(
            sa.update(checkpoints).where(checkpoints.c.name == projection.name).values(**values)
        )

    def _swap(self, connection: Connection, projection: Projection, row: Any, head: int) -> None:
        shadow = suffixed_tables(projection, SHADOW_SUFFIX)
        for name, table in live_tables(projection).items():
            table.drop(connection, checkfirst=True)
            _rename_table(connection, shadow[name].name, name, SHADOW_SUFFIX)
        connection.execute(
            sa.update(checkpoints)
            .where(checkpoints.c.name == projection.name)
            .values(
                version=row.rebuild_version, position=head, live_filter=row.rebuild_filter,
                rebuild_version=None, rebuild_position=None, rebuild_filter=None,
                last_error=None, error_position=None, updated_at=_now(),
            )
        )  # fmt: skip

    # -- rebuilding on demand -------------------------------------------------------------

    def rebuild(
        self,
        names: Sequence[str],
        *,
        event_filter: EventQuery | None = None,
        progress: Progress | None = None,
    ) -> list[RunReport]:
        """Rebuild these projections from position 0 (only events passing `event_filter`),
        swapping each in when it reaches the head. Resumes a rebuild already under way."""
        chosen = [self.get(name) for name in names]
        filter_json = event_filter.to_json() if event_filter and not event_filter.is_empty else None
        for projection in chosen:
            with self.store.write() as connection:
                row = self._lock_row(connection, projection.name)
                resumable = (
                    row is not None
                    and row.rebuild_version == projection.effective_version
                    and row.rebuild_filter == filter_json
                )
                if row is None:
                    self._prepare_new(connection, projection, filter_json)
                elif not resumable:
                    self._restart_rebuild(connection, projection, filter_json)
        reports = self._rebuild_together(chosen, progress)
        return [reports[projection.name] for projection in chosen]

    def _rebuild_together(
        self, projections: Sequence[Projection], progress: Progress | None
    ) -> dict[str, RunReport]:
        """Fold the rebuilds of `projections` over one read of the log per chunk, then let
        each fold the last events and swap on its own (see _step)."""
        reports = self._fold_together(projections, None, progress, live=False)
        for projection in projections:
            report = reports[projection.name]
            if report.error is None and not report.caught_up:  # at the head: swap
                last = self._run(projection, None, progress, prepared=True)
                report.applied += last.applied
                report.caught_up, report.swapped, report.error = (
                    last.caught_up,
                    last.swapped,
                    last.error,
                )
        return reports

    def _fold_together(
        self,
        projections: Sequence[Projection],
        deadline: float | None,
        progress: Progress | None,
        *,
        live: bool,
    ) -> dict[str, RunReport]:
        """Fold `projections` (all live, or all rebuilding) chunk by chunk, each chunk read
        from the log once for all of them, until each is caught up (a rebuild: at the head,
        ready to swap), fails, is taken by another runner, or the deadline passes."""
        reports = {p.name: RunReport(p.name) for p in projections}
        group = list(projections)
        try:
            while group and (deadline is None or time.monotonic() < deadline):
                outcome = self._step_together(group, live=live)
                for projection in list(group):
                    applied, done, error = outcome[projection.name]
                    reports[projection.name].applied += applied
                    if progress is not None and applied:
                        progress.advance(applied)
                    if error is not None:
                        reports[projection.name].error = error
                    if error is not None or done is not None:
                        group.remove(projection)
                    if done == "caught-up":
                        reports[projection.name].caught_up = True
        except DBAPIError as error:
            raise StorageError(f"folding projections: {error.orig}") from error
        return reports

    def _step_together(
        self, projections: Sequence[Projection], *, live: bool
    ) -> dict[str, tuple[int, str | None, str | None]]:
        """One chunk of the log, read once and folded into each projection's tables (live,
        or the shadow copies of a rebuild) in one transaction. Per projection: (applied,
        None / "caught-up" / FINAL (a rebuild at the head) / BUSY, error)."""
        results: dict[str, tuple[int, str | None, str | None]] = {}
        with self.store.write() as connection:
            # Live: a projection another runner holds is left to it (many containers).
            rows = {p.name: self._lock_row(connection, p.name, wait=not live) for p in projections}
            after: dict[str, int] = {}
            for projection in projections:
                row = rows[projection.name]
                if row is None:
                    results[projection.name] = (0, BUSY if live else "caught-up", None)
                elif live and (
                    row.rebuild_version is not None
                    or row.version != projection.effective_version
                    or row.last_error
                ):
                    results[projection.name] = (0, BUSY, None)  # changed meanwhile: _run's job
                elif not live and row.rebuild_version is None:  # another runner swapped it
                    results[projection.name] = (0, "caught-up", None)
                else:
                    after[projection.name] = row.position if live else row.rebuild_position
            if not after:
                return results
            events = list(
                self.store.read_in(connection, after=min(after.values()), limit=self.chunk)
            )
            at_head = len(events) < self.chunk
            for projection in projections:
                if projection.name not in after:
                    continue
                if at_head and not live:
                    results[projection.name] = (0, FINAL, None)
                    continue
                row = rows[projection.name]
                mine = [e for e in events if e.position > after[projection.name]]
                if not mine:  # ahead of the others: wait for them
                    results[projection.name] = (0, "caught-up" if at_head else None, None)
                    continue
                applied, error = self._fold(
                    connection,
                    projection,
                    live_tables(projection) if live else suffixed_tables(projection, SHADOW_SUFFIX),
                    mine,
                    EventQuery.from_json(row.live_filter if live else row.rebuild_filter),
                )
                self._record(
                    connection,
                    projection,
                    rebuilding=not live,
                    events=mine,
                    applied=applied,
                    error=error,
                )
                done = "caught-up" if at_head and error is None else None
                results[projection.name] = (applied, done, None if error is None else error[1])
        return results

    def _prepare_new(
        self, connection: Connection, projection: Projection, filter_json: str | None
    ) -> None:
        connection.execute(
            sa.insert(checkpoints).values(
                name=projection.name, version=0, position=0, updated_at=_now(),
                rebuild_version=projection.effective_version, rebuild_position=0,
                rebuild_filter=filter_json,
            )
        )  # fmt: skip
        self._create_shadow(connection, projection)

    def dry_run(
        self,
        name: str,
        *,
        event_filter: EventQuery | None = None,
        progress: Progress | None = None,
        samples: int = 3,
    ) -> list[TableDiff]:
        """Build the projection aside (`<table>__dryrun`), compare it with the live tables,
        drop it. Touches neither the live tables nor any checkpoint."""
        projection = self.get(name)
        tables = suffixed_tables(projection, DRY_RUN_SUFFIX)
        chosen = event_filter or EventQuery()
        head = self.store.head_position()
        with self.store.write() as connection:
            for table in tables.values():
                table.drop(connection, checkfirst=True)
                table.create(connection)
        try:
            after = 0
            while after < head:
                with self.store.write() as connection:
                    events = list(
                        self.store.read_in(
                            connection, after=after, limit=min(self.chunk, head - after)
                        )
                    )
                    if not events:
                        break
                    picked = [e for e in events if chosen.matches(e.event)]
                    projection.apply(ProjectionContext(connection, tables), picked)
                    after = events[-1].position
                if progress is not None:
                    progress.advance(len(events))
            with self.store.engine.connect() as connection:
                return [
                    _diff(connection, live, tables[live.name], samples)
                    for live in projection.tables
                ]
        finally:
            with self.store.write() as connection:
                for table in tables.values():
                    table.drop(connection, checkfirst=True)


def _rename_table(connection: Connection, old: str, new: str, suffix: str) -> None:
    """Rename a table and the indexes and constraints that carry its old name."""
    preparer = connection.dialect.identifier_preparer
    connection.exec_driver_sql(f"ALTER TABLE {preparer.quote(old)} RENAME TO {preparer.quote(new)}")
    if connection.dialect.name == "postgresql":
        constraints = (
            connection.execute(
                sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
                {"t": new},
            )
            .scalars()
            .all()
        )
        for name in constraints:
            if suffix in name:
                connection.exec_driver_sql(
                    f"ALTER TABLE {preparer.quote(new)} RENAME CONSTRAINT "
                    f"{preparer.quote(name)} TO {preparer.quote(name.replace(suffix, ''))}"
                )
        indexes = (
            connection.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": new}
            )
            .scalars()
            .all()
        )
        for name in indexes:
            if suffix in name:
                connection.exec_driver_sql(
                    f"ALTER INDEX {preparer.quote(name)} RENAME TO "
                    f"{preparer.quote(name.replace(suffix, ''))}"
                )
    else:
        indexes = connection.execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
                " AND sql IS NOT NULL"
            ),
            {"t": new},
        ).all()
        for name, sql in indexes:
            if suffix in name:
                connection.exec_driver_sql(f"DROP INDEX {preparer.quote(name)}")
                connection.exec_driver_sql(sql.replace(name, name.replace(suffix, ""), 1))


def _diff(connection: Connection, live: sa.Table, rebuilt: sa.Table, samples: int) -> TableDiff:
    def count(statement: Any) -> int:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(statement.subquery())
            ).scalar()
            or 0
        )

    has_live = sa.inspect(connection).has_table(live.name)
    live_select = sa.select(*live.columns) if has_live else None
    rebuilt_select = sa.select(*rebuilt.columns)
    rebuilt_rows = count(rebuilt_select)
    if live_select is None:
        rows = connection.execute(rebuilt_select.limit(samples)).mappings().all()
        return TableDiff(
            live.name, 0, rebuilt_rows, 0, rebuilt_rows, (), tuple(dict(r) for r in rows)
        )
    only_live = sa.except_(live_select, sa.select(*rebuilt.columns))
    only_rebuilt = sa.except_(rebuilt_select, sa.select(*live.columns))
    return TableDiff(
        table=live.name,
        live_rows=count(live_select),
        rebuilt_rows=rebuilt_rows,
        only_live=count(only_live),
        only_rebuilt=count(only_rebuilt),
        samples_only_live=tuple(
            dict(r) for r in connection.execute(only_live.limit(samples)).mappings().all()
        ),
        samples_only_rebuilt=tuple(
            dict(r) for r in connection.execute(only_rebuilt.limit(samples)).mappings().all()
        ),
    )


def _reraise_if_connection_lost(error: Exception) -> None:
    """A lost connection is the database's failure, not the projection's: let it fail the run."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        raise error


def _is_live_and_current_version(projection: Projection, row: Any) -> bool:
    return (
        row is not None
        and row.rebuild_version is None
        and row.version == projection.effective_version
    )


def _is_current(projection: Projection, row: Any, head: int) -> bool:
    """Live, of the code's version, healthy and at the head: nothing to do."""
    return (
        _is_live_and_current_version(projection, row)
        and row.last_error is None
        and row.position >= head
    )


def _can_wait(
    projection: Projection, row: Any, head: int, min_lag: int, max_delay: float | None
) -> bool:
    if not min_lag or not _is_live_and_current_version(projection, row) or row.last_error:
        return False
    if head - row.position >= min_lag:
        return False
    if max_delay is None:
        return True
    return bool((_now() - row.updated_at).total_seconds() < max_delay)


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_ignoring_conflict(connection: Connection) -> Any:
    """INSERT INTO projection_checkpoints ... ON CONFLICT (name) DO NOTHING."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(checkpoints).on_conflict_do_nothing(index_elements=["name"])
    return sqlite.insert(checkpoints).on_conflict_do_nothing(index_elements=["name"])
