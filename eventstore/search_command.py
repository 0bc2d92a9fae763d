"""`eventstore search WORDS...`: the extracted objects whose text holds the words, with the
upload each came from, as a table or for machines (the search_index projection)."""

import argparse
import sys
from typing import TYPE_CHECKING, Any

from eventstore.output import render
from eventstore.projections.search import SearchHit, search, search_words

if TYPE_CHECKING:
    from eventstore.wiring import EventStore

SEARCH_FIELDS = (
    "rank", "bucket", "key", "version_id", "cause_bucket", "cause_key", "cause_version_id",
    "truncated", "snippet",
)  # fmt: skip
SEARCH_TABLE_FIELDS = ("rank", "bucket", "key", "cause_key", "snippet")


def hit_row(hit: SearchHit) -> dict[str, Any]:
    return {
        "rank": float(f"{hit.rank:.6g}"),
        "bucket": hit.bucket,
        "key": hit.key,
        "version_id": hit.version_id,
        "cause_bucket": hit.cause_bucket,
        "cause_key": hit.cause_key,
        "cause_version_id": hit.cause_version_id,
        "truncated": hit.truncated,
        "snippet": hit.snippet,
    }


def run_search(args: argparse.Namespace, event_store: "EventStore") -> int:
    """Search for `args.words` (`--prefix`, `--limit`, `--format`); exit 0, hits or none."""
    if not any(char.isalnum() for word in search_words(args.words) for char in word):
        print("eventstore: no letters or digits to search for: nothing can match", file=sys.stderr)
    hits = search(event_store.log.engine, args.words, prefix=args.prefix, limit=args.limit)
    render(
        (hit_row(h) for h in hits), SEARCH_FIELDS, args.format, sys.stdout,
        table_fields=SEARCH_TABLE_FIELDS,
    )  # fmt: skip
    return 0
