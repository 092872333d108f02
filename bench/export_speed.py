"""A 10,000-entry export in every format, against CSV (the plainest) in the same run.

    .venv/bin/python -m bench.export_speed [entries]

One procedure holds all the entries so the PDF (a procedure's timeline) covers them too.
Times include reading from the store, as the HTTP export does.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench._fill import fill
from services.audit import export
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import Query, SqliteStore


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        signer = Signer.load_or_create(Path(tmp) / "key.pem", "bench/audit")
        store = SqliteStore(Path(tmp) / "ledger.sqlite3")
        (procedure,) = fill(Ledger(store, signer), n, per_procedure=n)
        query = Query({"procedure_id": procedure}, limit=export.EXPORT_MAX)
        times = {}
        for fmt in export.FORMATS:
            start = time.perf_counter()
            c = export.cut(store, query, signer.verifier.vkey())
            assert c is not None
            size = sum(len(chunk) for chunk in export.render(fmt, c, store, procedure))
            times[fmt] = (time.perf_counter() - start, size)
        store.close()
    base = times["csv"][0]
    for fmt, (seconds, size) in times.items():
        verdict = "ok" if seconds <= 5 else "OVER 5 s"
        print(
            f"{fmt:<7} {n} entries: {seconds:6.2f} s  {size / 1e6:7.1f} MB  x{seconds / base:5.1f}"
            f" of csv  {verdict}"
        )


if __name__ == "__main__":
    main()
