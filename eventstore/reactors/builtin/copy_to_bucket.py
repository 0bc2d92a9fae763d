"""Copy to a second bucket: every new object under `uploads/` copied, under the same key, to
the bucket $EVENTSTORE_COPY_TARGET_BUCKET names, through a transform hook."""

import os
import shutil
from typing import BinaryIO, ClassVar

from eventstore.core.events import NewEvent
from eventstore.reactors.base import EventFilter, Reactor, ReactorError, ReactorIO
from eventstore.reactors.builtin.streams import READ_BYTES, spool

TARGET_BUCKET_VARIABLE = "EVENTSTORE_COPY_TARGET_BUCKET"
INPUT_PREFIX = "uploads/"


class CopyToBucketReactor(Reactor):
    """Copies each new object under `uploads/` to $EVENTSTORE_COPY_TARGET_BUCKET, same key.

    By default the copy is server-side (S3 copies the very version the event names; the
    bytes never pass through the function, and the copy has the source's ETag). To change
    what is copied, subclass, name the subclass, and override `transform`: it gets the
    object's body as a stream and returns the bytes to write (or a binary file), or None to
    copy this object unchanged after all::

        @reactor
        class RedactEmails(CopyToBucketReactor):
            name = "copy-redacted"
            content_type = "text/plain; charset=utf-8"

            def transform(self, event: NewEvent, body: BinaryIO) -> bytes | None:
                if not event.key.endswith(".txt"):
                    return None  # server-side copy
                return EMAIL.sub(b"<redacted>", body.read())

    Returning bytes holds the whole object in memory; for large objects return a file (a
    `tempfile.SpooledTemporaryFile` written chunk by chunk, rewound). A stream that cannot
    seek is spooled first (the upload needs its size).
    """

    name = "copy-to-bucket"
    version = 1
    description = "every new object under uploads/ copied to $EVENTSTORE_COPY_TARGET_BUCKET"
    wants: ClassVar[EventFilter] = EventFilter(("ObjectCreated:*",), prefix=INPUT_PREFIX)
    content_type: ClassVar[str | None] = None  # of transformed copies (None: S3's default)

    def transform(self, event: NewEvent, body: BinaryIO) -> bytes | BinaryIO | None:
        """What to write for `event`'s object, read from `body`; None: copy it unchanged."""
        return None

    def react(self, event: NewEvent, io: ReactorIO) -> None:
        target = os.environ.get(TARGET_BUCKET_VARIABLE)
        if not target:
            raise ReactorError(f"{TARGET_BUCKET_VARIABLE} is not set")
        if target == event.bucket:
            raise ReactorError(
                f"{TARGET_BUCKET_VARIABLE} names the source bucket {target!r}: every copy "
                "would be copied again"
            )
        io.details["target"] = target
        if type(self).transform is CopyToBucketReactor.transform:
            io.copy_input(target, event.key)  # the identity: no need to read the object
            io.details["transformed"] = False
            return
        with io.open_input() as body:
            result = self.transform(event, body)
            if result is not None:
                self._write(io, target, event.key, result)
        io.details["transformed"] = result is not None
        if result is None:
            io.copy_input(target, event.key)

    def _write(self, io: ReactorIO, bucket: str, key: str, result: bytes | BinaryIO) -> None:
        if isinstance(result, bytes) or result.seekable():
            io.write_object(bucket, key, result, content_type=self.content_type)
            return
        with spool() as spooled:
            shutil.copyfileobj(result, spooled, READ_BYTES)
            spooled.seek(0)
            io.write_object(bucket, key, spooled, content_type=self.content_type)
