"""Full-text search over extracted text: the `search_index` projection and its query.

The index is folded from the log alone: every `Reactor:Produced` outcome that carries the
text of its output (`details.text`, as extract-text records it, at most
MAX_INDEXED_CHARS) is one document, keyed by the output's bucket and key; a newer output of
the same key replaces the older document. So it rebuilds like any projection, without S3.
A search leaves out the documents whose objects the object catalog shows as deleted (by a
delete, a delete marker or a lifecycle expiration), so a delete needs no rebuild and a delete
that reached the log before the outcome it undoes still counts.

One table holds the documents on both backends. The index beside it is a companion (what
a SQLAlchemy Table cannot declare), created, dropped and swapped in with the table:

* SQLite: an FTS5 table over the documents' text (external content: the text is stored
  once, in the table), its rowid the document's position. Its content table is named as
  the live table even when the index belongs to a shadow table being rebuilt: FTS5 reads
  the content only to answer queries (snippets), which only the live index gets, and once
  swapped in, that name is its own table's.
* PostgreSQL: a generated `tsvector` column over the text and a GIN index on it.

Both parse text the same way, with no language: words (letters and digits) lower-cased, no
stemming, no stop words, accents kept (`simple` configuration; FTS5's `unicode61`
tokenizer without diacritics removal).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect, Engine

from eventstore.core.events import Source, StoredEvent
from eventstore.errors import ConfigurationError
from eventstore.projections.base import Companion, Fold, Projection, ProjectionContext
from eventstore.reactors.outcomes import OutcomeKind, read_outcome
from eventstore.store.base import prefix_upper_bound
from eventstore.store.bulk import write_rows
from eventstore.store.schema import (
    KeyText,
    Position,
    UTCDateTime,
    object_catalog,
    projection_metadata,
)

TABLE = "search_index"
TS_CONFIG = "simple"  # PostgreSQL's text search configuration: no language, no stemming
FTS5_TOKENIZER = "unicode61 remove_diacritics 0"
# A document's text weighs this many characters per entry of the fold's `held`, so a
# rebuild flushes by the text it holds as well as by the number of documents.
CHARS_PER_HELD_ENTRY = 1000
SNIPPET_WORDS = 16
_CHUNK = 400  # keys per IN clause: well under SQLite's variable limit

search_index = sa.Table(
    TABLE,
    projection_metadata,
    # The position of the produced outcome: unique, and the FTS5 rowid on SQLite.
    sa.Column("position", Position, primary_key=True, autoincrement=False),
    sa.Column("bucket", KeyText, nullable=False),  # the extracted object
    sa.Column("key", KeyText, nullable=False),
    sa.Column("version_id", sa.Text(), nullable=True),
    sa.Column("etag", sa.Text(), nullable=True),
    sa.Column("size", sa.BigInteger(), nullable=True),
    sa.Column("reactor", sa.Text(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("cause_event_id", sa.String(32), nullable=False),  # the upload's S3 event
    sa.Column("cause_bucket", KeyText, nullable=False),
    sa.Column("cause_key", KeyText, nullable=False),
    sa.Column("cause_version_id", sa.Text(), nullable=True),
    sa.Column("truncated", sa.Boolean(), nullable=False),  # the text is the object's start
    sa.Column("text", sa.Text(), nullable=False),
    sa.UniqueConstraint("bucket", "key"),
)

Key = tuple[str, str]


def _fts_name(documents: sa.Table) -> str:
    return documents.name + "_fts"


def _fts(documents: sa.Table) -> sa.TableClause:
    """The FTS5 table of `documents`; the column named as the table takes FTS5 commands."""
    name = _fts_name(documents)
    return sa.table(name, sa.column(name), sa.column("rowid"), sa.column("text"))


class SearchIndexProjection(Projection):
    """Extracted text by object, searchable (SQLite FTS5, PostgreSQL full-text search)."""

    name = TABLE
    version = 1
    description = "full-text index of the text reactors extracted (extract-text)"
    tables = (search_index,)

    def companions(self, dialect: Dialect, tables: Mapping[str, sa.Table]) -> Sequence[Companion]:
        quote = dialect.identifier_preparer.quote
        documents = tables[TABLE]
        if dialect.name == "sqlite":
            fts = _fts_name(documents)
            return (
                Companion(
                    "table",
                    fts,
                    f"CREATE VIRTUAL TABLE {quote(fts)} USING fts5(text, content='{TABLE}', "
                    f"content_rowid='position', tokenize='{FTS5_TOKENIZER}')",
                ),
            )
        if dialect.name == "postgresql":
            index = f"ix_{documents.name}_tsv"
            return (
                Companion(
                    "column",
                    "tsv",
                    f"ALTER TABLE {quote(documents.name)} ADD COLUMN tsv tsvector GENERATED "
                    f"ALWAYS AS (to_tsvector('{TS_CONFIG}', text)) STORED",
                ),
                Companion(
                    "index",
                    index,
                    f"CREATE INDEX {quote(index)} ON {quote(documents.name)} USING gin (tsv)",
                ),
            )
        raise ConfigurationError(f"full-text search needs SQLite or PostgreSQL, not {dialect.name}")

    def start(self) -> "SearchFold":
        return SearchFold()


class SearchFold(Fold):
    """The newest document per output key since the last flush, written when flushed."""

    def __init__(self) -> None:
        self.documents: dict[Key, tuple[Any, ...]] = {}
        self.chars = 0

    @property
    def held(self) -> int:
        return len(self.documents) + self.chars // CHARS_PER_HELD_ENTRY

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            event = stored.event
            if event.event_name != OutcomeKind.PRODUCED or event.source is not Source.REACTOR:
                continue
            outcome = read_outcome(stored)
            text = outcome.details.get("text")
            if not isinstance(text, str):
                continue  # an output with no text recorded: nothing to index
            key = (outcome.bucket, outcome.key)
            replaced = self.documents.get(key)
            if replaced is not None:
                self.chars -= len(replaced[-1])
            text = text.replace("\x00", " ")  # PostgreSQL text cannot hold NUL
            self.documents[key] = (
                outcome.position, outcome.bucket, outcome.key, outcome.version_id, outcome.etag,
                outcome.size, outcome.reactor, outcome.at, outcome.cause_event_id,
                outcome.cause_bucket, outcome.cause_key, outcome.cause_version_id,
                bool(outcome.details.get("truncated")), text,
            )  # fmt: skip
            self.chars += len(text)

    def flush(self, context: ProjectionContext) -> None:
        if not self.documents:
            return
        documents, self.documents, self.chars = self.documents, {}, 0
        table = context.table(TABLE)
        connection = context.connection
        sqlite = connection.dialect.name == "sqlite"
        if not context.fresh:
            _remove(connection, table, list(documents), from_fts=sqlite)
        rows = list(documents.values())
        write_rows(connection, table, rows, upsert=False)
        if sqlite:
            fts = _fts(table)
            connection.execute(sa.insert(fts), [{"rowid": row[0], "text": row[-1]} for row in rows])


def _remove(connection: Connection, table: sa.Table, keys: list[Key], *, from_fts: bool) -> None:
    """Delete the documents of `keys`, and first their FTS5 entries, which an external-content
    index deletes by being told the text it indexed."""
    columns = sa.tuple_(table.c.bucket, table.c.key)
    for start in range(0, len(keys), _CHUNK):
        where = columns.in_(keys[start : start + _CHUNK])
        if from_fts:
            fts = _fts(table)
            command = sa.select(sa.literal("delete"), table.c.position, table.c.text).where(where)
            connection.execute(
                sa.insert(fts).from_select([fts.c[fts.name], "rowid", "text"], command)
            )
        connection.execute(sa.delete(table).where(where))


# -- the query ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchHit:
    """An extracted object whose text holds the words, and the upload it came from."""

    rank: float  # higher is better; compare only within one search
    bucket: str
    key: str
    version_id: str | None
    cause_bucket: str
    cause_key: str
    cause_version_id: str | None
    snippet: str  # where the words are, each one found [marked]
    truncated: bool  # only the start of the object's text is indexed
    at: datetime  # when the object was extracted


def search_words(words: str | Sequence[str]) -> list[str]:
    """What a search looks for: the input split at whitespace, each piece a plain word (FTS
    operators, quotes and wildcards in it are just characters)."""
    text = words if isinstance(words, str) else " ".join(words)
    return text.replace("\x00", " ").split()


def search(
    engine: Engine,
    words: str | Sequence[str],
    *,
    prefix: str | None = None,
    limit: int = 20,
) -> list[SearchHit]:
    """The extracted objects whose text holds every one of `words`, best first (at most
    `limit`); with `prefix`, only those whose key or whose upload's key starts with it."""
    pieces = search_words(words)
    if not any(char.isalnum() for piece in pieces for char in piece):
        return []  # nothing a word could be made of: no document can match
    documents = search_index
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(TABLE):
            raise ConfigurationError(
                f"the search index is not built yet (projection {TABLE}): "
                "`eventstore projections catch-up` builds it"
            )
        if connection.dialect.name == "sqlite":
            statement = _sqlite_query(documents, pieces)
        else:
            statement = _postgres_query(documents, pieces)
        if sa.inspect(connection).has_table(object_catalog.name):
            # An extracted object deleted since (or hidden by a delete marker) is no hit: the
            # catalog knows, in S3's order, whatever order the log got the events in.
            statement = statement.where(~_deleted(documents))
        if prefix:
            statement = statement.where(
                sa.or_(_starts_with(documents.c.key, prefix),
                       _starts_with(documents.c.cause_key, prefix))
            )  # fmt: skip
        # "score", not "rank": FTS5 tables have a hidden column of that name.
        score: sa.ColumnElement[float] = sa.literal_column("score")
        statement = statement.order_by(score.desc(), documents.c.bucket, documents.c.key)
        rows = connection.execute(statement.limit(limit)).all()
    return [_hit(row) for row in rows]


