"""The pytest plugin users get (eventstore.testing): a user's test file of a projection and
a reactor passes through the fixtures, a wrong expectation or a raising projection/reactor
fails it, a missing moto names its install command, and loading the plugin stays cheap.

The user's files run in a pytester session of their own, which loads the plugin through its
`pytest11` entry point exactly as a user's pytest does."""

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest

from eventstore.projections.reactor_outcomes import ReactorOutcomesProjection
from eventstore.reactors.builtin import PutConsumer
from eventstore.reactors.outcomes import OutcomeKind
from eventstore.store.sql import SqlEventStore
from eventstore.testing import MotoS3, ingest, run_projection, run_reactor, table_rows

pytest_plugins = ["pytester"]

# What a user writes: a small projection and a small reactor, each through its helper.
USER_CODE = '''
import json
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from eventstore.core.events import NewEvent, StoredEvent
from eventstore.projections import Projection, ProjectionContext
from eventstore.reactors import EventFilter, Reactor, ReactorIO
from eventstore.testing import ingest, run_projection, run_reactor, s3_record, sqs_event_of
from eventstore.testing import table_rows

counts = sa.Table(
    "event_counts", sa.MetaData(),
    sa.Column("event_name", sa.Text(), primary_key=True),
    sa.Column("events", sa.Integer(), nullable=False),
)


class EventCounts(Projection):
    name = "event_counts"
    tables = (counts,)

    def apply(self, context: ProjectionContext, events: Sequence[StoredEvent]) -> None:
        table = context.table("event_counts")
        for stored in events:
            name = stored.event.event_name
            updated = context.connection.execute(
                sa.update(table).where(table.c.event_name == name)
                .values(events=table.c.events + 1)
            )
            if updated.rowcount == 0:
                context.connection.execute(sa.insert(table).values(event_name=name, events=1))


class Announce(Reactor):
    """Writes each upload's size under seen/ and announces it on a queue."""

    name = "announce"
    wants = EventFilter(("ObjectCreated:*",), prefix="incoming/")

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        with io.open_input() as body:
            size = len(body.read())
        io.write_object(event.bucket, "seen/" + event.key, str(size).encode())
        io.send_message(self.queue_url, json.dumps({"key": event.key, "size": size}))
'''

PASSING_TESTS = """
@pytest.fixture
def eventstore_projections():
    return [EventCounts()]


def test_the_eventstore_fixture_has_the_given_projections_and_ingest_catches_them_up(
    eventstore,
):
    assert [p.name for p in eventstore.projections] == ["event_counts"]
    ingest(eventstore, sqs_event_of(
        s3_record("a.txt"), s3_record("a.txt", event_name="ObjectRemoved:Delete"),
        s3_record("b.txt"),
    ))
    assert table_rows(eventstore, counts) == [
        {"event_name": "ObjectCreated:Put", "events": 2},
        {"event_name": "ObjectRemoved:Delete", "events": 1},
    ]


def test_run_projection_over_events_alone():
    copy = s3_record("y", event_name="ObjectCreated:Copy")
    store = run_projection(EventCounts(), [s3_record("x"), copy])
    assert [p.name for p in store.projections] == ["event_counts"]
    assert table_rows(store, "event_counts") == [
        {"event_name": "ObjectCreated:Copy", "events": 1},
        {"event_name": "ObjectCreated:Put", "events": 1},
    ]


def test_the_log_is_a_migrated_sqlite_file_of_its_own(eventstore_db_url, eventstore_log, tmp_path):
    assert eventstore_db_url == f"sqlite:///{tmp_path / 'eventstore.db'}"
    assert eventstore_log.head_position() == 0 and eventstore_log.verify().ok


def test_a_reactor_writes_and_sends_through_moto_once_per_event(moto_s3, eventstore_log):
    queue = moto_s3.create_queue("announcements")
    uploads = {"incoming/a b.txt": b"four", "elsewhere/c.txt": b"x"}
    run = run_reactor(Announce(queue), aws=moto_s3, log=eventstore_log, uploads=uploads)

    assert run.ok and len(run.causes) == 2 and len(run.reactions) == 1
    assert moto_s3.read("seen/incoming/a b.txt") == b"4"
    sent = [json.loads(m) for m in moto_s3.messages(queue)]
    assert sent == [{"key": "incoming/a b.txt", "size": 4}]
    [produced] = run.produced
    head = moto_s3.client.head_object(Bucket=moto_s3.bucket, Key="seen/incoming/a b.txt")
    assert produced.version_id == head["VersionId"]
    assert produced.cause_event_id == run.causes[0].event_id
    again = run_reactor(Announce(queue), run.causes, aws=moto_s3, log=eventstore_log)
    assert again.reactions == () and again.recorded == ()
"""

