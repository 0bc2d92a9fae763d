"""Anchors: a (position, hash) kept outside the log catches what the chain alone cannot."""

import sqlite3
from datetime import timedelta

import pytest

from eventstore.cli import main
from eventstore.core.hashing import GENESIS_HASH, Anchor, chain_hash
from eventstore.store.sql import SqlEventStore
from tests.notification_factory import T0, new_events, s3_record


def _fill(store: SqlEventStore, count: int, start: int = 0) -> None:
    store.append(
        new_events(
            [
                s3_record(
                    "audit-bucket",
                    f"k/{i}.txt",
                    sequencer=f"{i + 1:010X}",
                    when=T0 + timedelta(seconds=i),
                    size=100,
                )
                for i in range(start, start + count)
            ]
        )
    )


def _anchor(store: SqlEventStore) -> Anchor:
    result = store.verify()
    assert result.ok and result.head_hash is not None
    return Anchor(result.head_position, result.head_hash)


def test_anchor_stays_valid_as_the_log_grows(sqlite_store: SqlEventStore) -> None:
    _fill(sqlite_store, 5)
    anchor = _anchor(sqlite_store)
    _fill(sqlite_store, 5, start=5)
    result = sqlite_store.verify(anchor=anchor)
    assert result.ok and result.head_position == 10


def test_rows_cut_off_the_end_pass_the_chain_but_not_the_anchor(
    sqlite_store: SqlEventStore, sqlite_url: str
) -> None:
    _fill(sqlite_store, 6)
    anchor = _anchor(sqlite_store)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        connection.execute("DELETE FROM events WHERE position > 4")
    assert sqlite_store.verify().ok  # the chain alone cannot tell
    result = sqlite_store.verify(anchor=anchor)
    assert (result.ok, result.first_bad_position) == (False, 5)
    assert "cut off" in (result.reason or "")


def test_a_chain_rewritten_whole_is_caught_by_the_anchor(
    sqlite_store: SqlEventStore, sqlite_url: str
) -> None:
    # Given an anchor, and then an attacker who edits row 2 and recomputes every hash
    _fill(sqlite_store, 4)
    anchor = _anchor(sqlite_store)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        connection.execute("UPDATE events SET size = 999999 WHERE position = 2")
    rows = list(sqlite_store.read())
    previous = GENESIS_HASH
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as connection:
        for stored in rows:
            digest = chain_hash(
                previous, stored.position, stored.event, stored.record_json, stored.recorded_at
            )
            connection.execute(
                "UPDATE events SET hash = ? WHERE position = ?", (digest, stored.position)
            )
            previous = digest
    # Then the chain holds, but not against the anchor
    assert sqlite_store.verify().ok
    result = sqlite_store.verify(anchor=anchor)
    assert (result.ok, result.first_bad_position) == (False, 4)


def test_cli_prints_an_anchor_and_checks_it(
    sqlite_store: SqlEventStore, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(sqlite_store, 3)
    assert main(["--db", sqlite_url, "verify"]) == 0
    anchor = capsys.readouterr().out.splitlines()[-1].removeprefix("anchor: ")
    assert anchor.startswith("3:")
    assert main(["--db", sqlite_url, "verify", "--anchor", anchor]) == 0
    assert main(["--db", sqlite_url, "verify", "--anchor", "9:" + "0" * 64]) == 1
    assert "cut off" in capsys.readouterr().out
    assert main(["--db", sqlite_url, "verify", "--anchor", "nonsense"]) == 2


def test_anchor_parsing() -> None:
    assert Anchor.parse("7:" + "AB" * 32) == Anchor(7, "ab" * 32)
    for bad in ("7", "0:" + "a" * 64, "x:" + "a" * 64, "7:abc"):
        with pytest.raises(ValueError, match="POSITION:SHA256HEX"):
            Anchor.parse(bad)