def _deleted(documents: sa.Table) -> sa.Exists:
    """Whether the object catalog shows the document's object as deleted now."""
    catalog = object_catalog
    return sa.exists().where(
        catalog.c.bucket == documents.c.bucket, catalog.c.key == documents.c.key, catalog.c.deleted
    )


def _hit(row: sa.Row[Any]) -> SearchHit:
    return SearchHit(
        rank=float(row.score), bucket=row.bucket, key=row.key,
        version_id=row.version_id, cause_bucket=row.cause_bucket, cause_key=row.cause_key,
        cause_version_id=row.cause_version_id, snippet=" ".join((row.snippet or "").split()),
        truncated=row.truncated, at=row.at,
    )  # fmt: skip


def _starts_with(column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
    """A range, not LIKE: case-sensitive on both backends, and no wildcards to escape."""
    upper = prefix_upper_bound(prefix)
    condition = column >= prefix
    return condition if upper is None else sa.and_(condition, column < upper)


def _columns(documents: sa.Table) -> list[sa.ColumnElement[Any]]:
    c = documents.c
    return [c.bucket, c.key, c.version_id, c.cause_bucket, c.cause_key, c.cause_version_id,
            c.truncated, c.at]  # fmt: skip


def _sqlite_query(documents: sa.Table, pieces: list[str]) -> sa.Select[Any]:
    """FTS5: each piece a quoted string (a phrase of the words the tokenizer finds in it; one
    with none matches everything else), all of them required; ranked by bm25."""
    fts = _fts(documents)
    table: sa.ColumnElement[Any] = sa.literal_column(f'"{fts.name}"')
    match = " ".join('"' + piece.replace('"', '""') + '"' for piece in pieces)
    score = (-sa.func.bm25(table)).label("score")
    snippet = sa.func.snippet(table, 0, "[", "]", "…", SNIPPET_WORDS).label("snippet")
    return (
        sa.select(*_columns(documents), score, snippet)
        .select_from(fts.join(documents, documents.c.position == fts.c.rowid))
        .where(table.op("MATCH")(match))
    )


def _postgres_query(documents: sa.Table, pieces: list[str]) -> sa.Select[Any]:
    """plainto_tsquery: the words the parser finds in the input, all of them required, no
    operators; ranked by cover density."""
    config: sa.ColumnElement[Any] = sa.literal_column(f"'{TS_CONFIG}'::regconfig")
    query = sa.func.plainto_tsquery(config, " ".join(pieces))
    tsv: sa.ColumnElement[Any] = sa.literal_column(f'"{documents.name}".tsv')
    score = sa.func.ts_rank_cd(tsv, query).label("score")
    options = f"StartSel=[, StopSel=], MaxWords={SNIPPET_WORDS}, MinWords=6, MaxFragments=1"
    snippet = sa.func.ts_headline(config, documents.c.text, query, options).label("snippet")
    return sa.select(*_columns(documents), score, snippet).where(tsv.op("@@")(query))
