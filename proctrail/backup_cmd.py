"""`proctrail backup DEST`: a consistent copy of a data dir while the services run.

SQLite files are copied with SQLite's online backup (a consistent snapshot even mid-write),
the ledger first; then every other file (DICOM objects, keys). Objects are only ever added, so
every object the copied ledger names is already on disk when the files are copied. The
ledger's latest checkpoint at backup time is saved as DEST/checkpoint.txt: after a restore,
`proctrail verify --checkpoint DEST/checkpoint.txt` proves the ledger is that one or a
continuation of it, and `proctrail verify-objects` that every object came back unchanged.

A PostgreSQL ledger and clinical state are backed up with pg_dump (docs/runbook.md); this
command then copies the rest of the data dir.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
from pathlib import Path

from services.audit.store import SqliteStore

LEDGER = Path("audit") / "ledger.sqlite3"
SKIP_DIRS = {"incoming", "metrics"}  # half-received objects; live metric files
SKIP_SUFFIXES = ("-wal", "-shm", ".tmp", ".load")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="copy the data dir consistently, with the services running")
    p.add_argument("dest", help="an empty or new directory")
    p.add_argument("--data-dir")


def run(args: argparse.Namespace, data_dir: Path) -> int:
    dest = Path(args.dest)
    if dest.exists() and any(dest.iterdir()):
        print(f"proctrail: {dest} is not empty", file=sys.stderr)
        return 2
    if not data_dir.is_dir():
        print(f"proctrail: no data dir at {data_dir}", file=sys.stderr)
        return 2
    databases = sorted(data_dir.rglob("*.sqlite3"), key=lambda p: p.relative_to(data_dir) != LEDGER)
    for db in databases:
        _copy_database(db, dest / db.relative_to(data_dir))
    files = 0
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir)
        if (not path.is_file() or path.suffix == ".sqlite3" or path.name.endswith(SKIP_SUFFIXES)
                or SKIP_DIRS & set(relative.parts[:-1])):  # fmt: skip
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        files += 1
    note = ""
    if (dest / LEDGER).exists():
        copy = SqliteStore(dest / LEDGER, readonly=True)
        try:
            latest = copy.latest_checkpoint()
        finally:
            copy.close()
        if latest is not None:
            note = latest.note
            (dest / "checkpoint.txt").write_text(note)
    _sync(dest)
    size = note.split("\n")[1] if note else "0"
    print(f"backed up {len(databases)} databases and {files} files to {dest};"
          f" the ledger holds {size} entries (checkpoint.txt)")  # fmt: skip
    return 0


def _copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def _sync(root: Path) -> None:
    """Everything copied is on disk before the command says so."""
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
