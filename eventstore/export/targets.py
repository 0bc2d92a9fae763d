"""Where an export's files go: a local directory or an S3 prefix. A file is either absent or
whole at its final name, so Athena never reads half of one."""

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from eventstore.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ExportTarget(Protocol):
    """A destination of Parquet files, addressed by paths relative to its root."""

    @property
    def name(self) -> str:
        """The destination as the checkpoint table keys it (`s3://…/` or an absolute path)."""
        ...

    def put(self, relative: str, local: Path) -> None:
        """Make the finished local file `local` durable at `relative`, replacing any file
        there (a re-run after a crash writes the same names)."""
        ...


class LocalDirectory:
    """Files under a directory: written aside, fsync'd, renamed into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    @property
    def name(self) -> str:
        return str(self.root) + os.sep

    def put(self, relative: str, local: Path) -> None:
        final = self.root / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name starts with '.', which Athena and Hive skip when listing.
        fd, temporary = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as out, local.open("rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, final)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename is durable only once the directory entry is.
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class S3Prefix:
    """Objects under s3://BUCKET/PREFIX/. A PUT (or a multipart upload's completion) makes an
    object visible whole or not at all, so no temporary key is needed."""

    def __init__(self, bucket: str, prefix: str, client: "S3Client") -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put(self, relative: str, local: Path) -> None:
        self._client.upload_file(str(local), self.bucket, self.prefix + relative)


def open_target(
    destination: str, *, endpoint_url: str | None = None, region: str | None = None
) -> ExportTarget:
    """`s3://BUCKET/PREFIX/` or a directory path."""
    if destination.startswith("s3://"):
        bucket, _, prefix = destination[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigurationError(f"no bucket in {destination!r}")
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        return S3Prefix(bucket, prefix, client)
    if "://" in destination:
        raise ConfigurationError(f"export goes to a directory or s3://…, not {destination!r}")
    return LocalDirectory(destination)
