"""Checkpoint lag at a steady 1,000 events/s: p99 <= 1 s from publish to a signed checkpoint.

    .venv/bin/python -m bench.checkpoint_lag [seconds] [--rate 1000] [--prefill 0]
                                             [--store sqlite|postgres]

The real audit consumer runs in this process as the service runs it: Ledger + Appender
subscribed on a PikaBus to q.audit of a throw-away vhost, batches of up to BATCH (as
services/audit/__main__.py), the store in a temp dir (or a throw-away PostgreSQL database).
A publisher in a child process (its own PikaBus, its own GIL) publishes real audit records
(bench._fill.record) to the audit exchange on a fixed schedule, one every 1/rate s, and notes
when each was published and when the broker confirmed it. A poller thread here reads the
latest checkpoint every ~5 ms through its own read-only store, as the API would, and notes
when each new tree size became visible.

    lag(event) = (first moment a checkpoint with tree_size > its seq was seen) - (published)

Baseline, same run: publish -> broker confirm of the same messages. The lag includes the
poll interval (up to 5 ms, 2.5 ms on average). Times are time.monotonic(), which on Linux is
CLOCK_MONOTONIC and so comparable between the two processes.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import logging
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path

from bench._fill import fill, record
from bench._measure import Measure, figure
from bench._vhost import vhost
from services.audit.__main__ import BATCH
from services.audit.checkpoint import Signer
from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore, Store
from shared import logging as plogging
from shared.bus import PikaBus, default_topology
from shared.bus.topology import AUDIT, Q_AUDIT

TARGET_S = 1.0
POLL_S = 0.005
DRAIN_TIMEOUT_S = 120.0
QUICK = ["5"]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# --- the publisher (child process) ----------------------------------------------------------


def publish(url: str, rate: float, n: int, out: Connection) -> None:
    """Publish n records at `rate`/s; send back [(event_id, published, confirmed | None)]."""
    plogging.configure("bench-publisher", "json", level=logging.WARNING)
    procedure = str(uuid.uuid4())
    records = [record(i, procedure) for i in range(n)]
    bodies = [(r.event_id, r.to_bytes()) for r in records]
    bus = PikaBus(url, default_topology(), name="bench-publisher")
    bus.start()
    assert bus.wait_ready(20), "publisher: broker not ready"
    published = [0.0] * n
    confirmed: list[float | None] = [None] * n

    def on_confirm(i: int) -> Callable[[object], None]:
        def done(future: object) -> None:
            confirmed[i] = time.monotonic()

        return done

    futures = []
    start = time.monotonic() + 0.1
    for i, (event_id, body) in enumerate(bodies):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        published[i] = time.monotonic()
        future = bus.publish(AUDIT, "bench", body, message_id=event_id)
        future.add_done_callback(on_confirm(i))
        futures.append(future)
    for future in futures:
        future.result(60)  # raises if the broker refused one
    bus.close()
    out.send([(bodies[i][0], published[i], confirmed[i]) for i in range(n)])
    out.close()


# --- the reader (poller thread) -------------------------------------------------------------


class Poller(threading.Thread):
    """Notes (monotonic time, tree_size) each time the latest checkpoint grows."""

    def __init__(self, reader: Store) -> None:
        super().__init__(name="bench-poller", daemon=True)
        self.reader = reader
        self.seen: list[tuple[float, int]] = []
        self.polls = 0
        self.stop = threading.Event()

    @property
    def size(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def run(self) -> None:
        while not self.stop.is_set():
            latest = self.reader.latest_checkpoint()
            now = time.monotonic()
            self.polls += 1
            if latest is not None and latest.tree_size > self.size:
                self.seen.append((now, latest.tree_size))
            self.stop.wait(POLL_S)


# --- the run --------------------------------------------------------------------------------


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("seconds", nargs="?", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--prefill", type=int, default=0, help="entries in the ledger first")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)
    n = int(args.seconds * args.rate)
    plogging.configure("bench", "json", level=logging.WARNING)  # as in production, minus INFO
    with ExitStack() as stack:
        url = stack.enter_context(vhost())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=".")))
        writer: Store
        open_reader: Callable[[], Store]
        if args.store == "sqlite":
            path = tmp / "ledger.sqlite3"
            writer = SqliteStore(path)

            def open_reader() -> Store:
                return SqliteStore(path, readonly=True)
        else:
            from services.audit.store import PostgresStore
            from tests.integration.pg import fresh_database

            db = stack.enter_context(fresh_database())
            writer = PostgresStore(db.url)

            def open_reader() -> Store:
                return PostgresStore(db.url, readonly=True)

        stack.callback(writer.close)
        ledger = Ledger(writer, Signer.load_or_create(tmp / "key.pem", "bench/audit"))
        if args.prefill:
            print(f"prefilling {args.prefill:,} entries through the ledger ...", flush=True)
            fill(ledger, args.prefill)
        base_size = ledger.frontier.size

        bus = PikaBus(url, default_topology(), name="bench-audit")
        bus.subscribe(Q_AUDIT, Appender(ledger).handle, prefetch=BATCH, max_batch=BATCH)
        bus.start()
        stack.callback(bus.close)
        assert bus.wait_ready(20), "consumer: broker not ready"

        reader = open_reader()
        stack.callback(reader.close)
        poller = Poller(reader)
        poller.start()

        print(f"publishing {n:,} records at {args.rate:,.0f}/s for {args.seconds:g} s ...")
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=publish, args=(url, args.rate, n, send), name="publisher")
        child.start()
        send.close()
        sent: list[tuple[str, float, float | None]] = receive.recv()
        child.join(30)
        assert child.exitcode == 0, f"publisher exited with {child.exitcode}"

        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while poller.size < base_size + n and time.monotonic() < deadline:
            time.sleep(0.05)
        poller.stop.set()
        poller.join()
        if poller.size < base_size + n:
            raise SystemExit(f"only {poller.size - base_size:,} of {n:,} appended in time")

        seqs = []
        for event_id, _, _ in sent:
            entry = reader.by_event_id(event_id)
            assert entry is not None, f"{event_id} not in the ledger"
            seqs.append(entry.seq)
        batches = [c.tree_size for c in reader.checkpoints() if c.tree_size > base_size]

    times = [t for t, _ in poller.seen]
    sizes = [s for _, s in poller.seen]
    lags = [
        times[bisect.bisect_right(sizes, seq)] - pub
        for seq, (_, pub, _) in zip(seqs, sent, strict=True)
    ]
    confirms = [conf - pub for _, pub, conf in sent if conf is not None]
    span = sent[-1][1] - sent[0][1]
    sizes_of = [b - a for a, b in itertools.pairwise([base_size, *batches])]
    print(
        f"\n{args.store}: {n:,} events published in {span:.1f} s ({(n - 1) / span:,.0f}/s),"
        f" ledger {base_size:,} -> {base_size + n:,}; {len(batches):,} checkpoints,"
        f" {statistics.mean(sizes_of):.1f} entries each on average (max {max(sizes_of)});"
        f" {poller.polls:,} polls"
    )
    print(f"{'':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (
        ("publish -> broker confirm (base)", confirms),
        ("publish -> in a checkpoint (lag)", lags),
    ):
        ms = [v * 1000 for v in values]
        print(f"{name:<34} {pct(ms, 50):8.2f} {pct(ms, 95):8.2f} {pct(ms, 99):8.2f} {max(ms):8.2f}")
    p99 = pct(lags, 99)
    verdict = "PASS" if p99 <= TARGET_S else "FAIL"
    print(
        f"checkpoint lag p99 {p99 * 1000:.1f} ms = x{p99 / pct(confirms, 99):.1f} the confirm p99;"
        f" {verdict} (target <= {TARGET_S * 1000:.0f} ms at {args.rate:,.0f} events/s)"
    )
    baseline = f"confirm p99 {figure(pct(confirms, 99) * 1000, 'ms')}"
    name = f"lag p99, {args.rate:,.0f}/s for {args.seconds:g} s, {args.store}"
    return [
        Measure(f"{name} / confirm p99", p99 / pct(confirms, 99), "x", baseline),
        Measure(name, p99 * 1000, "ms", baseline, TARGET_S * 1000, at_most=True),
    ]


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
