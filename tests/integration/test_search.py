"""The search_index projection and its query, on each backend: it finds the objects whose
extracted text holds the words, with their uploads; respects a prefix; ranks; keeps the
newest output of a key; gives the same answers after a rebuild; takes any input as words."""

from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from eventstore.core.events import NewEvent
from eventstore.errors import ConfigurationError
from eventstore.projections.runner import ProjectionRunner
from eventstore.projections.search import SearchHit, SearchIndexProjection, search
from eventstore.reactors import Reactor
from eventstore.reactors.builtin import CsvToJsonReactor, ExtractTextReactor
from eventstore.reactors.runner import ReactorRunner
from eventstore.store.sql import SqlEventStore
from eventstore.wiring import EventStore, event_store_on
from tests.notification_factory import new_events, s3_record, sequencer_of
from tests.reactor_fakes import InMemoryMessages, InMemoryObjectStore
from tests.reactor_support import BUCKET, uploaded

INDEX = SearchIndexProjection.name


@dataclass
class Pipeline:
    """Uploads put into an in-memory bucket, their events appended, extract-text (and
    csv-to-json, whose outputs carry no text) run on them, the outcomes recorded."""

    log: SqlEventStore
    objects: InMemoryObjectStore = field(default_factory=InMemoryObjectStore)
    clock: float = 0
    uploads: dict[str, NewEvent] = field(default_factory=dict)

    @property
    def store(self) -> EventStore:
        return event_store_on(self.log)

    def upload(self, files: dict[str, str | bytes], *, catch_up: bool = True) -> None:
        events = []
        for key, body in files.items():
            self.clock += 1
            data = body.encode("utf-8") if isinstance(body, str) else body
            events.append(uploaded(self.objects, key, data, seconds=self.clock))
        self.log.append(events)
        self.uploads.update((e.key, e) for e in events)
        reactors: list[Reactor] = [ExtractTextReactor(), CsvToJsonReactor()]
        for reactor in reactors:
            runner = ReactorRunner(reactor, self.log, self.objects, InMemoryMessages())
            pending = runner.unprocessed(events)
            reactions = [runner.react(e, delivery="m", attempt=1) for e in pending]
            assert all(r.ok for r in reactions), [r.error for r in reactions]
            runner.record(reactions)
        if catch_up:
            assert all(r.error is None for r in self.store.catch_up())

    def search(self, words: str, **options: object) -> list[SearchHit]:
        return search(self.log.engine, words, **options)  # type: ignore[arg-type]

    def keys(self, words: str, **options: object) -> list[str]:
        return [hit.cause_key for hit in self.search(words, **options)]


FILES: dict[str, str | bytes] = {
    "uploads/invoices/march.txt": "Invoice for March: three boxes of apples, paid.",
    "uploads/notes/todo.txt": "Buy apples and pears.\nCall the café about Zoë's order.",
    "uploads/data/people.csv": "name;city\nAna;São Paulo\nBob;Lyon\n",
    "uploads/data/report.json": '{"title": "Harvest report", "fruit": ["apples", "plums"]}',
}


@pytest.fixture
def pipeline(backend_log: SqlEventStore) -> Pipeline:
    made = Pipeline(backend_log)
    made.upload(FILES)
    return made


def test_it_finds_the_objects_holding_every_word_with_their_uploads(pipeline: Pipeline) -> None:
    assert sorted(pipeline.keys("apples")) == [
        "uploads/data/report.json", "uploads/invoices/march.txt", "uploads/notes/todo.txt"
    ]  # fmt: skip
    assert pipeline.keys("APPLES pears") == ["uploads/notes/todo.txt"]
    assert pipeline.keys("São") == ["uploads/data/people.csv"]
    assert pipeline.keys("sao") == []  # accents are kept, on both backends
    assert pipeline.keys("zoë") == ["uploads/notes/todo.txt"]
    assert pipeline.keys("nowhere") == []

    (hit,) = pipeline.search("pears")
    upload = pipeline.uploads["uploads/notes/todo.txt"]
    (extracted,) = pipeline.objects.objects[(BUCKET, "extracted/notes/todo.txt.txt")]
    assert (hit.bucket, hit.key, hit.version_id) == (
        BUCKET, "extracted/notes/todo.txt.txt", extracted.version_id
    )  # fmt: skip
    assert (hit.cause_bucket, hit.cause_key, hit.cause_version_id) == (
        BUCKET, upload.key, upload.version_id
    )  # fmt: skip
    assert "[pears]" in hit.snippet
    assert "\n" not in hit.snippet
    assert hit.truncated is False


