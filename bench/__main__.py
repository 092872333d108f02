"""Every benchmark in bench/, one table: `python -m bench [--quick] [NAME ...]` (`./dev bench`).

A benchmark is a module of this folder whose name does not start with `_`; it has
`run(argv) -> list[Measure]` (argv as on its own command line) and `QUICK`, the argv of its
quick form. Each runs in a process of its own, one after the other, and prints its detail as
when run alone; then comes one table of every measure: value, the baseline measured in the same
run, target and verdict. The exit status is 1 when a target was missed or a benchmark did not
finish, 2 for a name that is not a benchmark. `--json FILE` also writes the measures there.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

import orjson

from bench._measure import Measure, table
from bench._process import run_one

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def rows_of(name: str, measures: list[Measure], error: str | None) -> list[tuple[str, ...]]:
    if error is not None:
        return [(f"{name}: did not finish ({error})", "-", "-", "-", "error")]
    return [
        (f"{name}: {m.name}", m.value_text(), m.baseline, m.target_text(), m.verdict)
        for m in measures
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick form")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the measures here too")
    args = parser.parse_args(argv)
    known = benchmarks()
    if args.list:
        for name in known:
            quick = importlib.import_module(f"bench.{name}").QUICK
            print(f"{name:<16} quick form: python -m bench.{name} {' '.join(quick)}".rstrip())
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"not a benchmark: {', '.join(unknown)} (there are: {', '.join(known)})")
        return 2
    chosen = [n for n in known if n in args.names] if args.names else known
    rows: list[tuple[str, ...]] = []
    kept: list[dict[str, object]] = []
    failed = 0
    start = time.monotonic()
    for name in chosen:
        load = os.getloadavg()[0]
        form = " (quick)" if args.quick else ""
        print(f"\n=== {name}{form}, load average {load:.1f}", flush=True)
        measures, error, seconds = run_one(name, args.quick)
        print(f"=== {name}: {seconds:.0f} s", flush=True)
        rows += rows_of(name, measures, error)
        kept += [{"bench": name, **dataclasses.asdict(m), "verdict": m.verdict} for m in measures]
        if error is not None:
            kept.append({"bench": name, "error": error, "verdict": "error"})
        failed += error is not None or any(m.met is False for m in measures)
    total = time.monotonic() - start
    verdicts = [r[4] for r in rows]
    print(f"\n{table(rows)}\n")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(kept, option=orjson.OPT_INDENT_2))
    print(
        f"{len(chosen)} benchmarks{' (quick)' if args.quick else ''} in {total / 60:.1f} min on"
        f" {os.cpu_count()} CPUs: {verdicts.count('met')} met, {verdicts.count('missed')} missed,"
        f" {verdicts.count('error')} did not finish, {verdicts.count('-')} without a target"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
