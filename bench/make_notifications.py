"""Write a JSON-lines file of N S3 event notifications, for measuring `eventstore ingest` and
the query commands on large inputs (peak RSS with /usr/bin/time -v, say).

    python bench/make_notifications.py N FILE

Each line is one SNS notification (as the archive consumer stores it) wrapping an S3
notification of one ObjectCreated:Put record, ~0.9 KB; every event is distinct (its own key,
version and sequencer), spread over 100 prefixes and 4 principals. The file is written line
by line, so making it takes no more memory at 1M events than at 100k.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.notification_factory import (  # (after the path is set)
    T0,
    s3_record,
    sequencer_of,
    sns_wrapped,
)

PRINCIPALS = ("AWS:AIDAINGEST", "AWS:AIDAETL", "AWS:AIDAANALYST", "AWS:AIDABACKUP")


def line(n: int) -> str:
    """The n-th notification: the same text for the same n, whatever the file size."""
    record = s3_record(
        "bench-bucket",
        f"data/{n % 100:02d}/object {n:07d}.bin",
        when=T0 + timedelta(milliseconds=n),
        sequencer=sequencer_of(n + 1),
        version_id=f"v{n:07d}",
        size=1000 + n,
        principal=PRINCIPALS[n % len(PRINCIPALS)],
        request_id=f"REQ{n:013d}",
    )
    return sns_wrapped(f"00000000-0000-0000-0000-{n:012d}", record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of notifications (events)")
    parser.add_argument("file", type=Path, help="the JSON-lines file to write")
    args = parser.parse_args()
    with args.file.open("w", encoding="utf-8") as out:
        for n in range(args.count):
            out.write(line(n) + "\n")


if __name__ == "__main__":
    main()
