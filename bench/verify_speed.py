"""`proctrail verify` speed against the floor: reading and hashing every leaf, nothing else.

    .venv/bin/python -m bench.verify_speed [entries] [entries per checkpoint]

Target: >= 200,000 entries/s on a busy ledger (a checkpoint every 2,000 entries).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from bench._fill import fill
from bench._measure import Measure, figure
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from services.audit.verify import verify

TARGET_RATE = 200_000.0
QUICK = ["50000"]


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("entries", nargs="?", type=int, default=200_000)
    parser.add_argument("batch", nargs="?", type=int, default=2000, help="entries a checkpoint")
    args = parser.parse_args(argv)
    n, batch = args.entries, args.batch
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        path = Path(tmp) / "ledger.sqlite3"
        signer = Signer.load_or_create(Path(tmp) / "key.pem", "bench/audit")
        store = SqliteStore(path)
        store._conn.execute("PRAGMA synchronous=OFF")  # a fast fill; verify reads as usual
        fill(Ledger(store, signer), n, batch=batch)
        store.close()

        reader = SqliteStore(path, readonly=True)
        start = time.perf_counter()
        for _seq, leaf, _digest in reader.scan():
            hashlib.sha256(b"\x00" + leaf).digest()
        floor = n / (time.perf_counter() - start)

        start = time.perf_counter()
        report = verify(reader, signer.verifier)
        rate = n / (time.perf_counter() - start)
        reader.close()
        assert report.intact, report.problem
        print(f"scan + leaf hash only (floor) : {floor:10.0f} entries/s  (baseline)")
        print(
            f"proctrail verify              : {rate:10.0f} entries/s  x{rate / floor:.2f}"
            f"  (target >= 200000)"
        )
    baseline = f"scan + hash {figure(floor, 'entries/s')}"
    name = f"verify, {n:,} entries, checkpoint per {batch:,}"
    return [
        Measure(f"verify / scan + hash, {n:,} entries", rate / floor, "x", baseline),
        Measure(name, rate, "entries/s", baseline, TARGET_RATE),
    ]


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
