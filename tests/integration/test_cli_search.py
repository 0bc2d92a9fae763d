"""`eventstore search` end to end on each backend: the hits in every format, --prefix and
--limit, a warning when the index is behind the log, odd words, and a rebuild in between."""

import csv
import io
import json

import pytest

from eventstore import cli
from eventstore.search_command import SEARCH_FIELDS
from eventstore.store.sql import SqlEventStore
from tests.integration.test_search import FILES, Pipeline


@pytest.fixture
def pipeline(backend_log: SqlEventStore) -> Pipeline:
    made = Pipeline(backend_log)
    made.upload(FILES)
    return made


@pytest.fixture
def url(backend_url: str, pipeline: Pipeline) -> str:
    return backend_url


def eventstore(
    url: str, capsys: pytest.CaptureFixture[str], *args: str, code: int = 0
) -> tuple[str, str]:
    """Run the command line; its stdout and stderr, having checked its exit code."""
    assert cli.main(["--db", url, *args]) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_json_lists_the_hits_with_their_uploads(
    url: str, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = eventstore(url, capsys, "search", "apples", "pears", "--format", "json")
    (hit,) = json.loads(out)
    upload = pipeline.uploads["uploads/notes/todo.txt"]
    assert list(hit) == list(SEARCH_FIELDS)
    assert hit["key"] == "extracted/notes/todo.txt.txt"
    assert (hit["cause_key"], hit["cause_version_id"]) == (upload.key, upload.version_id)
    assert "[apples]" in hit["snippet"] and "[pears]" in hit["snippet"]
    assert hit["rank"] > 0
    assert err == ""


def test_prefix_limit_and_the_other_formats(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = eventstore(url, capsys, "search", "apples", "--prefix", "uploads/data/",
                        "--format", "jsonl")  # fmt: skip
    assert [json.loads(line)["cause_key"] for line in out.splitlines()] == [
        "uploads/data/report.json"
    ]
    out, _ = eventstore(url, capsys, "search", "apples", "--limit", "2", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and list(rows[0]) == list(SEARCH_FIELDS)
    out, _ = eventstore(url, capsys, "search", "harvest")
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "bucket", "key", "cause_key", "snippet"]
    assert "extracted/data/report.json.txt" in lines[2] and "[Harvest]" in lines[2]
    assert lines[-1] == "(1 row)"


def test_it_says_when_the_index_is_behind_the_log(
    url: str, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.upload({"uploads/late.txt": "late apples"}, catch_up=False)
    out, err = eventstore(url, capsys, "search", "late", "--format", "json")
    assert json.loads(out) == []
    assert "projection search_index is behind" in err

    eventstore(url, capsys, "projections", "catch-up")
    out, err = eventstore(url, capsys, "search", "late", "--format", "json")
    assert [h["cause_key"] for h in json.loads(out)] == ["uploads/late.txt"]
    assert err == ""


def test_the_same_answers_after_projections_rebuild(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before, _ = eventstore(url, capsys, "search", "apples", "--format", "json")
    eventstore(url, capsys, "projections", "rebuild", "search_index")
    after, err = eventstore(url, capsys, "search", "apples", "--format", "json")
    assert json.loads(after) == json.loads(before) and len(json.loads(before)) == 3
    assert err == ""


@pytest.mark.parametrize(
    ("words", "hits"),
    [
        (["--", "-apples"], 3),
        (['"apples'], 3),
        (["apples*"], 3),
        (["title:", "apples"], 1),  # the JSON report has a "title" key, and apples
        (["NOT", "apples"], 0),  # "not" is a word nothing holds, not an operator
    ],
    ids=["dash", "quote", "star", "colon", "operator"],
)
def test_odd_words_are_plain_words(
    url: str, capsys: pytest.CaptureFixture[str], words: list[str], hits: int
) -> None:
    out, err = eventstore(url, capsys, "search", "--format", "json", *words)
    assert len(json.loads(out)) == hits
    assert err == ""


def test_nothing_searchable_says_so_and_finds_nothing(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = eventstore(url, capsys, "search", "*", "--format", "json")
    assert json.loads(out) == []
    assert "no letters or digits to search for" in err


def test_before_the_index_is_built_it_is_one_line_and_exit_2(
    backend_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = eventstore(backend_url, capsys, "search", "apples", code=2)
    assert "projection search_index is new" in err
    assert err.splitlines()[-1].startswith("eventstore: error: the search index is not built yet")
