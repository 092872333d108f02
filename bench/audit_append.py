"""Audit append throughput from a pre-filled queue vs raw pika consume at the same prefetch.

    .venv/bin/python -m bench.audit_append [events] [--rounds 3]

Both drain the same number of real audit records from q.audit on the same broker in one
script: the baseline acks each message and does nothing else; the audit path decodes,
validates, hashes, appends in group-commit batches with a signed checkpoint each, then acks.
The two alternate for `--rounds` rounds, and the ratio is the median of each round's ratio:
on a shared machine one pair of runs swings by a third, and a round's two runs lie close in
time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika

from bench._fill import record
from bench._measure import Measure, figure, median
from bench._vhost import vhost
from services.audit.checkpoint import Signer
from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from shared import logging as plogging
from shared.bus import PikaBus, default_topology
from shared.bus.topology import AUDIT, Q_AUDIT

PREFETCH = 300
PROCEDURE = str(uuid.uuid4())
TARGET_RATIO = 0.5
TARGET_RATE = 10_000.0
QUICK = ["20000"]


def prefill(url: str, n: int) -> None:
    bus = PikaBus(url, default_topology(), name="bench-fill")
    bus.start()
    assert bus.wait_ready(20)
    futures = [
        bus.publish(AUDIT, "x", record(i, PROCEDURE).to_bytes(), message_id=str(i))
        for i in range(n)
    ]
    for f in futures:
        f.result(120)
    bus.close()


def raw_consume(url: str, n: int) -> float:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    start = time.perf_counter()
    for seen, (method, _props, _body) in enumerate(ch.consume(Q_AUDIT), start=1):
        ch.basic_ack(method.delivery_tag)
        if seen == n:
            break
    elapsed = time.perf_counter() - start
    ch.cancel()
    conn.close()
    return n / elapsed


def audit_consume(url: str, n: int, tmp: Path) -> float:
    store = SqliteStore(tmp / "ledger.sqlite3")
    ledger = Ledger(store, Signer.load_or_create(tmp / "key.pem", "bench/audit"))
    bus = PikaBus(url, default_topology(), name="bench-audit")
    bus.subscribe(Q_AUDIT, Appender(ledger).handle, prefetch=PREFETCH, max_batch=PREFETCH)
    start = time.perf_counter()
    bus.start()
    while ledger.frontier.size < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    bus.close()
    store.close()
    return n / elapsed


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("events", nargs="?", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3, help="baseline and audit runs each")
    args = parser.parse_args(argv)
    n = args.events
    plogging.configure("bench", "json", level=logging.WARNING)  # as in production, minus INFO
    bases, rates = [], []
    with vhost() as url:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(dir=".") as tmp:
                prefill(url, n)
                bases.append(raw_consume(url, n))
                prefill(url, n)
                rates.append(audit_consume(url, n, Path(tmp)))
    ratio = median([r / b for r, b in zip(rates, bases, strict=True)])
    base, rate = median(bases), median(rates)
    print(f"raw pika consume, prefetch {PREFETCH}, ack each : {base:8.0f} msg/s  (baseline)")
    print(
        f"audit: decode + append + checkpoint + ack   : {rate:8.0f} events/s  x{ratio:.2f}"
        f"  (target >= {TARGET_RATIO} and >= {TARGET_RATE:.0f}/s)"
    )
    if args.rounds > 1:
        runs = " ".join(f"x{r / b:.2f}" for r, b in zip(rates, bases, strict=True))
        print(f"{args.rounds} rounds of {n} events, ratio each round: {runs}")
    baseline = f"raw consume {figure(base, 'msg/s')}"
    return [
        Measure(f"audit path / raw consume, {n:,} events", ratio, "x", baseline, TARGET_RATIO),
        Measure("audit path", rate, "events/s", baseline, TARGET_RATE),
    ]


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
