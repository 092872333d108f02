"""`proctrail verify` on both stores: the untouched ledger verifies; every tampering by the
database's superuser is caught against a checkpoint the officer kept, naming the first bad
sequence number."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from proctrail.cli import main
from services.audit.checkpoint import KEY_FILE, Signer, parse_note
from services.audit.ledger import Ledger
from services.audit.merkle import root
from services.audit.store import open_store
from shared.events import parse_event
from shared.events.record import accepted, decode_record
from tests.integration.pg import FreshDatabase, fresh_database

pytestmark = pytest.mark.integration

SIZE = 20
PROCEDURE = str(uuid.uuid4())


def dose_record(dose: float) -> bytes:
    now = datetime.now(UTC).isoformat()
    event = parse_event(
        {
            "event_id": str(uuid.uuid4()),
            "type": "sedation.drug_administered",
            "schema": 1,
            "procedure_id": PROCEDURE,
            "occurred_at": now,
            "recorded_at": now,
            "actor": {"id": "nurse.ana", "role": "nurse"},
            "source": {"kind": "tablet", "id": "t7"},
            "payload": {
                "drug": "midazolam",
                "dose": dose,
                "unit": "mg",
                "route": "IV",
                "given_by": "dr.cole",
            },
        }
    )
    return accepted(event, "harvest", datetime.now(UTC)).to_bytes()


@dataclass
class Kept:
    """A filled ledger, the verifier key and the checkpoint an officer saved."""

    data_dir: Path
    pg: FreshDatabase | None
    vkey: str
    checkpoint: Path

    def verify(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        where = ["--database-url", self.pg.url] if self.pg else ["--data-dir", str(self.data_dir)]
        code = main(["verify", *where, "--checkpoint", str(self.checkpoint), "--key", self.vkey])
        return code, capsys.readouterr().out

    def tamper(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """As the database superuser: switch the guards off, then edit rows."""
        if self.pg is None:
            lite = sqlite3.connect(self.data_dir / "audit" / "ledger.sqlite3")
            for table in ("entries", "checkpoints"):
                lite.execute(f"DROP TRIGGER {table}_no_update")
                lite.execute(f"DROP TRIGGER {table}_no_delete")
            for sql, args in statements:
                lite.execute(sql, args)
            lite.commit()
            lite.close()
            return
        with self.pg.admin() as conn:
            conn.execute("SET search_path = audit")
            conn.execute("ALTER TABLE entries DISABLE TRIGGER ALL")
            conn.execute("ALTER TABLE checkpoints DISABLE TRIGGER ALL")
            for sql, args in statements:
                conn.execute(sql.replace("?", "%s"), args)

    def row(self, seq: int) -> tuple[bytes, bytes, str]:
        store = open_store(self.data_dir, self.pg.url if self.pg else None, readonly=True)
        try:
            _, leaf, digest = next(iter(store.scan(seq)))
        finally:
            store.close()
        return leaf, digest, orjson.loads(leaf)["event"]["event_id"]

    def checkpoint_note(self, size: int) -> str:
        store = open_store(self.data_dir, self.pg.url if self.pg else None, readonly=True)
        try:
            found = store.checkpoint(size)
        finally:
            store.close()
        assert found is not None
        return found.note

    def root_at(self, size: int) -> bytes:
        store = open_store(self.data_dir, self.pg.url if self.pg else None, readonly=True)
        try:
            return root(size, store.node)
        finally:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def kept(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kept]:
    def build(pg: FreshDatabase | None) -> Kept:
        data_dir = tmp_path / "var"
        signer = Signer.load_or_create(data_dir / "audit" / KEY_FILE, "proctrail/audit")
        store = open_store(data_dir, pg.url if pg else None)
        ledger = Ledger(store, signer)
        for start in range(0, SIZE, 3):
            count = min(3, SIZE - start)
            ledger.append([decode_record(dose_record(2.0)) for _ in range(count)])
        latest = store.latest_checkpoint()
        store.close()
        assert latest is not None
        assert latest.tree_size == SIZE
        saved = tmp_path / "kept-checkpoint.txt"
        saved.write_text(latest.note)
        return Kept(data_dir, pg, signer.verifier.vkey(), saved)

    if request.param == "sqlite":
        yield build(None)
    else:
        with fresh_database() as db:
            yield build(db)


def forged_leaf(leaf: bytes) -> bytes:
    forged = leaf.replace(b'"dose":2.0', b'"dose":9.0')
    assert forged != leaf
    return forged


def test_the_untouched_ledger_verifies(kept: Kept, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = kept.verify(capsys)
    assert code == 0, out
    assert f"ledger intact: {SIZE} entries" in out
    assert "2 stored checkpoint roots compared; signatures verified: 1" in out
    assert f"consistent with the given checkpoint (size {SIZE})" in out


def test_one_changed_byte_in_one_leaf_is_named(
    kept: Kept, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf, _, _ = kept.row(5)
    kept.tamper(("UPDATE entries SET leaf = ? WHERE seq = 5", (forged_leaf(leaf),)))
    code, out = kept.verify(capsys)
    assert code == 1
    assert "first bad sequence number: 5" in out


def test_a_changed_leaf_with_its_hash_recomputed_is_still_named(
    kept: Kept, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = forged_leaf(kept.row(5)[0])
    digest = hashlib.sha256(b"\x00" + forged).digest()
    kept.tamper(("UPDATE entries SET leaf = ?, leaf_hash = ? WHERE seq = 5", (forged, digest)))
    code, out = kept.verify(capsys)
    assert code == 1
    assert "first bad sequence number: 5" in out


def test_deleting_the_last_entry_is_named(kept: Kept, capsys: pytest.CaptureFixture[str]) -> None:
    kept.tamper(
        ("DELETE FROM entries WHERE seq = ?", (SIZE - 1,)),
        ("DELETE FROM checkpoints WHERE tree_size = ?", (SIZE,)),  # and hide it from the store
    )
    code, out = kept.verify(capsys)
    assert code == 1
    assert f"first bad sequence number: {SIZE - 1}" in out


def test_swapping_two_entries_is_named(kept: Kept, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = kept.row(3), kept.row(7)
    kept.tamper(
        ("UPDATE entries SET event_id = 'swap' WHERE seq = 3", ()),
        ("UPDATE entries SET leaf = ?, leaf_hash = ?, event_id = ? WHERE seq = 7", a),
        ("UPDATE entries SET leaf = ?, leaf_hash = ?, event_id = ? WHERE seq = 3", b),
    )
    code, out = kept.verify(capsys)
    assert code == 1
    assert "first bad sequence number: 3" in out


def test_inserting_one_entry_in_the_middle_is_named(
    kept: Kept, capsys: pytest.CaptureFixture[str]
) -> None:
    prev_root = base64.b64encode(kept.root_at(4)).decode()  # a careful forger chains it right
    template = orjson.loads(kept.row(4)[0])
    forged = orjson.dumps(
        {**template, "seq": 4, "prev_root": prev_root}, option=orjson.OPT_SORT_KEYS
    ).replace(b'"dose":2.0', b'"dose":5.0')
    digest = hashlib.sha256(b"\x00" + forged).digest()
    kept.tamper(
        ("UPDATE entries SET seq = seq + 1000 WHERE seq >= 4", ()),
        ("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000", ()),
        (
            "INSERT INTO entries (seq, event_id, leaf, leaf_hash, disposition)"
            " VALUES (4, 'forged', ?, ?, 'accepted')",
            (forged, digest),
        ),
    )
    code, out = kept.verify(capsys)
    assert code == 1
    assert "first bad sequence number: 4" in out


def test_every_signature_can_be_checked_and_a_forged_one_is_reported(
    kept: Kept, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--database-url", kept.pg.url] if kept.pg else ["--data-dir", str(kept.data_dir)]
    assert main(["verify", *where, "--key", kept.vkey, "--all-signatures"]) == 0
    assert "signatures verified: 7" in capsys.readouterr().out
    other = Signer.load_or_create(kept.data_dir / "intruder.pem", "proctrail/audit")
    size, forged_note = 6, other.sign(parse_note(kept.checkpoint_note(6)))
    kept.tamper(("UPDATE checkpoints SET note = ? WHERE tree_size = ?", (forged_note, size)))
    assert main(["verify", *where, "--key", kept.vkey, "--all-signatures"]) == 1
    assert "checkpoint signature" in capsys.readouterr().out


def test_after_a_key_rotation_every_old_checkpoint_still_verifies(
    kept: Kept, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    audit_dir = kept.data_dir / "audit"
    assert main(["rotate-key", "--data-dir", str(kept.data_dir)]) == 0
    retired, current = (line.split(": ")[1] for line in capsys.readouterr().out.splitlines()[:2])
    assert retired == kept.vkey != current
    assert not (audit_dir / "intruder.pem").exists()
    signer = Signer.load_or_create(audit_dir / KEY_FILE, "proctrail/audit")
    assert signer.verifier.vkey() == current
    store = open_store(kept.data_dir, kept.pg.url if kept.pg else None)
    Ledger(store, signer).append([decode_record(dose_record(2.0)) for _ in range(3)])
    store.close()
    where = ["--database-url", kept.pg.url] if kept.pg else ["--data-dir", str(kept.data_dir)]
    keys = tmp_path / "public-keys.txt"  # as GET /v1/audit/public-keys gives them
    keys.write_text(f"{current}\n{retired}\n")

    assert main(["verify", *where, "--key", str(keys), "--all-signatures"]) == 0
    assert "signatures verified: 8" in capsys.readouterr().out
    assert main(["verify", *where, "--key", str(keys), "--checkpoint", str(kept.checkpoint)]) == 0
    capsys.readouterr()
    assert main(["verify", *where, "--key", current, "--all-signatures"]) == 1  # new key only
    assert "signed by none of the log's keys" in capsys.readouterr().out
    if kept.pg is None:  # the data dir keeps the retired key: no --key needed
        assert main(["verify", *where, "--all-signatures"]) == 0
