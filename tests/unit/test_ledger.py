"""The audit ledger: append-only, dense sequence numbers, once per event_id, RFC 9162 leaf hash."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import Query, SqliteStore
from shared.bus import Delivery, InMemoryBus, Settle
from shared.bus.topology import AUDIT, Q_AUDIT
from shared.events import utcnow
from shared.events.record import AuditRecord, rejected

NewEvent = Callable[..., dict[str, Any]]


def test_entries_are_numbered_densely_from_zero_across_batches(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    assert ledger.append([record(), record(), record()]) == [0, 1, 2]
    assert ledger.append([record()]) == [3]

    assert [e.seq for e in reader.entries(Query({}, None, None, -1, 100))] == [0, 1, 2, 3]


def test_an_event_id_already_in_the_ledger_is_not_appended_again(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    first, second = record(), record()

    assert ledger.append([first, first]) == [0, None]
    assert ledger.append([first, second]) == [None, 1]
    assert [
        orjson.loads(e.leaf)["event"]["event_id"]
        for e in reader.entries(Query({}, None, None, -1, 9))
    ] == [
        first.event_id,
        second.event_id,
    ]


def test_a_rejection_and_a_later_acceptance_of_one_event_id_keep_only_the_first(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    good = record()
    refusal = rejected(good.event, "invalid event: something", "harvest", utcnow())

    assert ledger.append([refusal, good]) == [0, None]
    (entry,) = reader.entries(Query({}, None, None, -1, 9))
    assert entry.to_json()["disposition"] == "rejected"


def test_each_leaf_hash_is_sha256_of_a_zero_byte_then_the_leaf(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    ledger.append([record(), record()])

    for entry in reader.entries(Query({}, None, None, -1, 9)):
        assert entry.leaf_hash == hashlib.sha256(b"\x00" + entry.leaf).digest()
        published = entry.to_json()
        assert base64.b64decode(published["leaf"]) == entry.leaf
        assert base64.b64decode(published["leaf_hash"]) == entry.leaf_hash


def test_the_leaf_holds_the_seq_the_stamp_and_the_event_exactly(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    appended = record()
    ledger.append([appended])

    (entry,) = reader.entries(Query({}, None, None, -1, 9))
    content = orjson.loads(entry.leaf)
    assert content["seq"] == 0
    assert content["disposition"] == "accepted"
    assert content["stamped_by"]["service"] == "harvest"
    assert content["event"] == appended.event
    assert entry.leaf == orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET disposition = 'rejected' WHERE seq = 0",
        "UPDATE entries SET leaf = x'00'",
        "DELETE FROM entries WHERE seq = 0",
        "DELETE FROM entries",
    ],
)
def test_the_ledger_file_refuses_to_edit_or_delete_an_entry(
    ledger: Ledger,
    ledger_path: Path,
    reader: SqliteStore,
    record: Callable[..., AuditRecord],
    statement: str,
) -> None:
    ledger.append([record()])
    (before,) = reader.entries(Query({}, None, None, -1, 9))
    conn = sqlite3.connect(ledger_path)

    with pytest.raises(sqlite3.IntegrityError, match="the ledger is append-only"):
        conn.execute(statement)
    conn.close()
    assert reader.entries(Query({}, None, None, -1, 9)) == [before]


def test_patient_filter_finds_every_event_of_that_patients_procedures(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    other_patient = {"phase": "implant", "patient": {"id": "MRN-0099"}, "room": "IR-1"}
    ledger.append(
        [
            record("procedure.scheduled", procedure_id=mine),
            record("procedure.scheduled", procedure_id=theirs, payload=other_patient),
            record("sedation.drug_administered", procedure_id=mine),
            record("sedation.drug_administered", procedure_id=theirs),
        ]
    )
    ledger.append([record("procedure.closed", procedure_id=mine)])

    found = reader.entries(Query({"patient_id": "MRN-0042"}, None, None, -1, 100))

    assert [e.seq for e in found] == [0, 2, 4]
    assert {e.to_json()["event"]["procedure_id"] for e in found} == {mine}


def test_a_lot_release_is_found_by_the_patient_it_names(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    ledger.append([record("product.lot_released"), record("sedation.drug_administered")])

    assert [
        e.seq for e in reader.entries(Query({"patient_id": "MRN-0042"}, None, None, -1, 9))
    ] == [0]


def test_filters_by_procedure_type_and_actor_combine(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    proc = str(uuid.uuid4())
    ledger.append(
        [
            record("sedation.drug_administered", procedure_id=proc),
            record("sedation.depth_scored", procedure_id=proc),
            record(
                "sedation.drug_administered",
                procedure_id=proc,
                actor={"id": "dr-khan", "role": "physician"},
            ),
            record("sedation.drug_administered"),
        ]
    )

    def seqs(**filters: str) -> list[int]:
        return [e.seq for e in reader.entries(Query(filters, None, None, -1, 100))]

    assert seqs(procedure_id=proc) == [0, 1, 2]
    assert seqs(procedure_id=proc, type="sedation.drug_administered") == [0, 2]
    assert seqs(procedure_id=proc, actor_id="dr-khan") == [2]


def audit_delivery(body: bytes, message_id: str = "m") -> Delivery:
    return Delivery(body, "sedation.drug_administered", message_id)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"disposition": "accepted"}',
        b'{"disposition": "accepted", "stamped_by": {"service": "harvest",'
        b' "at": "2025-03-04T10:00:00+00:00"}, "event": {"event_id": "not-a-uuid"}}',
    ],
)
def test_an_unreadable_audit_record_is_sent_to_the_dead_letter_queue(
    ledger: Ledger, reader: SqliteStore, body: bytes
) -> None:
    assert Appender(ledger).handle([audit_delivery(body)]) == [Settle.DEAD]
    assert reader.entries(Query({}, None, None, -1, 9)) == []


def test_an_unreadable_record_does_not_hold_back_the_good_ones_of_its_batch(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    good = record()
    batch = [audit_delivery(b"{}", "bad"), audit_delivery(good.to_bytes(), good.event_id)]

    assert Appender(ledger).handle(batch) == [Settle.DEAD, Settle.ACK]
    assert [
        e.to_json()["event"]["event_id"] for e in reader.entries(Query({}, None, None, -1, 9))
    ] == [good.event_id]


def test_a_rejected_record_that_gives_no_reason_is_dead_lettered_alone(
    ledger: Ledger, reader: SqliteStore, record: Callable[..., AuditRecord]
) -> None:
    good = record()
    no_reason = orjson.dumps(
        {
            "disposition": "rejected",
            "stamped_by": {"service": "harvest", "at": "2025-03-04T10:00:00+00:00"},
            "event": {"event_id": str(uuid.uuid4())},
        }
    )
    batch = [audit_delivery(no_reason, "bad"), audit_delivery(good.to_bytes(), good.event_id)]

    assert Appender(ledger).handle(batch) == [Settle.DEAD, Settle.ACK]
    assert [e.seq for e in reader.entries(Query({}, None, None, -1, 9))] == [0]


def test_records_arriving_on_q_audit_are_appended_in_order_and_acked(
    bus: InMemoryBus,
    appender: Appender,
    reader: SqliteStore,
    record: Callable[..., AuditRecord],
) -> None:
    records = [record(), record(), record()]
    for r in records:
        bus.publish(AUDIT, "x", r.to_bytes(), message_id=r.event_id).result(0)
    bus.publish(AUDIT, "x", records[0].to_bytes(), message_id=records[0].event_id).result(0)

    bus.drain()

    assert bus.depth(Q_AUDIT) == 0
    assert bus.depth("q.audit.dead") == 0
    entries = reader.entries(Query({}, None, None, -1, 9))
    assert [(e.seq, e.to_json()["event"]["event_id"]) for e in entries] == [
        (i, r.event_id) for i, r in enumerate(records)
    ]