FAILING_TESTS = """
def test_a_wrong_count():
    store = run_projection(EventCounts(), [s3_record("x")])
    assert table_rows(store, counts) == [{"event_name": "ObjectCreated:Put", "events": 2}]


def test_a_wrong_output(moto_s3, eventstore_log):
    queue = moto_s3.create_queue("q")
    run_reactor(Announce(queue), aws=moto_s3, log=eventstore_log, uploads={"incoming/a": b"abc"})
    assert moto_s3.read("seen/incoming/a") == b"4"
"""

RAISING_TESTS = """
class Broken(Projection):
    name = "broken"

    def apply(self, context, events):
        raise RuntimeError("cannot count " + events[0].event.key)


class Crash(Reactor):
    name = "crash"

    def react(self, event, io):
        raise ValueError("bad input " + event.key)


def test_a_broken_projection():
    run_projection(Broken(), [s3_record("first.txt")])


def test_a_crashing_reactor(moto_s3, eventstore_log):
    run_reactor(Crash(), aws=moto_s3, log=eventstore_log, uploads={"a.txt": b"a"})


def test_a_crash_expected(moto_s3, eventstore_log):
    uploads = {"a.txt": b"a"}
    run = run_reactor(Crash(), aws=moto_s3, log=eventstore_log, uploads=uploads, check=False)
    assert run.errors == ["ValueError: bad input a.txt"]
    assert [(o.attempt, o.reason) for o in run.failed] == [(1, "ValueError: bad input a.txt")]
"""


def test_a_users_tests_of_a_projection_and_a_reactor_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_CODE + PASSING_TESTS)

    result = pytester.runpytest()

    result.assert_outcomes(passed=4)


def test_a_wrong_expectation_is_reported_as_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_CODE + FAILING_TESTS)

    result = pytester.runpytest()

    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*diff: {'event_name': 'ObjectCreated:Put', 'events': 1} != *"])
    result.stdout.fnmatch_lines(["*assert b'3' == b'4'*"])


def test_a_raising_projection_or_reactor_fails_with_its_own_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_CODE + RAISING_TESTS)

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            '*raise RuntimeError("cannot count " + events[[]0[]].event.key)',
            "E*RuntimeError: cannot count first.txt",
            "*direct cause*",
            "E*ProjectionFailedError: projection broken failed at position 1: "
            "RuntimeError: cannot count first.txt",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            '*raise ValueError("bad input " + event.key)',
            "E*ValueError: bad input a.txt",
            "*direct cause*",
            "E*ReactorFailedError: reactor crash failed on 1 event(s): "
            "s3://eventstore-test-bucket/a.txt: ValueError: bad input a.txt",
        ]
    )


def test_without_moto_the_fixture_fails_naming_the_install_command(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import sys
        import pytest

        @pytest.fixture(autouse=True)
        def moto_not_installed(monkeypatch):
            monkeypatch.setitem(sys.modules, "moto", None)  # `import moto` raises ImportError
        """
    )
    pytester.makepyfile(test_user="def test_needs_moto(moto_s3):\n    pass\n")

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*moto_s3 fixture needs moto*pip install 'moto[[]s3,sqs[]]'*"])


def test_the_plugin_is_registered_and_loaded_in_this_suite(request: pytest.FixtureRequest) -> None:
    (point,) = [p for p in entry_points(group="pytest11") if p.name == "eventstore"]
    assert point.value == "eventstore.testing.plugin"
    assert request.config.pluginmanager.get_plugin("eventstore") is not None


def test_importing_the_plugin_loads_no_database_aws_or_moto_code() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import eventstore.testing.plugin
        print(json.dumps(sorted(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not loaded & {"sqlalchemy", "alembic", "boto3", "botocore", "moto", "psycopg"}


def test_the_helpers_run_on_every_backend(backend_log: SqlEventStore, moto_s3: MotoS3) -> None:
    # Given a log on each backend with two uploads ingested as S3 sent them
    first, second = moto_s3.put("docs/a.txt", b"alpha"), moto_s3.put("docs/b.txt", "beta")
    ingest(backend_log, [first, second])
    # When a reactor runs on one of them and the reactor_outcomes projection over the log
    history = backend_log.history(moto_s3.bucket, "docs/a.txt")
    run = run_reactor(PutConsumer(), history, aws=moto_s3, log=backend_log)
    store = run_projection(ReactorOutcomesProjection(), backend_log)
    # Then the upload's real version is the cause recorded, and the projection holds it
    (processed,) = run.processed
    assert processed.cause_version_id == first["s3"]["object"]["versionId"]
    assert processed.details == {"size": 5}
    rows = table_rows(store, "reactor_outcomes")
    assert [(r["kind"], r["cause_key"]) for r in rows] == [(OutcomeKind.PROCESSED, "docs/a.txt")]
