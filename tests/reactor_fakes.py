"""In-memory stand-ins for the reactors' ports (S3, SQS), for tests that need no AWS at all.

tests/integration/test_reactor_ports.py runs the same cases against these and moto's S3, so
they cannot drift from what S3 does in the ways reactors rely on."""

import hashlib
import io
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from eventstore.reactors.base import Output


@dataclass
class StoredObject:
    body: bytes
    version_id: str
    content_type: str | None
    metadata: dict[str, str]


@dataclass
class InMemoryObjectStore:
    """A versioned bucket store: every put makes a new version, the newest is current."""

    objects: dict[tuple[str, str], list[StoredObject]] = field(default_factory=dict)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @contextmanager
    def open(self, bucket: str, key: str, version_id: str | None = None) -> Iterator[BinaryIO]:
        versions = self.objects.get((bucket, key))
        if not versions:
            raise KeyError(f"NoSuchKey: s3://{bucket}/{key}")
        chosen = versions[-1]
        if version_id is not None:
            matching = [v for v in versions if v.version_id == version_id]
            if not matching:
                raise KeyError(f"NoSuchVersion: s3://{bucket}/{key}?versionId={version_id}")
            chosen = matching[0]
        yield io.BytesIO(chosen.body)

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Output:
        data = body if isinstance(body, bytes) else body.read()
        version = StoredObject(data, f"v{next(self._versions)}", content_type, dict(metadata or {}))
        self.objects.setdefault((bucket, key), []).append(version)
        return Output(bucket, key, version.version_id, hashlib.md5(data).hexdigest(), len(data))

    def copy(
        self,
        source_bucket: str,
        source_key: str,
        source_version_id: str | None,
        bucket: str,
        key: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Output:
        with self.open(source_bucket, source_key, source_version_id) as source:
            data = source.read()
        output = self.put(bucket, key, data, metadata=metadata)
        return Output(output.bucket, output.key, output.version_id, output.etag, None)

    def body(self, bucket: str, key: str) -> bytes:
        return self.objects[(bucket, key)][-1].body


@dataclass
class InMemoryMessages:
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, queue_url: str, body: str) -> str:
        self.sent.append((queue_url, body))
        return f"m-{len(self.sent)}"
