"""`proctrail verify` on SQLite: an untouched ledger verifies; every tampering names its entry.

The tampering is done as the owner of the database file would: triggers dropped, rows edited.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from proctrail.cli import main
from services.audit.checkpoint import KEY_FILE, Signer
from services.audit.ledger import Ledger
from services.audit.merkle import root
from services.audit.store_sqlite import SqliteStore
from shared.config import Settings
from shared.events.record import AuditRecord

SIZE = 20


@pytest.fixture
def filled(settings: Settings, record: Callable[..., AuditRecord], tmp_path: Path) -> Path:
    """A ledger of 20 entries appended in batches of 3, and the checkpoint an officer kept."""
    signer = Signer.load_or_create(settings.service_dir("audit") / KEY_FILE, settings.log_origin)
    store = SqliteStore(settings.data_dir / "audit" / "ledger.sqlite3")
    ledger = Ledger(store, signer)
    for start in range(0, SIZE, 3):
        ledger.append([record() for _ in range(min(3, SIZE - start))])
    latest = store.latest_checkpoint()
    assert latest is not None
    assert latest.tree_size == SIZE
    saved = tmp_path / "kept-checkpoint.txt"
    saved.write_text(latest.note)
    store.close()
    return saved


def run_verify(
    settings: Settings, saved: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = main(["verify", "--data-dir", str(settings.data_dir), "--checkpoint", str(saved)])
    return code, capsys.readouterr().out


def tamper(settings: Settings, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(settings.data_dir / "audit" / "ledger.sqlite3")
    for table in ("entries", "checkpoints"):
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    for sql, args in statements:
        conn.execute(sql, args)
    conn.commit()
    conn.close()


def row(settings: Settings, seq: int) -> tuple[bytes, bytes, str]:
    conn = sqlite3.connect(settings.data_dir / "audit" / "ledger.sqlite3")
    leaf, digest, event_id = conn.execute(
        "SELECT leaf, leaf_hash, event_id FROM entries WHERE seq = ?", (seq,)
    ).fetchone()
    conn.close()
    return leaf, digest, event_id


def test_an_untouched_ledger_verifies_against_the_kept_checkpoint(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_verify(settings, filled, capsys)
    assert code == 0
    assert f"ledger intact: {SIZE} entries" in out
    assert "7 signed checkpoints match" in out


def test_one_changed_byte_in_one_leaf_is_named(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf, _, _ = row(settings, 5)
    forged = leaf.replace(b'"dose":2.0', b'"dose":9.0')
    assert forged != leaf
    assert len(forged) == len(leaf)
    tamper(settings, ("UPDATE entries SET leaf = ? WHERE seq = 5", (forged,)))
    code, out = run_verify(settings, filled, capsys)
    assert code == 1
    assert "first bad sequence number: 5" in out


def test_a_changed_leaf_with_its_hash_recomputed_is_still_named(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf, _, _ = row(settings, 5)
    forged = leaf.replace(b'"dose":2.0', b'"dose":9.0')
    digest = hashlib.sha256(b"\x00" + forged).digest()
    tamper(settings, ("UPDATE entries SET leaf = ?, leaf_hash = ? WHERE seq = 5", (forged, digest)))
    code, out = run_verify(settings, filled, capsys)
    assert code == 1
    assert "first bad sequence number: 5" in out


def test_deleting_the_last_entry_is_named(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(
        settings,
        ("DELETE FROM entries WHERE seq = ?", (SIZE - 1,)),
        ("DELETE FROM checkpoints WHERE tree_size = ?", (SIZE,)),  # hide it from the store
    )
    code, out = run_verify(settings, filled, capsys)
    assert code == 1
    assert f"first bad sequence number: {SIZE - 1}" in out


def test_swapping_two_entries_is_named(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = row(settings, 3), row(settings, 7)
    tamper(
        settings,
        ("UPDATE entries SET event_id = 'x' WHERE seq = 3", ()),
        ("UPDATE entries SET leaf = ?, leaf_hash = ?, event_id = ? WHERE seq = 7", a),
        ("UPDATE entries SET leaf = ?, leaf_hash = ?, event_id = ? WHERE seq = 3", b),
    )
    code, out = run_verify(settings, filled, capsys)
    assert code == 1
    assert "first bad sequence number: 3" in out


def test_inserting_one_entry_in_the_middle_is_named(
    settings: Settings, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(settings.data_dir / "audit" / "ledger.sqlite3", readonly=True)
    prev_root = root(4, store.node)  # a careful forger chains the new leaf correctly
    store.close()
    template = orjson.loads(row(settings, 4)[0])
    forged = orjson.dumps(
        {**template, "seq": 4, "prev_root": base64.b64encode(prev_root).decode()},
        option=orjson.OPT_SORT_KEYS,
    ).replace(b'"dose":2.0', b'"dose":5.0')
    digest = hashlib.sha256(b"\x00" + forged).digest()
    tamper(
        settings,
        ("UPDATE entries SET seq = seq + 1000 WHERE seq >= 4", ()),
        ("UPDATE entries SET seq = seq - 999 WHERE seq >= 1000", ()),
        (
            "INSERT INTO entries (seq, event_id, leaf, leaf_hash, disposition)"
            " VALUES (4, 'forged', ?, ?, 'accepted')",
            (forged, digest),
        ),
    )
    code, out = run_verify(settings, filled, capsys)
    assert code == 1
    assert "first bad sequence number: 4" in out
