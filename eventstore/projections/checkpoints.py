"""Projection checkpoints and shadow tables: the one owner of `projection_checkpoints` and of
creating, dropping and swapping a projection's tables.

A checkpoint row says which version of a projection is live, up to which log position it
folded, and, while a rebuild runs, the version and position of the shadow build. Every
method works inside the caller's transaction, so a projection's writes and its checkpoint
move together. A projection's companions (base.Companion: schema objects a Table cannot
declare) are created, dropped and swapped in with its tables.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from eventstore.projections.base import Companion, Projection
from eventstore.store.schema import NAMING_CONVENTION, copy_table, events, projection_checkpoints

SHADOW_SUFFIX = "__rebuild"
DRY_RUN_SUFFIX = "__dryrun"
checkpoints = projection_checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One projection's row of `projection_checkpoints`."""

    name: str
    version: int  # the live version; 0 before the first swap
    position: int
    updated_at: datetime
    last_error: str | None
    error_position: int | None
    live_filter: str | None
    rebuild_version: int | None
    rebuild_position: int | None
    rebuild_filter: str | None
    position_hash: str | None  # the hash of the log row at `position`, when there is one

    @classmethod
    def of_row(cls, row: Any) -> "Checkpoint":
        return cls(*(getattr(row, column.name) for column in checkpoints.columns))

    @property
    def rebuilding(self) -> bool:
        return self.rebuild_version is not None

    def is_live_at(self, version: int) -> bool:
        """Live, of `version`, with no rebuild under way."""
        return self.rebuild_version is None and self.version == version


_copies: dict[tuple[str, str, str], sa.Table] = {}


def live_tables(projection: Projection) -> dict[str, sa.Table]:
    return {table.name: table for table in projection.tables}


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


def shadow_tables(projection: Projection) -> dict[str, sa.Table]:
    return suffixed_tables(projection, SHADOW_SUFFIX)


