"""An embedded AWS for the demo and the tests: moto's server on 127.0.0.1, on a free port,
its S3 notifications keyed the way S3 keys them."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from urllib.parse import quote_plus

from eventstore.errors import ConfigurationError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def embedded_aws() -> Iterator[str]:
    """Start moto's server on loopback; yield its endpoint URL; stop it on the way out."""
    # moto is an optional dependency (extra "demo"), imported only when this runs.
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with _keys_encoded_like_s3():
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


class _Patched:
    """Servers running in this process with the patch below applied (a test session's server
    may overlap a test's own): the first applies it, the last restores moto's."""

    servers = 0
    lock = threading.Lock()


@contextmanager
def _keys_encoded_like_s3() -> Iterator[None]:
    """While the server runs, moto's notification records encode keys as S3's do.

    moto 5.2 form-encodes the whole key (`quote_plus`: "uploads%2Fa.csv"), S3 leaves the
    slashes ("uploads/a.csv"). Parsing decodes either to the same key, but an SNS filter policy
    on a key prefix (the reactors' `uploads/`) matches the encoded text, so under moto it would
    never let anything through. The server runs in this process: its module is patched, and
    restored after."""
    from moto.s3 import notifications

    with _Patched.lock:
        if _Patched.servers == 0:
            if getattr(notifications, "quote_plus", None) is not quote_plus:
                raise ConfigurationError(
                    "moto.s3.notifications no longer encodes keys with urllib's quote_plus: "
                    "check how this moto version keys its S3 notifications "
                    "(eventstore/local/embedded.py)"
                )
            notifications.quote_plus = _quote_like_s3  # type: ignore[attr-defined]
        _Patched.servers += 1
    try:
        yield
    finally:
        with _Patched.lock:
            _Patched.servers -= 1
            if _Patched.servers == 0:
                notifications.quote_plus = quote_plus  # type: ignore[attr-defined]


_quote_like_s3 = partial(quote_plus, safe="/")
