"""`eventstore serve`: the API app on a local HTTP server (standard library), each request
handed to the app as the Lambda function URL event it would be on AWS, so the same code
path answers locally and in the cloud."""

import json
import queue
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver

if TYPE_CHECKING:
    from eventstore.wiring import EventStore

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8080


class LocalContext:
    """What the resolver reads of a Lambda context, for a request served locally."""

    function_name = "eventstore-serve"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:eventstore-serve"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def function_url_event(
    method: str, target: str, headers: dict[str, str], source_ip: str, body: str = ""
) -> dict[str, Any]:
    """A request as Lambda's function URL delivers it (payload format 2.0): repeated query
    parameters joined with commas, header names in lower case."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": lowered.get("host", LOOPBACK),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body or None,
        "isBase64Encoded": False,
    }


APPS = 4  # requests answered at once


def make_server(
    new_app: Callable[[], "LambdaFunctionUrlResolver"],
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
) -> ThreadingHTTPServer:
    # A resolver keeps the request it is answering on itself (current_event), so it must not
    # answer two at once: each request borrows one of a few apps and gives it back.
    apps: queue.Queue[LambdaFunctionUrlResolver] = queue.Queue()
    for _ in range(APPS):
        apps.put(new_app())

    class Handler(BaseHTTPRequestHandler):
        server_version = "eventstore-serve"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            event = function_url_event(
                self.command, self.path, dict(self.headers.items()), self.client_address[0], body
            )
            app = apps.get()
            try:
                result = app.resolve(event, LocalContext())  # type: ignore[arg-type]
            except Exception as error:  # the app's own failure: a 500 that says why, logged
                traceback.print_exc(file=sys.stderr)
                result = {
                    "statusCode": 500,
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps(
                        {"status": 500, "error": f"{type(error).__name__}: {error}"}
                    ),
                }
            finally:
                apps.put(app)
            payload = (result.get("body") or "").encode("utf-8")
            self.send_response(int(result["statusCode"]))
            for name, value in (result.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        # Every method goes to the app, which has only GET routes: the rest get its answer.
        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, port), Handler)


def serve(
    event_store: Callable[[], "EventStore"],
    *,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the API and the page until interrupted; `ready` gets the URL once listening."""
    from eventstore.api.app import build_app

    server = make_server(lambda: build_app(event_store), host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/"
    (ready or (lambda u: print(f"eventstore: serving {u} (Ctrl-C stops)", flush=True)))(url)
    started = time.monotonic()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print(f"eventstore: served for {time.monotonic() - started:.0f}s", file=sys.stderr)