class SqlCheckpoints:
    """Checkpoint rows and shadow tables, in the caller's transaction."""

    def with_log(self, connection: Connection) -> tuple[int, dict[str, Checkpoint], dict[str, str]]:
        """In one round trip: the head of the log, every checkpoint, and the hash the log
        holds at each checkpoint's position (what catch-up and status need to start)."""
        head = sa.select(sa.func.max(events.c.position)).scalar_subquery()
        statement = sa.select(
            checkpoints, events.c.hash.label("log_hash"), head.label("head")
        ).select_from(checkpoints.outerjoin(events, events.c.position == checkpoints.c.position))
        rows = connection.execute(statement).all()
        if not rows:  # no checkpoint yet: the head alone
            return int(connection.execute(sa.select(head)).scalar() or 0), {}, {}
        found = {row.name: Checkpoint.of_row(row) for row in rows}
        hashes = {row.name: row.log_hash for row in rows if row.log_hash is not None}
        return int(rows[0].head or 0), found, hashes

    def all(self, connection: Connection) -> dict[str, Checkpoint]:
        return {
            row.name: Checkpoint.of_row(row) for row in connection.execute(sa.select(checkpoints))
        }

    def lock(self, connection: Connection, name: str, *, wait: bool = True) -> Checkpoint | None:
        """The row, locked for this transaction (SQLite: every writer already is). With
        `wait` False, None also when another transaction holds it."""
        statement = sa.select(checkpoints).where(checkpoints.c.name == name)
        if connection.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=not wait)
        row = connection.execute(statement).first()
        return Checkpoint.of_row(row) if row is not None else None

    def start(
        self, connection: Connection, projection: Projection, event_filter: str | None
    ) -> bool:
        """Create the row of a new projection, rebuilding from 0 into empty shadow tables.
        False when another runner created it first (many containers meet a new projection
        at once)."""
        insert = (
            postgresql.insert(checkpoints)
            if connection.dialect.name == "postgresql"
            else sqlite.insert(checkpoints)
        )
        created = connection.execute(
            insert.values(
                name=projection.name, version=0, position=0, updated_at=_now(),
                rebuild_version=projection.effective_version, rebuild_position=0,
                rebuild_filter=event_filter,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(checkpoints.c.name)
        ).first()  # fmt: skip
        if created is None:
            return False
        self.create_tables(connection, shadow_tables(projection), projection=projection)
        return True

    def restart_rebuild(
        self, connection: Connection, projection: Projection, event_filter: str | None
    ) -> None:
        """Rebuild from 0, of the code's version, into empty shadow tables."""
        self.create_tables(connection, shadow_tables(projection), projection=projection)
        connection.execute(
            sa.update(checkpoints)
            .where(checkpoints.c.name == projection.name)
            .values(
                rebuild_version=projection.effective_version, rebuild_position=0,
                rebuild_filter=event_filter, last_error=None, error_position=None,
                updated_at=_now(),
            )
        )  # fmt: skip

    def shadow_exists(self, connection: Connection, projection: Projection) -> bool:
        inspector = sa.inspect(connection)
        shadow = shadow_tables(projection)
        names = [t.name for t in shadow.values()]
        names += [c.name for c in _companions(connection, projection, shadow, "table")]
        return all(inspector.has_table(name) for name in names)

    def advance(
        self,
        connection: Connection,
        name: str,
        *,
        rebuilding: bool,
        position: int | None,
        position_hash: str | None = None,
        error: tuple[int, str] | None = None,
    ) -> datetime:
        """Move the live (or rebuild) position to `position` (the log row there has
        `position_hash`), and record or clear the error. Returns the row's new `updated_at`,
        which tells a runner whether anyone else wrote the row since."""
        now = _now()
        values: dict[str, Any] = {"updated_at": now}
        if position is not None:
            if rebuilding:
                values["rebuild_position"] = position
            else:
                values.update(position=position, position_hash=position_hash)
        if error is not None:
            values.update(error_position=error[0], last_error=error[1])
        else:
            values.update(error_position=None, last_error=None)
        connection.execute(
            sa.update(checkpoints).where(checkpoints.c.name == name).values(**values)
        )
        return now

    def swap(
        self,
        connection: Connection,
        projection: Projection,
        checkpoint: Checkpoint,
        head: int,
        head_hash: str | None,
    ) -> None:
        """Replace the live tables by the shadow ones and make the rebuild the live version."""
        shadow, live = shadow_tables(projection), live_tables(projection)
        # Companion tables are paired by position: each one's name is derived from its table's.
        old = _companions(connection, projection, live, "table")
        new = _companions(connection, projection, shadow, "table")
        _drop_companions(connection, old)
        for companion, replacing in zip(new, old, strict=True):
            _rename_table(connection, companion.name, replacing.name, SHADOW_SUFFIX)
        for name, table in live.items():
            table.drop(connection, checkfirst=True)
            _rename_table(connection, shadow[name].name, name, SHADOW_SUFFIX)
        connection.execute(
            sa.update(checkpoints)
            .where(checkpoints.c.name == projection.name)
            .values(
                version=checkpoint.rebuild_version, position=head, position_hash=head_hash,
                live_filter=checkpoint.rebuild_filter, rebuild_version=None,
                rebuild_position=None, rebuild_filter=None, last_error=None,
                error_position=None, updated_at=_now(),
            )
        )  # fmt: skip

    @staticmethod
    def create_tables(
        connection: Connection,
        tables: dict[str, sa.Table],
        *,
        projection: Projection | None = None,
    ) -> None:
        """Create `tables` empty (dropping any left over), then `projection`'s companions
        of them."""
        companions = _companions(connection, projection, tables)
        _drop_companions(connection, companions)
        for table in tables.values():
            table.drop(connection, checkfirst=True)
            table.create(connection)
        for companion in companions:
            connection.exec_driver_sql(companion.create)

    @staticmethod
    def drop_tables(
        connection: Connection,
        tables: dict[str, sa.Table],
        *,
        projection: Projection | None = None,
    ) -> None:
        _drop_companions(connection, _companions(connection, projection, tables))
        for table in tables.values():
            table.drop(connection, checkfirst=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _companions(
    connection: Connection,
    projection: Projection | None,
    tables: dict[str, sa.Table],
    kind: str | None = None,
) -> list[Companion]:
    if projection is None:
        return []
    found = projection.companions(connection.dialect, tables)
    return [c for c in found if kind is None or c.kind == kind]


def _drop_companions(connection: Connection, companions: list[Companion]) -> None:
    """Drop the companion tables (indexes and columns go with their tables)."""
    preparer = connection.dialect.identifier_preparer
    for companion in companions:
        if companion.kind == "table":
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {preparer.quote(companion.name)}")


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
