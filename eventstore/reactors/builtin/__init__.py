"""The built-in reactors: the classic pipelines of the S3 fan-out."""

from collections.abc import Callable

from eventstore.reactors.base import Reactor
from eventstore.reactors.builtin.copy_to_bucket import CopyToBucketReactor
from eventstore.reactors.builtin.csv_to_json import CsvToJsonReactor
from eventstore.reactors.builtin.extract_text import ExtractTextReactor
from eventstore.reactors.builtin.recorders import CopyConsumer, PutConsumer

BUILTIN_REACTORS: tuple[Callable[[], Reactor], ...] = (
    PutConsumer,
    CopyConsumer,
    CsvToJsonReactor,
    ExtractTextReactor,
    CopyToBucketReactor,
)

__all__ = [
    "BUILTIN_REACTORS",
    "CopyConsumer",
    "CopyToBucketReactor",
    "CsvToJsonReactor",
    "ExtractTextReactor",
    "PutConsumer",
]
