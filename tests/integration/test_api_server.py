"""The audit API against a real `eventstore serve` process on 127.0.0.1: every endpoint,
paging, filters, 400 with the reason, 404, and a large page in bounded memory."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from eventstore.wiring import open_event_store
from tests.api_server import get, running_server
from tests.notification_factory import T0, iso, new_events, put_records, s3_record, sequencer_of

BUCKET = "audit-data"
REPORT = "reports/2026/q1 final+v2.csv"  # a space and a plus: shown and asked for decoded
BULK = 2500


def _records() -> list[dict[str, Any]]:
    hour = timedelta(hours=1)
    report = [
        s3_record(BUCKET, REPORT, when=T0, sequencer=sequencer_of(1), version_id="v1",
                  principal="AWS:alice"),
        s3_record(BUCKET, REPORT, when=T0 + hour, sequencer=sequencer_of(2), version_id="v2",
                  principal="AWS:bob", size=2048),
        s3_record(BUCKET, REPORT, event_name="ObjectRemoved:DeleteMarkerCreated",
                  when=T0 + 2 * hour, sequencer=sequencer_of(3), version_id="dm1",
                  principal="AWS:alice"),
    ]  # fmt: skip
    logs = put_records(BUCKET, [f"logs/{i:02d}.txt" for i in range(10)], start=100)
    other = [s3_record("other-bucket", "x.txt", when=T0, sequencer=sequencer_of(1))]
    bulk = put_records(BUCKET, [f"bulk/{i:05d}.bin" for i in range(BULK)], start=1000, padding=200)
    return report + logs + other + bulk


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    path: Path = tmp_path_factory.mktemp("api") / "events.db"
    url = f"sqlite:///{path}"
    store = open_event_store(url)
    store.log.append(new_events(_records()))
    store.catch_up()
    store.log.engine.dispose()
    with running_server(url) as (base, process):
        yield base, process.pid


def _ok(base: str, path: str) -> Any:
    status, _, body = get(base, path)
    assert status == 200, body
    return body


def test_events_pages_by_position_cursor_through_the_whole_log(server: tuple[str, int]) -> None:
    base, _ = server
    # When every event is read a page of 1000 at a time
    seen: list[int] = []
    after = 0
    while True:
        page = _ok(base, f"api/events?limit=1000&after={after}")
        seen += [e["position"] for e in page["events"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    # Then each appears once, in position order
    assert seen == list(range(1, 3 + 10 + 1 + BULK + 1))
    first = _ok(base, "api/events?limit=1")["events"][0]
    assert set(first) == {
        "position", "event_id", "event_name", "event_time", "bucket", "key", "version_id",
        "sequencer", "size", "etag", "principal_id", "source_ip", "request_id", "region", "source",
    }  # fmt: skip
    assert first["key"] == REPORT and first["event_time"] == iso(T0)


def test_events_take_the_filters_of_the_events_command(server: tuple[str, int]) -> None:
    base, _ = server
    by_prefix = _ok(base, f"api/events?bucket={BUCKET}&prefix=logs/&limit=1000")["events"]
    assert [e["key"] for e in by_prefix] == [f"logs/{i:02d}.txt" for i in range(10)]
    removed = _ok(base, "api/events?type=ObjectRemoved:*")["events"]
    assert [(e["key"], e["event_name"]) for e in removed] == [
        (REPORT, "ObjectRemoved:DeleteMarkerCreated")
    ]
    several = _ok(base, "api/events?type=ObjectRemoved:*&type=ObjectCreated:Put&prefix=reports/")
    assert len(several["events"]) == 3
    alice = _ok(base, "api/events?principal=AWS:alice")["events"]
    assert [e["version_id"] for e in alice] == ["v1", "dm1"]
    window = (
        f"since={quote(iso(T0 + timedelta(hours=1)))}&until={quote(iso(T0 + timedelta(hours=2)))}"
    )
    assert [
        e["version_id"] for e in _ok(base, f"api/events?prefix=reports/&{window}")["events"]
    ] == ["v2"]
    assert _ok(base, "api/events?bucket=other-bucket")["events"][0]["key"] == "x.txt"


def test_history_is_one_objects_events_in_s3_order_by_pages_and_404_when_unknown(
    server: tuple[str, int],
) -> None:
    base, _ = server
    history = _ok(base, f"api/history?bucket={BUCKET}&key={quote(REPORT)}")
    assert [e["event_name"] for e in history["events"]] == [
        "ObjectCreated:Put", "ObjectCreated:Put", "ObjectRemoved:DeleteMarkerCreated",
    ]  # fmt: skip
    assert history["next_cursor"] is None
    # page by page, each page's cursor reading on where it stopped
    names, cursor = [], ""
    for _ in range(4):
        page = _ok(base, f"api/history?bucket={BUCKET}&key={quote(REPORT)}&limit=2{cursor}")
        names += [e["event_name"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={quote(page['next_cursor'])}"
    assert names == [e["event_name"] for e in history["events"]] and len(page["events"]) == 1
    for bad in ("x", "1", "999999.0"):
        status, _, body = get(base, f"api/history?bucket={BUCKET}&key={quote(REPORT)}&cursor={bad}")
        assert status == 400 and "cursor" in body["error"]
    status, _, body = get(base, f"api/history?bucket={BUCKET}&key=no/such.txt")
    assert status == 404 and body["error"] == f"no events of s3://{BUCKET}/no/such.txt in the log"
    status, _, body = get(base, f"api/history?bucket={BUCKET}")
    assert status == 400 and "key" in body["error"]


def test_the_catalog_now_as_of_a_past_time_and_paged_by_key(server: tuple[str, int]) -> None:
    base, _ = server
    now = _ok(base, f"api/objects?bucket={BUCKET}&prefix=reports/")
    assert now["objects"] == [] and now["lag"] == 0 and now["as_of"] is None
    deleted = _ok(base, f"api/objects?bucket={BUCKET}&prefix=reports/&include-deleted=true")
    assert [(o["key"], o["deleted"]) for o in deleted["objects"]] == [(REPORT, True)]
    at = quote(iso(T0 + timedelta(minutes=90)))
    then = _ok(base, f"api/objects?bucket={BUCKET}&prefix=reports/&as-of={at}")
    assert [(o["version_id"], o["size"], o["deleted"]) for o in then["objects"]] == [
        ("v2", 2048, False)
    ]
    assert set(then["objects"][0]) == {
        "bucket", "key", "version_id", "size", "etag", "sequencer", "last_event_name",
        "last_event_time", "deleted",
    }  # fmt: skip
    keys: list[str] = []
    cursor = ""
    while True:
        page = _ok(base, f"api/objects?prefix=logs/&limit=4&cursor={quote(cursor)}")
        keys += [o["key"] for o in page["objects"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert keys == [f"logs/{i:02d}.txt" for i in range(10)]


def test_activity_counts_events_per_hour_and_name(server: tuple[str, int]) -> None:
    base, _ = server
    activity = _ok(base, f"api/activity?bucket={BUCKET}&prefix=reports/")
    assert activity["total"] == 3
    assert activity["hours"] == [
        {"hour": iso(T0), "event_name": "ObjectCreated:Put", "events": 1},
        {"hour": iso(T0 + timedelta(hours=1)), "event_name": "ObjectCreated:Put", "events": 1},
        {"hour": iso(T0 + timedelta(hours=2)), "event_name": "ObjectRemoved:DeleteMarkerCreated",
         "events": 1},
    ]  # fmt: skip


def test_principals_projections_verify_and_trace(server: tuple[str, int]) -> None:
    base, _ = server
    principals = _ok(base, "api/principals")
    alice = [p for p in principals["principals"] if p["principal_id"] == "AWS:alice"]
    assert {(p["event_name"], p["events"]) for p in alice} == {
        ("ObjectCreated:Put", 1), ("ObjectRemoved:DeleteMarkerCreated", 1),
    }  # fmt: skip
    projections = _ok(base, "api/projections")
    assert projections["head"] == 3 + 10 + 1 + BULK
    assert {p["name"]: p["lag"] for p in projections["projections"]}["object_catalog"] == 0

    verified = _ok(base, "api/verify")
    assert verified["ok"] and verified["checked"] == projections["head"]
    again = _ok(base, f"api/verify?anchor={verified['anchor']}")
    assert again["ok"] and again["checked_anchor"] == verified["anchor"]
    wrong = _ok(base, f"api/verify?anchor=1:{'0' * 64}")
    assert not wrong["ok"] and wrong["first_bad_position"] == 1 and wrong["anchor"] is None

    lineage = _ok(base, f"api/trace?bucket={BUCKET}&key={quote(REPORT)}")
    assert [e["version_id"] for e in lineage["events"]] == ["v1", "v2", "dm1"]
    assert lineage["derived_from"] == []
    status, _, body = get(base, f"api/trace?bucket={BUCKET}&key=nothing")
    assert status == 404 and "knows nothing" in body["error"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("api/events?limit=5000", "limit: Input should be less than or equal to 1000"),
        ("api/events?limit=none", "limit: Input should be a valid integer"),
        ("api/events?after=-1", "after: Input should be greater than or equal to 0"),
        ("api/events?since=yesterday", "since: 'yesterday' is not an ISO 8601 time"),
        ("api/objects?as-of=2026-13-01", "as-of: '2026-13-01' is not an ISO 8601 time"),
        ("api/objects?include-deleted=maybe", "include-deleted: Input should be a valid boolean"),
        ("api/objects?cursor=nokey", "cursor: not BUCKET/KEY"),
        ("api/verify?anchor=12", "anchor: an anchor is POSITION:SHA256HEX"),
        ("api/trace?key=a", "bucket: Field required"),
    ],
)
def test_bad_parameters_get_400_with_the_reason(
    server: tuple[str, int], query: str, reason: str
) -> None:
    status, _, body = get(server[0], query)
    assert status == 400
    assert body["status"] == 400 and reason in body["error"]


def test_openapi_page_and_nothing_writes(server: tuple[str, int]) -> None:
    base, _ = server
    document = _ok(base, "openapi.json")
    assert set(document["paths"]) == {
        "/api/events", "/api/history", "/api/objects", "/api/activity", "/api/principals",
        "/api/projections", "/api/verify", "/api/trace",
    }  # fmt: skip
    assert all(set(item) == {"get"} for item in document["paths"].values())
    assert "EventPage" in document["components"]["schemas"]

    status, headers, page = get(base, "")
    assert status == 200 and "<title>S3 event store" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "style.css"):
        assert get(base, f"static/{name}")[0] == 200
    assert get(base, "static/..%2Fapp.py")[0] == 404

    head = _ok(base, "api/projections")["head"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(base, "api/events", method=method)[0] in (404, 405)
    assert _ok(base, "api/projections")["head"] == head


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_pages_stay_within_bounded_memory(server: tuple[str, int]) -> None:
    base, pid = server

    def read_everything() -> int:
        count, after = 0, 0
        while True:
            page = _ok(base, f"api/events?limit=1000&after={after}")
            count += len(page["events"])
            if page["next_after"] is None:
                return count
            after = page["next_after"]

    # Given the server has already served full pages (its steady state)
    read_everything()
    _ok(base, "api/activity")
    warm = _peak_rss_kib(pid)
    # When the whole log is read again several times, and counted over in one request
    for _ in range(3):
        assert read_everything() == 3 + 10 + 1 + BULK
        _ok(base, "api/activity")
        _ok(base, "api/objects?limit=1000&include-deleted=true")
    # Then its peak memory has not grown with what it served (a page at a time, streamed)
    assert _peak_rss_kib(pid) - warm < 16 * 1024


def test_concurrent_requests_each_get_their_own_answer(server: tuple[str, int]) -> None:
    # (a resolver holds the request it answers: two at once on one app mixed them up)
    from concurrent.futures import ThreadPoolExecutor

    base, _ = server
    paths = [
        f"api/objects?prefix=logs/&limit={n}" if n % 2 else f"api/events?prefix=logs/&limit={n}"
        for n in range(1, 41)
    ]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda p: get(base, p), paths))
    for n, (status, _, body) in enumerate(answers, start=1):
        assert status == 200, body
        rows = body["objects"] if n % 2 else body["events"]
        assert len(rows) == min(n, 10)
