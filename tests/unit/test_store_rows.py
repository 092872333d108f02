"""The row a ledger entry becomes: every column of `entries`, in the table's order."""

from __future__ import annotations

import dataclasses

from services.audit.store import NewEntry


def test_a_new_entrys_columns_are_its_fields_in_order_without_its_lots() -> None:
    entry = NewEntry(
        seq=7,
        event_id="e-7",
        leaf=b'{"seq":7}',
        leaf_hash=b"\x01" * 32,
        type="implant.injected",
        procedure_id="p-1",
        patient_id="MRN1",
        actor_id="dr-1",
        recorded_at="2026-01-01T00:00:00+00:00",
        disposition="accepted",
        lots=("LOT-1",),
    )

    names = [f.name for f in dataclasses.fields(NewEntry) if f.name != "lots"]
    assert entry.columns() == tuple(getattr(entry, name) for name in names)
    assert len(entry.columns()) == 10  # INSERT INTO entries VALUES (10 placeholders)
