"""`eventstore export DEST`: the command's output around export_log."""

import json
import sys

from eventstore.errors import ConfigurationError
from eventstore.progress import Progress
from eventstore.store.sql import SqlEventStore


def export_command(
    log: SqlEventStore,
    destination: str,
    *,
    range_events: int,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> int:
    """Export what is new since the last run; print a JSON summary on stdout."""
    try:
        from eventstore.export.exporter import export_log
        from eventstore.export.targets import open_target
    except ModuleNotFoundError as error:  # pyarrow: the `lake` extra
        raise ConfigurationError(
            f"export needs {error.name}: pip install 's3-eventstore[lake]'"
        ) from None
    target = open_target(destination, endpoint_url=endpoint_url, region=region)
    progress = Progress("export")
    try:
        report = export_log(log, target, range_events=range_events, on_rows=progress.advance)
    finally:
        progress.close()
    print(json.dumps(report.as_dict()), file=sys.stdout)
    return 0
