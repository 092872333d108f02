"""`proctrail export`: the HTTP API's exports, written to a file, and audited the same way."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.audit import export
from services.audit.access import access_record
from services.audit.checkpoint import KEY_FILE, Signer
from services.audit.store import FILTERS, Query, open_store
from shared.bus import BusError, PikaBus, default_topology
from shared.bus.topology import AUDIT
from shared.config import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="export the ledger to a file (csv, ndjson, fhir, pdf)")
    p.add_argument("--format", required=True, choices=export.FORMATS)
    for name in FILTERS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name)
    p.add_argument("--since", help="RFC 3339 time with offset (recorded_at >= since)")
    p.add_argument("--until", help="RFC 3339 time with offset (recorded_at < until)")
    p.add_argument("--out", help="file to write (default: proctrail-<tree size>.<format>)")
    p.add_argument("--user", default=getpass.getuser(), help="who exports (recorded)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--data-dir")
    where.add_argument("--database-url")


def _utc(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"--{name} must carry a UTC offset")
    return moment.astimezone(UTC).isoformat()


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    database_url = args.database_url or (None if args.data_dir else settings.database_url)
    filters = {name: value for name in FILTERS if (value := getattr(args, name))}
    if args.format == "pdf" and "procedure_id" not in filters:
        print(
            "proctrail: a PDF tells one procedure's timeline: give --procedure-id", file=sys.stderr
        )
        return 2
    try:
        query = Query(filters, _utc(args.since, "since"), _utc(args.until, "until"), -1)
        signer = Signer.load_or_create(data_dir / "audit" / KEY_FILE, settings.log_origin)
    except (OSError, ValueError) as exc:
        print(f"proctrail: {exc}", file=sys.stderr)
        return 2
    store = open_store(data_dir, database_url, readonly=True)
    try:
        c = export.cut(store, query, signer.verifier.vkey())
        if c is None:
            print("proctrail: the ledger is empty: nothing to export", file=sys.stderr)
            return 1
        asked = {**filters, "format": args.format}
        asked.update({k: v for k in ("since", "until") if (v := getattr(args, k))})
        if not _record(settings, args.user, asked, len(c.entries), args.format):
            return 3
        out = Path(
            args.out or f"proctrail-{c.checkpoint.tree_size}.{export.EXTENSIONS[args.format]}"
        )
        with out.open("wb") as f:
            for chunk in export.render(args.format, c, store, filters.get("procedure_id")):
                f.write(chunk)
    finally:
        store.close()
    print(f"{out}: {len(c.entries)} entries, cut against checkpoint {c.header}")
    return 0


def _record(settings: Settings, user: str, filters: dict[str, str], rows: int, fmt: str) -> bool:
    """Append `audit.exported` through the broker, as the audit API does; refuse otherwise."""
    record = access_record(user, "admin", "audit.exported", filters, rows, fmt, source="cli")
    bus = PikaBus(settings.amqp_url, default_topology(settings.delivery_limit), name="cli-export")
    bus.start()
    try:
        if not bus.wait_ready(5):
            raise BusError("the broker is not reachable")
        future = bus.publish(
            AUDIT, record.event["type"], record.to_bytes(), message_id=record.event_id
        )
        future.result(settings.publish_timeout_s)
    except (BusError, TimeoutError) as exc:
        print(
            f"proctrail: export not recorded in the ledger, so not written: {exc}", file=sys.stderr
        )
        return False
    finally:
        bus.close()
    return True