def test_a_prefix_of_the_upload_or_of_the_extracted_object_narrows_it(pipeline: Pipeline) -> None:
    assert pipeline.keys("apples", prefix="uploads/notes/") == ["uploads/notes/todo.txt"]
    assert pipeline.keys("apples", prefix="extracted/invoices/") == ["uploads/invoices/march.txt"]
    assert pipeline.keys("apples", prefix="Uploads/") == []  # case-sensitive
    assert pipeline.keys("apples", prefix="uploads/data/report.json") == [
        "uploads/data/report.json"
    ]
    assert pipeline.keys("apples", prefix="uploads/%") == []  # no wildcards


def test_more_occurrences_rank_higher_and_the_limit_keeps_the_best(pipeline: Pipeline) -> None:
    pipeline.upload({
        "uploads/rank/once.txt": "pears " + "filler words here " * 30,
        "uploads/rank/often.txt": "pears pears pears and more pears",
    })  # fmt: skip
    hits = pipeline.search("pears", prefix="uploads/rank/")
    assert [h.cause_key for h in hits] == ["uploads/rank/often.txt", "uploads/rank/once.txt"]
    assert hits[0].rank > hits[1].rank
    assert [h.cause_key for h in pipeline.search("pears", limit=1)] == ["uploads/rank/often.txt"]


def test_a_newer_output_of_the_same_key_replaces_the_older_document(pipeline: Pipeline) -> None:
    # Across catch-ups (the stored document replaced) and within one (the fold's own)
    pipeline.upload({"uploads/notes/todo.txt": "Sell the old tractor."})
    pipeline.upload({"uploads/x.txt": "first draft"}, catch_up=False)
    pipeline.upload({"uploads/x.txt": "second draft"})

    assert pipeline.keys("pears") == []
    (hit,) = pipeline.search("tractor")
    assert hit.cause_version_id == pipeline.uploads["uploads/notes/todo.txt"].version_id
    assert pipeline.keys("draft") == ["uploads/x.txt"]
    assert pipeline.keys("first") == []
    _assert_index_matches_documents(pipeline.log)


@pytest.mark.parametrize(
    "removal",
    ["ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:Delete", "LifecycleExpiration:Delete"],
)
def test_a_deleted_extracted_object_is_no_longer_found_until_it_is_back(
    pipeline: Pipeline, removal: str
) -> None:
    (hit,) = pipeline.search("invoice")
    output = (hit.bucket, hit.key)

    def s3_event(name: str, sequencer: int, version: str | None) -> list[NewEvent]:
        return new_events([
            s3_record(*output, event_name=name, sequencer=sequencer_of(sequencer),
                      version_id=version)
        ])  # fmt: skip

    # Given the extracted object's own S3 events: it was written, then removed
    version = hit.version_id
    pipeline.log.append(s3_event("ObjectCreated:Put", 1, version))
    marker = removal.endswith("DeleteMarkerCreated")
    pipeline.log.append(s3_event(removal, 2, "marker-1" if marker else version))
    pipeline.store.catch_up()
    # Then a search no longer finds it, and still finds the others
    assert pipeline.keys("invoice") == []
    assert sorted(pipeline.keys("apples")) == ["uploads/data/report.json", "uploads/notes/todo.txt"]
    # And once the object is there again it is found again
    pipeline.log.append(s3_event("ObjectCreated:Put", 3, "v-again" if version else None))
    pipeline.store.catch_up()
    assert pipeline.keys("invoice") == ["uploads/invoices/march.txt"]


def test_a_rebuild_gives_the_same_answers_and_the_index_keeps_working(
    pipeline: Pipeline,
) -> None:
    pipeline.upload({"uploads/notes/todo.txt": "Pears only now."})
    queries = ["apples", "pears", "São", "harvest plums", "only"]
    before = {q: pipeline.search(q) for q in queries}

    (report,) = pipeline.store.runner.rebuild([INDEX])
    after = {q: pipeline.search(q) for q in queries}

    assert report.swapped and report.error is None
    assert after == before
    assert before["pears"] and before["apples"]
    # The swapped-in index takes new documents and replacements like the one before it
    pipeline.upload({
        "uploads/notes/todo.txt": "Apples again.", "uploads/new.txt": "fresh pears"
    })  # fmt: skip
    assert pipeline.keys("pears") == ["uploads/new.txt"]
    assert "uploads/notes/todo.txt" in pipeline.keys("apples")
    assert _tables(pipeline.log) == _tables_of_a_fresh_build(pipeline.log)
    _assert_index_matches_documents(pipeline.log)


