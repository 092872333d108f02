"""A 10,000-entry export in every format, against CSV (the plainest) in the same run.

    .venv/bin/python -m bench.export_speed [entries]

One procedure holds all the entries so the PDF (a procedure's timeline) covers them too.
Times include reading from the store, as the HTTP export does. Target: every format of
10,000 entries within 5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench._fill import fill
from bench._measure import Measure, figure
from services.audit import export
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import Query, SqliteStore

TARGET_S = 5.0
QUICK: list[str] = []  # 10,000 entries take seconds: the quick form is the full one


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("entries", nargs="?", type=int, default=10_000)
    n = parser.parse_args(argv).entries
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
        verdict = "ok" if seconds <= TARGET_S else f"OVER {TARGET_S:g} s"
        print(
            f"{fmt:<7} {n} entries: {seconds:6.2f} s  {size / 1e6:7.1f} MB  x{seconds / base:5.1f}"
            f" of csv  {verdict}"
        )
    baseline = f"csv {figure(base, 's')}"
    return [
        Measure(f"{fmt}, {n:,} entries", seconds, "s", baseline, TARGET_S, at_most=True)
        for fmt, (seconds, _size) in times.items()
        if fmt != "csv"
    ]


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
