"""The `proctrail` command line (see the contract for its public shape)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from proctrail import supervisor
from shared.auth import TokenStore
from shared.config import Settings
from shared.events import ROLES


def _data_dir(arg: str | None) -> Path:
    return Path(arg) if arg else Settings.from_env().data_dir


def _token_create(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = TokenStore(data_dir)
    try:
        token = store.create(args.role, args.user)
    except ValueError as exc:
        print(f"proctrail: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(token)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proctrail", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run every service, supervised; Ctrl-C stops all")
    up.add_argument("--data-dir", help="SQLite files, DICOM objects, keys (default ./var)")

    token = sub.add_parser("token", help="manage bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="issue a token and print it (shown once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--user", required=True)
    create.add_argument("--data-dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "up":
        return supervisor.up(args.data_dir)
    return _token_create(args)


if __name__ == "__main__":
    sys.exit(main())
