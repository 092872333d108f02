"""`proctrail verify` speed against the floor: reading and hashing every leaf, nothing else.

.venv/bin/python -m bench.verify_speed [entries]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

from bench._fill import fill
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from services.audit.verify import verify


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
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


if __name__ == "__main__":
    main()
