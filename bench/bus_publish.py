"""Publish-with-confirms throughput: PikaBus's window vs one blocking confirm per message.

    .venv/bin/python -m bench.bus_publish [messages]

Both runs go to the same quorum queue on the same broker in the same script; the ratio is
what to compare across machines (messaging.md: ~2.3 k/s blocking, 14-50 k/s windowed).
Targets, from those figures on a classic queue: window 256 >= x5, window 1024 >= x10.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import pika

from bench._measure import Measure, figure
from bench._vhost import vhost
from shared import logging as plogging
from shared.bus import PikaBus, default_topology
from shared.bus.topology import AUDIT, Q_AUDIT

TARGETS = {256: 5.0, 1024: 10.0}  # window -> ratio to one blocking confirm each
QUICK = ["2000"]
BODY = b'{"event_id":"00000000-0000-4000-8000-000000000000","type":"bench","payload":{}}' * 3


def blocking_baseline(url: str, n: int) -> float:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    start = time.perf_counter()
    for i in range(n):
        props.message_id = str(i)
        ch.basic_publish(AUDIT, "bench", BODY, properties=props, mandatory=True)
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def windowed(url: str, n: int, window: int) -> float:
    bus = PikaBus(url, default_topology(), name="bench", confirm_window=window)
    bus.start()
    assert bus.wait_ready(20)
    start = time.perf_counter()
    futures = [bus.publish(AUDIT, "bench", BODY, message_id=str(i)) for i in range(n)]
    for future in futures:
        future.result(120)
    elapsed = time.perf_counter() - start
    bus.close()
    return n / elapsed


def purge(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_purge(Q_AUDIT)
    conn.close()


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("messages", nargs="?", type=int, default=5000)
    n = parser.parse_args(argv).messages
    plogging.configure("bench", "json", level=logging.WARNING)
    out = []
    with vhost() as url:
        windowed(url, 10, 1024)  # declares the topology
        purge(url)
        base = blocking_baseline(url, n)
        purge(url)
        print(f"blocking, one confirm per message : {base:9.0f} msg/s  (baseline)")
        baseline = f"blocking {figure(base, 'msg/s')}"
        for window, target in TARGETS.items():
            rate = windowed(url, n, window)
            purge(url)
            print(f"PikaBus, window {window:<5}            : {rate:9.0f} msg/s  x{rate / base:.1f}")
            name = f"window {window} / blocking, {n:,} messages"
            out.append(Measure(name, rate / base, "x", baseline, target))
    return out


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
