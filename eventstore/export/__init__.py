"""`eventstore export`: the log as Parquet partitioned by event day, for Athena (Glue table
in infra/template.yaml), written incrementally from a checkpoint per destination."""

from eventstore.export.exporter import ExportReport, export_log
from eventstore.export.targets import ExportTarget, LocalDirectory, S3Prefix, open_target

__all__ = [
    "ExportReport",
    "ExportTarget",
    "LocalDirectory",
    "S3Prefix",
    "export_log",
    "open_target",
]
