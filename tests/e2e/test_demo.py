"""`eventstore demo` runs the whole fan-out and leaves a verifiable log; it never replaces a
database that is not its own."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.projections.catalog import catalog_entries
from eventstore.store.sql import open_store

pytestmark = pytest.mark.e2e


def test_demo_runs_end_to_end_and_leaves_the_log(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EVENTSTORE_"))}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "eventstore.cli", "--db", f"sqlite:///{db}", "demo"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert elapsed < 60
    out = completed.stdout
    assert "verify: ok" in out
    assert "only ObjectCreated:Put" in out and "only ObjectCreated:Copy" in out
    counts = [line for line in out.splitlines() if "messages in" in line]
    put_line = next(line for line in counts if "eventstore-demo-put " in line)
    assert put_line.rstrip().endswith("ObjectCreated:Put x9")
    copy_line = next(line for line in counts if "eventstore-demo-copy " in line)
    assert copy_line.rstrip().endswith("ObjectCreated:Copy x1")
    assert f"eventstore --db sqlite:///{db} verify" in out
    # the log is left for further queries: the catalog has the unicode key, deletes are marked
    store = open_store(f"sqlite:///{db}")
    # the demo caught the catalog up itself before showing it
    keys = {o.key: o.deleted for o in catalog_entries(store.engine, include_deleted=True)}
    assert keys["données/été/résumé.csv"] is False
    assert keys["exports/q1+q2 totals.csv"] is False
    assert keys["tmp/scratch.json"] is True
    assert store.verify().ok


def test_demo_refuses_to_replace_a_log_of_other_buckets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "real.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE events (bucket TEXT)")
    connection.execute("INSERT INTO events VALUES ('production-bucket')")
    connection.commit()
    connection.close()

    assert main(["--db", f"sqlite:///{db}", "demo"]) == 2

    assert "left alone" in capsys.readouterr().err
    assert sqlite3.connect(db).execute("SELECT bucket FROM events").fetchall() == [
        ("production-bucket",)
    ]


def test_demo_wants_a_sqlite_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", "postgresql://u@localhost/db", "demo"]) == 2
    assert "SQLite" in capsys.readouterr().err
