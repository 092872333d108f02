"""The `proctrail` command line (see the contract for its public shape)."""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import sys
from pathlib import Path

import orjson

from proctrail import backup_cmd, export_cmd, supervisor
from services.audit.checkpoint import KEY_FILE, Keyring, Signer, load_keyring, rotate
from services.audit.objects import check_objects
from services.audit.store import open_store
from services.audit.verify import verify
from services.harvest.rules import RULES as HARVEST_RULES
from services.implant.lots import open_implant_store
from services.implant.rules import RULES as IMPLANT_RULES
from shared.auth import TokenStore
from shared.bus import default_topology
from shared.bus.definitions import GRANTS, VHOST, definitions
from shared.clinical.facts import LotTable
from shared.clinical.policy import Policy
from shared.clinical.rebuild import rebuild
from shared.clinical.store import open_store as open_clinical_store
from shared.config import Settings
from shared.environment import SettingsError
from shared.events import ROLES, utcnow


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


def _signer_set(args: argparse.Namespace) -> int:
    """Prompt twice on a terminal; read one line from stdin otherwise (for provisioning)."""
    if sys.stdin.isatty():
        password = getpass.getpass(f"signing password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            print("proctrail: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    data_dir = _data_dir(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = TokenStore(data_dir)
    try:
        store.set_signing_password(args.user, password)
    except ValueError as exc:
        print(f"proctrail: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"signing password set for {args.user}")
    return 0


def _verifier(args: argparse.Namespace, data_dir: Path) -> Keyring | None:
    """--key (a key, or a file of keys one a line, as /v1/audit/public-keys gives them), or
    the data dir's current and retired keys."""
    if args.key:
        text = Path(args.key).read_text() if Path(args.key).is_file() else args.key
        return Keyring.from_text(text)
    key_file = data_dir / "audit" / KEY_FILE
    if key_file.exists():
        current = Signer.load_or_create(key_file, Settings.from_env().log_origin).verifier
        return load_keyring(data_dir / "audit", current)
    return None


def _verify_objects(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = _data_dir(args.data_dir)
    database_url = args.database_url or settings.database_url
    store = open_store(data_dir, database_url, readonly=True)
    try:
        report = check_objects(store, data_dir / "imaging")
    finally:
        store.close()
    for stored_as in report.missing:
        print(f"missing: {stored_as}")
    for stored_as in report.altered:
        print(f"altered: {stored_as} (its SHA-256 is not the ledger's)")
    verdict = "intact" if report.intact else "NOT INTACT"
    print(f"DICOM objects {verdict}: {report.checked} checked against the ledger,"
          f" {len(report.missing)} missing, {len(report.altered)} altered")  # fmt: skip
    return 0 if report.intact else 1


def _rotate_key(args: argparse.Namespace) -> int:
    audit_dir = _data_dir(args.data_dir) / "audit"
    try:
        old, new = rotate(audit_dir, Settings.from_env().log_origin)
    except (OSError, ValueError) as exc:
        print(f"proctrail: {exc}", file=sys.stderr)
        return 2
    print(f"retired: {old.vkey()}\ncurrent: {new.vkey()}")
    print("start the audit service again: its next checkpoint is signed with the new key")
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    pct = 100 * done // max(total, 1)
    sys.stderr.write(
        f"\rverifying [{'#' * filled}{'.' * (width - filled)}] {pct:3d}% {done}/{total}"
    )
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _verify(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = _data_dir(args.data_dir)
    database_url = args.database_url or (None if args.data_dir else settings.database_url)
    if database_url is None and not (data_dir / "audit" / "ledger.sqlite3").exists():
        print(f"proctrail: no ledger under {data_dir}", file=sys.stderr)
        return 2
    try:
        verifier = _verifier(args, data_dir)
        outside = None
        if args.checkpoint:
            note = Path(args.checkpoint).read_text()
            if verifier is None:
                print("proctrail: --checkpoint needs a verifier key (--key)", file=sys.stderr)
                return 2
            outside = verifier.open(note)
    except (OSError, ValueError) as exc:
        print(f"proctrail: {exc}", file=sys.stderr)
        return 2
    store = open_store(data_dir, database_url, readonly=True)
    progress = _progress_bar if sys.stderr.isatty() else None
    try:
        report = verify(store, verifier, outside, progress, all_signatures=args.all_signatures)
    finally:
        store.close()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not report.intact:
        if report.first_bad_seq is None:
            print(f"LEDGER NOT INTACT\n{report.problem}")
        else:
            where = f"first bad sequence number: {report.first_bad_seq}"
            print(f"LEDGER NOT INTACT — {where}\n{report.problem}")
        return 1
    root = base64.b64encode(report.root).decode()
    print(
        f"ledger intact: {report.size} entries, root {root}; {report.checkpoints} stored"
        f" checkpoint roots compared; signatures verified: {report.signatures}"
    )
    if outside is not None:
        print(f"consistent with the given checkpoint (size {outside.size})")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    data_dir = _data_dir(args.data_dir)
    database_url = args.database_url or (None if args.data_dir else settings.database_url)
    opener = open_implant_store if args.service == "implant" else open_clinical_store
    target = opener(data_dir / args.service, args.service, database_url)
    try:
        if not target.empty():
            print(f"proctrail: {args.service}'s clinical state is not empty: stop the service"
                  " and move its state away first (the SQLite file, or the PostgreSQL"
                  " schema)", file=sys.stderr)  # fmt: skip
            return 2
        ledger = open_store(data_dir, database_url, readonly=True)
        try:
            records = (orjson.loads(leaf) for _, leaf, _ in ledger.scan(0))
            rules = HARVEST_RULES if args.service == "harvest" else IMPLANT_RULES
            policy = Policy.from_settings(settings)
            lots = target if isinstance(target, LotTable) else None
            done = rebuild(records, args.service, target, policy, utcnow(), rules, lots)
        finally:
            ledger.close()
    finally:
        target.close()
    print(f"{args.service}: {done.facts} facts of {done.procedures} procedures, {done.lots} lots,"
          f" {done.alerts} alerts already raised, rebuilt from the ledger")  # fmt: skip
    return 0


def _broker_definitions(args: argparse.Namespace) -> int:
    """The topology, the services' users and their permissions as RabbitMQ definitions."""
    passwords = {}
    if args.passwords_dir:
        for service in GRANTS:
            path = Path(args.passwords_dir) / f"amqp-{service}.password"
            try:
                passwords[service] = path.read_text().strip()
            except OSError as exc:
                print(f"proctrail: {exc}", file=sys.stderr)
                return 2
    topology = default_topology(args.delivery_limit)
    out = definitions(topology, args.vhost, passwords)
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
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

    signer = sub.add_parser("signer", help="e-signature credentials")
    signer_sub = signer.add_subparsers(dest="signer_command", required=True)
    setpw = signer_sub.add_parser("set", help="set the password a signer re-enters to sign")
    setpw.add_argument("--user", required=True)
    setpw.add_argument("--data-dir")

    check = sub.add_parser("verify", help="recompute the whole ledger offline")
    where = check.add_mutually_exclusive_group()
    where.add_argument("--data-dir", help="the SQLite ledger under this data dir")
    where.add_argument("--database-url", help="the PostgreSQL ledger")
    check.add_argument("--checkpoint", help="a checkpoint saved earlier (signed note)")
    check.add_argument(
        "--key", help="verifier key, or a file of them one a line; default: the data dir's"
    )
    check.add_argument(
        "--all-signatures",
        action="store_true",
        help="check every stored checkpoint's signature, not only the latest's",
    )

    objects = sub.add_parser(
        "verify-objects", help="check every stored DICOM object against the ledger's SHA-256"
    )
    objects.add_argument("--data-dir", help="where imaging/ (and a SQLite ledger) are")
    objects.add_argument("--database-url", help="the PostgreSQL ledger")

    rotation = sub.add_parser(
        "rotate-key", help="retire the checkpoint-signing key and make a new one (audit stopped)"
    )
    rotation.add_argument("--data-dir")

    again = sub.add_parser("rebuild", help="rebuild harvest's or implant's state from the ledger")
    again.add_argument("service", choices=("harvest", "implant"))
    place = again.add_mutually_exclusive_group()
    place.add_argument("--data-dir", help="the SQLite ledger and state under this data dir")
    place.add_argument("--database-url", help="the PostgreSQL ledger and state")

    broker = sub.add_parser(
        "broker-definitions",
        help="print RabbitMQ definitions: the topology, one user per service, least privilege",
    )
    broker.add_argument("--vhost", default=VHOST)
    broker.add_argument("--delivery-limit", type=int, default=Settings().delivery_limit)
    broker.add_argument(
        "--passwords-dir",
        help="read amqp-<service>.password files from here (else the users have no password)",
    )

    export_cmd.add_parser(sub)
    backup_cmd.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except SettingsError as exc:  # a PROCTRAIL_* variable wrong or unknown: one line, no traceback
        print(f"proctrail: {exc}", file=sys.stderr)
        return os.EX_CONFIG


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        return supervisor.up(args.data_dir)
    if args.command == "verify":
        return _verify(args)
    if args.command == "export":
        return export_cmd.run(args)
    if args.command == "signer":
        return _signer_set(args)
    if args.command == "rebuild":
        return _rebuild(args)
    if args.command == "broker-definitions":
        return _broker_definitions(args)
    if args.command == "rotate-key":
        return _rotate_key(args)
    if args.command == "verify-objects":
        return _verify_objects(args)
    if args.command == "backup":
        return backup_cmd.run(args, _data_dir(args.data_dir))
    return _token_create(args)


if __name__ == "__main__":
    sys.exit(main())
