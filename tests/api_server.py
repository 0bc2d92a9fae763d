"""`eventstore serve` as the tests run it: a real server process on 127.0.0.1, any free port."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def running_server(db_url: str) -> Iterator[tuple[str, "subprocess.Popen[str]"]]:
    """Start `eventstore --db URL serve --port 0`; yield its base URL and process; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "eventstore.cli", "--db", db_url, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket is bound
        assert "serving http://127.0.0.1:" in line, f"serve did not start: {line!r}"
        yield line.split()[2], process
    finally:
        process.terminate()
        process.wait(timeout=30)


def get(base: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    """(status, headers, body) of one request; JSON bodies decoded."""
    request = urllib.request.Request(base + path.lstrip("/"), method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    text = raw.decode("utf-8")
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, headers, json.loads(text)
    return status, headers, text
