"""`eventstore demo` runs the whole fan-out and leaves a verifiable log; it never replaces a
database that is not its own."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore.cli import main
from eventstore.projections.catalog import catalog_entries
from eventstore.store.sql import open_store

pytestmark = pytest.mark.e2e


def test_demo_runs_end_to_end_and_leaves_the_log(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EVENTSTORE_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "eventstore.cli", "--db", f"sqlite:///{db}", "demo"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "verify: ok" in out
    assert "only ObjectCreated:Put" in out and "only ObjectCreated:Copy" in out
    counts = [line for line in out.splitlines() if "messages in" in line]
    put_line = next(line for line in counts if "eventstore-demo-put " in line)
    assert put_line.rstrip().endswith("ObjectCreated:Put x16")  # 12 uploads, 4 reactor outputs
    copy_line = next(line for line in counts if "eventstore-demo-copy " in line)
    assert copy_line.rstrip().endswith("ObjectCreated:Copy x1")
    csv_line = next(line for line in counts if "eventstore-demo-csv-to-json " in line)
    assert "1 dead-lettered" in csv_line  # the broken CSV, after maxReceiveCount attempts
    # the chain: the upload's lineage, its converted and extracted outputs, a search, a failure
    lineage = out.split("6. Lineage of")[1].split("7. Full-text search")[0]
    assert "csv-to-json v1: processed" in lineage
    assert "produced s3://eventstore-demo-data/converted/2026/03/budget.jsonl" in lineage
    assert "produced s3://eventstore-demo-data/extracted/2026/03/budget.csv.txt" in lineage
    assert "produced s3://eventstore-demo-data-copies/uploads/2026/03/budget.csv" in lineage
    search = out.split("7. Full-text search")[1].split("8. Reactors")[0]
    assert "uploads/2026/03/budget.csv" in search and "uploads/meeting-notes.txt" in search
    status = out.split("8. Reactors")[1].split("9. Archive")[0]
    assert "line 3: 2 fields, the header has 3" in status
    # every command it suggests runs as printed (no `eventstore` on the PATH is assumed)
    suggested = [line.strip() for line in out.split("Try next:")[1].splitlines() if line.strip()]
    assert any(line.endswith(" verify") for line in suggested)
    for line in suggested:
        run = subprocess.run(
            line, shell=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env=env, check=False,
        )  # fmt: skip
        # `reactors status` exits 1 by design: the broken CSV needs attention
        expected = 1 if line.endswith("reactors status") else 0
        assert run.returncode == expected, (line, run.stdout, run.stderr)
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


def test_demo_with_serve_prints_the_url_of_the_audit_page_over_its_log(tmp_path: Path) -> None:
    import json
    import signal
    import urllib.request

    db = tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EVENTSTORE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "eventstore.cli", "--db", f"sqlite:///{db}", "demo", "--serve",
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        for line in process.stdout:  # the demo's story, then the URL
            if "The audit page over this log: open " in line:
                break
        url = line.split(" open ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert "<html" in page.read().decode().lower()
        with urllib.request.urlopen(url + "api/projections", timeout=30) as answer:
            body = json.loads(answer.read())
        assert "object_catalog" in json.dumps(body)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
