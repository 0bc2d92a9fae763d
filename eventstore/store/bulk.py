"""Writing many rows in one statement.

On PostgreSQL an executemany runs the statement once per row, and with no server-side
prepared statements (they would pin RDS Proxy connections) each run is parsed and planned
again: 100 catalog upserts took 8 ms that way and 2.2 ms as one `INSERT ... SELECT FROM
unnest(arrays)`, whose parameters are one array per column (sent in binary, `%b`: psycopg's
text form of an array escapes every string with a regular expression). SQLite runs
in-process, where executemany is already the fast way once SQLAlchemy's per-row work is out.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

_ARRAY_TYPES = {
    str: "text", int: "bigint", bool: "boolean", float: "double precision", datetime: "timestamptz"
}  # fmt: skip


@cache
def unnest_insert(table: sa.Table, *, upsert: bool) -> str:
    """PostgreSQL: INSERT INTO table (every column) SELECT * FROM unnest(one array per
    column), with ON CONFLICT (primary key) DO UPDATE SET every other column if `upsert`."""
    quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
    names = [quote(column.name) for column in table.columns]
    arrays = ", ".join(f"%b::{_array_type(column)}[]" for column in table.columns)
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(names)}) SELECT * FROM unnest({arrays})"
    if upsert:
        sql += _on_conflict_update(table, quote)
    return sql


def _array_type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):
        kind = kind.impl_instance
    return _ARRAY_TYPES[kind.python_type]


def column_arrays(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The parameters of unnest_insert: the rows' values (in column order), one list per column."""
    return [list(column) for column in zip(*rows, strict=True)]


def write_rows(
    connection: Connection,
    table: sa.Table,
    rows: Sequence[Sequence[Any]],
    *,
    upsert: bool,
    ready: bool = False,
) -> None:
    """Insert (or upsert, by primary key) `rows`, each a value for every column in the
    table's column order, with no per-row work by SQLAlchemy (on SQLite the columns' own
    bind processors convert, unless the rows are `ready`: made with `time_param`, their
    values already what the driver takes)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(unnest_insert(table, upsert=upsert), tuple(column_arrays(rows)))
        return
    if ready:
        sql = _sqlite_insert(table, upsert, connection.dialect)[0]
        connection.exec_driver_sql(sql, rows)
        return
    sql, converted = sqlite_rows(table, rows, connection.dialect, upsert=upsert)
    connection.exec_driver_sql(sql, converted)


def time_param(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """How a time goes into rows given to `write_rows(..., ready=True)` on `dialect`: text on
    SQLite (the only column type its driver does not take as it is), unchanged on
    PostgreSQL. A fold that writes many rows builds them ready, so no pass copies each row
    again to convert it."""
    return sqlite_time if dialect.name == "sqlite" else _unchanged


def _unchanged(value: datetime | None) -> datetime | None:
    return value


def sqlite_rows(
    table: sa.Table, rows: Sequence[Sequence[Any]], dialect: Dialect, *, upsert: bool = False
) -> tuple[str, Sequence[Sequence[Any]]]:
    """SQLite: the INSERT (or upsert) of `table` with `?` placeholders, and `rows` with their
    values as sqlite3 takes them (times as SQLAlchemy's SQLite DateTime stores them)."""
    sql, converters = _sqlite_insert(table, upsert, dialect)
    if not converters:
        return sql, rows
    converted = []
    for row in rows:
        values = list(row)
        for index, convert in converters:
            values[index] = convert(values[index])
        converted.append(tuple(values))
    return sql, converted


def insert_rows(connection: Connection, table: sa.Table, rows: Sequence[Sequence[Any]]) -> None:
    write_rows(connection, table, rows, upsert=False)


@cache
def _sqlite_insert(table: sa.Table, upsert: bool, dialect: Dialect) -> tuple[str, list[Any]]:
    """SQLite: the INSERT (or upsert) with `?` placeholders, and each column's converter."""
    quote = dialect.identifier_preparer.quote
    names = [quote(column.name) for column in table.columns]
    slots = ", ".join("?" * len(names))
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(names)}) VALUES ({slots})"
    if upsert:
        sql += _on_conflict_update(table, quote)
    converters = [
        (index, convert)
        for index, column in enumerate(table.columns)
        if (convert := _sqlite_converter(column, dialect)) is not None
    ]
    return sql, converters


def _sqlite_converter(column: sa.Column[Any], dialect: Dialect) -> Any:
    """How a value of `column` is handed to sqlite3. Times are written in SQLAlchemy's own
    SQLite format (what its DateTime type reads back), without its per-value machinery,
    which cost more than the rest of a projection's flush; booleans, numbers and text are
    adapted by sqlite3 itself."""
    from eventstore.store.schema import UTCDateTime

    if isinstance(column.type, UTCDateTime):
        return sqlite_time
    if isinstance(column.type, sa.Boolean | sa.Integer | sa.String):
        return None
    return column.type.dialect_impl(dialect).bind_processor(dialect)


@lru_cache(maxsize=4096)  # a fold writes each event's time to several rows and tables
def sqlite_time(value: datetime | None) -> str | None:
    """An aware time as SQLAlchemy's SQLite DateTime stores it: naive UTC, microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # no "+00:00"; faster than replace()


def _on_conflict_update(table: sa.Table, quote: Callable[[str], str]) -> str:
    keys = {column.name for column in table.primary_key.columns}
    updates = ", ".join(
        f"{quote(c.name)} = excluded.{quote(c.name)}" for c in table.columns if c.name not in keys
    )
    conflict = ", ".join(quote(c.name) for c in table.primary_key.columns)
    return f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
