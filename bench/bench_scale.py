"""Scale model: the ingest handler's throughput against writers, SQS batch size and the
database round trip, on a throwaway PostgreSQL behind a loopback delay proxy.

    python bench/bench_scale.py [--rtt-ms 0,1,2,5] [--writers 1,4,8] [--batches 10,100]
                                [--invocations-10 240] [--invocations-100 64] [--json FILE]

docs/scale.md explains the model and the figures this prints. For every point of the grid:

* a fresh database (the migrations' template, tests/postgres_server.py);
* `writers` spawned processes (like Lambda containers) each invoke the real
  `consumers.ingest.handler` with Lambda SQS events of `batch` SNS-wrapped S3 records (~1 KB),
  one untimed warm-up invocation first, projections left for later (as an invocation with
  under 3 s left does), so what is timed is parse + identity + the serialised append;
* every connection goes through `DelayProxy`, which holds each chunk of bytes for rtt/2 in
  each direction (order kept; chunks in flight are delayed together, not one after another,
  as on a real network).

Printed per point: events/s, the append lock's hold (median and p95, from the head's arrival
to COMMIT's answer), wall and client CPU per invocation (medians over writers), and the
model's prediction min(writers * batch / wall, batch / hold) next to the measurement.

Why a proxy and not the server's settings: PostgreSQL has no per-round-trip delay, and
`commit_delay` only applies with fsync on and other transactions committing (it is a group
commit wait, not a fixed latency); `tc netem` on loopback would delay every other program on
the machine. The proxy rounds its sleeps up to the event loop's millisecond, so the round
trip it really adds is measured (`SELECT 1`, median of 50) and printed as `rtt`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import time
from multiprocessing import get_context
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_postgres import _Context, lambda_events
from sqlalchemy.engine import make_url

from eventstore.store.database import create_engine
from eventstore.store.sql import SqlEventStore
from tests.postgres_server import PostgresServer, TestDatabases, libpq_url

# -- the delay proxy --------------------------------------------------------------------


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy reader to writer, each chunk written `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass  # the other side went away: the connection ends, like on a network
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


async def _serve(listener: socket.socket, target: str, delay: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(target)
        await asyncio.gather(
            _forward(client_r, server_w, delay), _forward(server_r, client_w, delay)
        )

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def _proxy_main(listener: socket.socket, target: str, delay: float, ready: EventType) -> None:
    ready.set()
    asyncio.run(_serve(listener, target, delay))


class DelayProxy:
    """127.0.0.1:port → the server's Unix socket, `rtt_ms / 2` added in each direction, in
    a process of its own (so the writers' CPU does not delay it further)."""

    def __init__(self, socket_path: str, rtt_ms: float) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        context = get_context("fork")  # the listening socket is inherited
        ready = context.Event()
        self.process = context.Process(
            target=_proxy_main,
            args=(self.listener, socket_path, rtt_ms / 2000, ready),
            daemon=True,
        )
        self.process.start()
        ready.wait(10)

    def url(self, url: str) -> str:
        """`url` (a database on the proxied server) as reached through the proxy."""
        return (
            make_url(url)
            .set(host="127.0.0.1", port=self.port, query={})
            .render_as_string(hide_password=False)
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)
        self.listener.close()


def measured_rtt_ms(url: str, samples: int = 50) -> float:
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("SELECT 1")
        times = []
        for _ in range(samples):
            began = time.perf_counter()
            connection.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


# -- one Lambda container ----------------------------------------------------------------


def writer_job(
    url: str, writer: int, invocations: int, batch: int, start_at: float
) -> dict[str, Any]:
    """Warm up, wait for the common start, invoke; return times, CPU and lock holds."""
    os.environ["EVENTSTORE_DB_URL"] = url
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- Powertools logs and metrics, as on Lambda
    # Imported only now: Powertools binds its log stream to sys.stdout when it is created.
    from consumers.ingest import handler
    from eventstore.store.pg_append import LockHolds

    context = _Context()
    context.remaining_ms = 2_000  # no catch-up in the invocation: the append path alone
    handler(lambda_events(writer, 10_000_000, batch, batch)[0], context)  # cold start
    events = lambda_events(writer, 0, invocations * batch, batch)
    LockHolds.enabled, LockHolds.seconds = True, []
    time.sleep(max(0.0, start_at - time.time()))
    began, cpu = time.perf_counter(), time.process_time()
    for event in events:
        response = handler(event, context)
        if response["batchItemFailures"]:
            raise RuntimeError(f"handler failed messages: {response}")
    ended = time.perf_counter()
    return {
        "began": began,
        "ended": ended,
        "cpu_ms": 1000 * (time.process_time() - cpu) / invocations,
        "wall_ms": 1000 * (ended - began) / invocations,
        "holds": list(LockHolds.seconds),
    }


def run_point(
    databases: TestDatabases, proxy: DelayProxy, writers: int, batch: int, invocations: int
) -> dict[str, Any]:
    url = databases.create()
    try:
        proxied = proxy.url(url)
        per_writer = invocations // writers
        with get_context("spawn").Pool(writers) as pool:
            start_at = time.time() + 2.0 + 0.4 * writers  # after every process has warmed up
            jobs = [
                pool.apply_async(writer_job, (proxied, w, per_writer, batch, start_at))
                for w in range(writers)
            ]
            results = [job.get(timeout=900) for job in jobs]
        elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
        engine = create_engine(url)
        try:
            store = SqlEventStore(engine)
            expected = writers * (per_writer + 1) * batch  # warm-ups included
            if store.head_position() != expected or not store.verify().ok:
                raise RuntimeError(f"log is not {expected} events or does not verify")
        finally:
            engine.dispose()
        holds = sorted(h for r in results for h in r["holds"])
        return {
            "writers": writers,
            "batch": batch,
            "events_per_s": writers * per_writer * batch / elapsed,
            "hold_ms": 1000 * holds[len(holds) // 2],
            "hold_p95_ms": 1000 * holds[int(len(holds) * 0.95)],
            "wall_ms": statistics.median(r["wall_ms"] for r in results),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in results),
        }
    finally:
        databases.drop(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", default="0,1,2,5", help="round trips to add, ms")
    parser.add_argument("--writers", default="1,4,8")
    parser.add_argument("--batches", default="10,100")
    parser.add_argument("--invocations-10", type=int, default=240, help="at batch 10, in all")
    parser.add_argument("--invocations-100", type=int, default=64, help="at batch 100, in all")
    parser.add_argument("--json", type=Path, help="also write the points here")
    args = parser.parse_args()
    rtts = [float(x) for x in args.rtt_ms.split(",")]
    writer_counts = [int(x) for x in args.writers.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    invocations = {10: args.invocations_10, 100: args.invocations_100}

    # fsync off as in the other benchmarks: the commit's disk wait is not what is measured
    # here (docs/scale.md adds the published RDS/Aurora commit latency to the model instead).
    settings = {
        "max_connections": "100",
        "shared_buffers": "256MB",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    server = PostgresServer(settings=settings).start()
    points: list[dict[str, Any]] = []
    try:
        databases = TestDatabases(server.url)
        databases.build_template()
        socket_path = str(server.socket_dir / ".s.PGSQL.5432")
        print(
            "added  rtt    writers batch  events/s  hold med/p95 ms  wall/inv ms  cpu/inv ms"
            "  model ev/s",
            flush=True,
        )
        for added in rtts:
            proxy = DelayProxy(socket_path, added)
            try:
                with databases.fresh() as probe:
                    rtt = measured_rtt_ms(proxy.url(probe))
                for batch in batches:
                    single_wall = None
                    for writers in writer_counts:
                        count = invocations.get(batch, max(8, 2400 // batch))
                        point = run_point(databases, proxy, writers, batch, count)
                        if single_wall is None:
                            single_wall = point["wall_ms"]
                        # Throughput is the lesser of what the writers offer and what one
                        # lock holder after another can store.
                        model = min(
                            writers * batch * 1000 / single_wall,
                            batch * 1000 / point["hold_ms"],
                        )
                        point.update(added_rtt_ms=added, rtt_ms=rtt, model_events_per_s=model)
                        points.append(point)
                        print(
                            f"{added:5.1f} {rtt:5.2f} {writers:7d} {batch:5d} "
                            f"{point['events_per_s']:9,.0f}  "
                            f"{point['hold_ms']:6.2f} / {point['hold_p95_ms']:6.2f}  "
                            f"{point['wall_ms']:11.2f} {point['cpu_ms']:11.2f} {model:11,.0f}",
                            flush=True,
                        )
            finally:
                proxy.stop()
        databases.close()
    finally:
        server.stop()
    print_fits(points)
    if args.json:
        args.json.write_text(json.dumps(points, indent=2))
    return 0


def print_fits(points: list[dict[str, Any]]) -> None:
    """Least-squares lines of wall time per invocation and of the lock's hold against the
    measured round trip, one writer: their slopes count the round trips each one waits for
    (what carries the model from loopback to RDS), their intercepts are the CPU and queueing."""
    for batch in sorted({p["batch"] for p in points}):
        single = [p for p in points if p["batch"] == batch and p["writers"] == 1]
        if len({p["rtt_ms"] for p in single}) < 2:
            continue
        rtts = [p["rtt_ms"] for p in single]
        for name in ("wall_ms", "hold_ms"):
            fit = statistics.linear_regression(rtts, [p[name] for p in single])
            print(
                f"batch {batch}, 1 writer: {name} = {fit.intercept:.2f} ms + {fit.slope:.2f} x rtt",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
