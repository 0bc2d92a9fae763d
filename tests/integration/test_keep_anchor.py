"""infra/keep-anchor.sh: the verified head of the log goes to the archive bucket's anchors/,
and a broken chain keeps nothing. The AWS CLI is stood in for by a script that records what it
was asked to upload."""

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from eventstore.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "keep-anchor.sh"
SAMPLES = ROOT / "eventstore" / "samples" / "notifications.jsonl"


def _fake_aws(folder: Path) -> Path:
    """An `aws` that writes its arguments and its stdin to files next to it."""
    fake = folder / "aws"
    fake.write_text(
        f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{folder}/args"\ncat > "{folder}/body"\n',
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def _keep_anchor(tmp_path: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "AWS": str(_fake_aws(tmp_path)),
        "EVENTSTORE": str(Path(sys.executable).parent / "eventstore"),
    }
    return subprocess.run(
        [str(SCRIPT), "my-archive", "--db", db_url],
        capture_output=True, text=True, env=environment, check=False, timeout=120,
    )  # fmt: skip


def test_the_verified_head_is_kept_under_anchors_in_the_archive_bucket(tmp_path: Path) -> None:
    # Given a log with events
    db_url = f"sqlite:///{tmp_path / 'events.db'}"
    assert cli(["--db", db_url, "ingest", str(SAMPLES)]) == 0

    # When an anchor is kept
    completed = _keep_anchor(tmp_path, db_url)

    # Then verify's report (ok, head position and hash) was uploaded to anchors/ by time
    assert completed.returncode == 0, completed.stderr
    command = (tmp_path / "args").read_text(encoding="utf-8").split()
    assert command[:3] == ["s3", "cp", "-"]
    assert command[3].startswith("s3://my-archive/anchors/") and command[3].endswith("Z.json")
    (report,) = json.loads((tmp_path / "body").read_text(encoding="utf-8"))
    assert report["ok"] is True and report["head_position"] == 8
    assert len(report["head_hash"]) == 64
    # and it is an anchor `verify --anchor` takes back
    anchor = f"{report['head_position']}:{report['head_hash']}"
    assert cli(["--db", db_url, "verify", "--anchor", anchor]) == 0


def test_a_broken_chain_keeps_no_anchor(tmp_path: Path) -> None:
    # Given a log whose stored row was altered behind its back
    path = tmp_path / "events.db"
    assert cli(["--db", f"sqlite:///{path}", "ingest", str(SAMPLES)]) == 0
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE events SET key = 'forged' WHERE position = 3")

    # When an anchor is asked for, then nothing is uploaded and the script fails
    completed = _keep_anchor(tmp_path, f"sqlite:///{path}")
    assert completed.returncode == 1
    assert not (tmp_path / "body").exists()