def test_a_rebuild_flushed_many_times_replaces_documents_across_flushes(
    pipeline: Pipeline,
) -> None:
    pipeline.upload({"uploads/notes/todo.txt": "Pears only now."})
    pipeline.upload({"uploads/notes/todo.txt": "Plums only now."})
    before = {q: pipeline.search(q) for q in ("apples", "pears", "plums", "only")}
    # A flush after every couple of events: most documents are replaced in stored rows
    runner = ProjectionRunner(
        pipeline.log, [SearchIndexProjection()], chunk=2, rebuild_chunk=2, flush_bound=1
    )

    (report,) = runner.rebuild([INDEX])

    assert report.swapped and report.error is None
    assert {q: pipeline.search(q) for q in before} == before
    assert before["pears"] == [] and len(before["only"]) == 1
    _assert_index_matches_documents(pipeline.log)


def test_a_rebuild_restarted_over_its_own_shadow_starts_clean(pipeline: Pipeline) -> None:
    before = pipeline.search("apples")
    runner = pipeline.store.runner
    projection = runner.get(INDEX)
    for _ in range(2):  # the second finds the first one's shadow table and index
        with pipeline.log.write() as connection:
            runner.checkpoints.restart_rebuild(connection, projection, None)
    assert all(r.error is None for r in runner.catch_up())
    assert pipeline.search("apples") == before
    assert _tables(pipeline.log) == _tables_of_a_fresh_build(pipeline.log)


def test_a_dry_run_rebuild_leaves_no_table_behind(pipeline: Pipeline) -> None:
    before = _tables(pipeline.log)
    diffs = pipeline.store.runner.dry_run(INDEX)
    assert [(d.live_rows, d.rebuilt_rows, d.only_live, d.only_rebuilt) for d in diffs] == [
        (4, 4, 0, 0)
    ]
    assert _tables(pipeline.log) == before


ODD = [
    '"', "'", "-", "*", ":", "^", "(", ")", "NEAR(", "AND", "OR NOT", "a:b", '"unclosed',
    "\\", "%", "_", "{}", "&", "|", "!", "<->", "@@", "'); DROP TABLE search_index; --",
    "title:apples", "\x00", "\U0001f34e", "x" * 5000,
]  # fmt: skip


@pytest.mark.parametrize("words", ODD)
def test_any_input_is_taken_as_plain_words(pipeline: Pipeline, words: str) -> None:
    hits = pipeline.search(words)
    assert all(isinstance(h, SearchHit) for h in hits)
    assert pipeline.keys("apples")  # and the table is still there


@pytest.mark.parametrize("words", ["-apples", "apples*", '"apples"', "apples:", "(apples)"])
def test_operators_around_a_word_are_not_operators(pipeline: Pipeline, words: str) -> None:
    assert sorted(pipeline.keys(words)) == sorted(pipeline.keys("apples"))


def test_nothing_to_search_for_finds_nothing(pipeline: Pipeline) -> None:
    assert pipeline.search("") == []
    assert pipeline.search("  - * ") == []
    assert search(pipeline.log.engine, ["apples", "pears"]) == pipeline.search("apples pears")


def test_text_with_nul_characters_is_indexed(pipeline: Pipeline) -> None:
    pipeline.upload({"uploads/nul.json": '{"k": "before\\u0000after"}'})
    assert pipeline.keys("after") == ["uploads/nul.json"]


def test_before_the_projection_is_built_it_says_so(backend_log: SqlEventStore) -> None:
    with pytest.raises(ConfigurationError, match="search index is not built yet"):
        search(backend_log.engine, "apples")


# -- helpers ------------------------------------------------------------------------------


def _tables(log: SqlEventStore) -> set[str]:
    """The search index's tables (SQLite: the FTS5 table's own too) and, on PostgreSQL, the
    indexes of those tables."""
    with log.engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
        if connection.dialect.name == "postgresql":
            query = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
            names |= {
                f"{table}:{index}" for table, index in connection.exec_driver_sql(query).all()
            }
    return {name for name in names if name.startswith("search_index")}


def _tables_of_a_fresh_build(log: SqlEventStore) -> set[str]:
    if log.engine.dialect.name == "sqlite":
        fts = "search_index_fts"
        return {"search_index", fts} | {f"{fts}_{s}" for s in ("data", "idx", "docsize", "config")}
    indexes = ("pk_search_index", "uq_search_index_bucket_key", "ix_search_index_tsv")
    return {"search_index"} | {f"search_index:{index}" for index in indexes}


def _assert_index_matches_documents(log: SqlEventStore) -> None:
    """SQLite: FTS5 checks its index against the documents (external content) itself."""
    if log.engine.dialect.name != "sqlite":
        return
    with log.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO search_index_fts (search_index_fts, rank) VALUES ('integrity-check', 1)"
        )
