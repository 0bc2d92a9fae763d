"""An embedded AWS for the demo and the tests: moto's server on 127.0.0.1, on a free port."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager


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
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
