"""The FHIR and PDF exports: what an inspector is handed, parsed and read back."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance

from services.audit import timeline
from services.audit.checkpoint import Signer
from services.audit.export_fhir import (
    CHECKPOINT_SYSTEM,
    EVENT_TYPE_SYSTEM,
    EXPORT_PART_SYSTEM,
    SIGNATURE_VALID_URL,
    fhir_bundle,
    parse_bundle,
)
from services.audit.export_pdf import pdf_report
from services.audit.ledger import Ledger
from services.audit.store import Entry, Query, StoredCheckpoint
from shared.events import content_sha256, signed_content_sha256, utcnow
from shared.events.record import AuditRecord, rejected
from tests.events import PROCEDURE_ID, make_event

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
AUTHOR = "1.2.840.10065.1.12.1.1"
REVIEW = "1.2.840.10065.1.12.1.13"
VALIDATION = "1.2.840.10065.1.12.1.6"


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@dataclass
class Story:
    entries: list[Entry]
    checkpoint: StoredCheckpoint
    key: str
    ids: dict[str, str]  # role in the story -> event_id


def _entries(ledger: Ledger) -> list[Entry]:
    out: list[Entry] = []
    after = -1
    while True:
        page = ledger.store.entries(Query({}, None, None, after, 5000))
        out += page
        if len(page) < 5000:
            return out
        after = page[-1].seq


@pytest.fixture
def story(ledger: Ledger, record: Callable[..., AuditRecord], signer: Signer) -> Story:
    """A procedure with a late entry, a signature voided by a correction, a fresh signature
    and a refused event, appended in two batches."""
    nurse = {"user": "rn-lee", "role": "nurse"}
    doctor = {"user": "dr-khan", "role": "physician"}
    opened = record("procedure.opened", occurred_at=at(0), recorded_at=at(0), entered_by=nurse)
    dose = record(
        "sedation.drug_administered", occurred_at=at(5), recorded_at=at(6), entered_by=nurse
    )
    late = record("sedation.vitals_recorded", occurred_at=at(2), recorded_at=at(40), late=True)
    binding = signed_content_sha256({dose.event_id: content_sha256(dose.event)})
    reviewed = record(
        "record.signed",
        occurred_at=at(10),
        recorded_at=at(10),
        actor={"id": "dr-khan", "role": "physician"},
        entered_by=doctor,
        payload={
            "event_ids": [dose.event_id],
            "meaning": "reviewed",
            "signer_id": "dr-khan",
            "signed_sha256": binding,
        },
    )
    fix = record(
        "record.corrected",
        occurred_at=at(30),
        recorded_at=at(31),
        entered_by=nurse,
        payload={
            "supersedes": dose.event_id,
            "reason": "2 mg was charted; 1 mg was given",
            "changes": {"payload.dose": {"old": 2, "new": 1}},
        },
    )
    approved = record(
        "record.signed",
        occurred_at=at(45),
        recorded_at=at(45),
        actor={"id": "dr-khan", "role": "physician"},
        payload={"event_ids": [opened.event_id], "meaning": "approved", "signer_id": "dr-khan"},
    )
    refused = rejected(
        make_event("sedation.depth_scored", payload={"scale": "RASS"}, occurred_at=at(50)),
        "invalid event: payload.score: field required",
        "harvest",
        utcnow(),
    )
    ledger.append([opened, dose, late, reviewed])
    ledger.append([fix, approved, refused])
    checkpoint = ledger.store.latest_checkpoint()
    assert checkpoint is not None
    ids = {
        "opened": opened.event_id,
        "dose": dose.event_id,
        "late": late.event_id,
        "reviewed": reviewed.event_id,
        "fix": fix.event_id,
        "approved": approved.event_id,
        "refused": refused.event_id,
    }
    return Story(_entries(ledger), checkpoint, signer.verifier.vkey(), ids)


def _resources(bundle: Bundle, kind: type[Any]) -> list[tuple[str, Any]]:
    return [(e.fullUrl, e.resource) for e in bundle.entry or [] if isinstance(e.resource, kind)]


def _details(event: AuditEvent) -> dict[str, Any]:
    (own,) = [e for e in event.entity or [] if e.name == "ledger entry"]
    return {
        d.type: d.valueString if d.valueString is not None else d.valueBase64Binary
        for d in own.detail or []
    }


# --- FHIR --------------------------------------------------------------------------------------


def test_the_fhir_bundle_parses_back_with_one_audit_event_per_entry(story: Story) -> None:
    data = fhir_bundle(story.entries, story.checkpoint, story.key)
    bundle = parse_bundle(data)

    assert isinstance(bundle, Bundle)
    assert bundle.type == "collection"
    assert orjson.loads(data)["resourceType"] == "Bundle"
    events = _resources(bundle, AuditEvent)
    assert [url for url, _ in events] == [
        f"urn:uuid:{orjson.loads(e.leaf)['event']['event_id']}" for e in story.entries
    ]
    for entry, (_, event) in zip(story.entries, events, strict=True):
        content = entry.content()
        envelope = content["event"]
        assert event.type.system == EVENT_TYPE_SYSTEM
        assert event.subtype[0].code == envelope["type"]
        assert event.type.code == envelope["type"].split(".")[0]
        assert event.outcome == ("0" if content["disposition"] == "accepted" else "4")
        details = _details(event)
        assert details["seq"] == str(entry.seq)
        assert details["disposition"] == content["disposition"]
        assert details["leaf_hash"] == entry.leaf_hash
        assert hashlib.sha256(b"\x00" + details["leaf"]).digest() == entry.leaf_hash
        assert orjson.loads(details["payload"]) == envelope["payload"]
        assert event.agent[0].who.identifier.value == envelope["actor"]["id"]
        assert event.agent[0].role[0].text == envelope["actor"]["role"]
        assert event.source.observer.identifier.value == envelope["source"]["id"]
        (procedure,) = [e for e in event.entity if e.name == "procedure"]
        assert procedure.what.identifier.value == PROCEDURE_ID
        if "recorded_at" in envelope:
            assert event.recorded == datetime.fromisoformat(envelope["recorded_at"])


def test_the_bundle_reads_exactly_as_the_librarys_own_serialiser_writes_it(story: Story) -> None:
    data = fhir_bundle(story.entries, story.checkpoint, story.key)
    assert orjson.loads(data) == orjson.loads(parse_bundle(data).model_dump_json())


def test_fhir_outcomes_corrections_and_who_entered_it(story: Story) -> None:
    bundle = parse_bundle(fhir_bundle(story.entries, story.checkpoint, story.key))
    events = {url.removeprefix("urn:uuid:"): e for url, e in _resources(bundle, AuditEvent)}

    refused = events[story.ids["refused"]]
    assert (refused.outcome, refused.outcomeDesc) == (
        "4",
        "invalid event: payload.score: field required",
    )
    dose = events[story.ids["dose"]]
    assert dose.outcome == "0"
    assert [a.who.identifier.value for a in dose.agent] == ["rn-lee", "rn-lee"]
    assert dose.agent[1].type.coding[0].code == "ENT"
    assert dose.agent[1].requestor is True
    assert dose.agent[0].requestor is False
    fix = events[story.ids["fix"]]
    assert fix.action == "U"
    (superseded,) = [e for e in fix.entity if e.name == "superseded event"]
    assert superseded.what.reference == f"urn:uuid:{story.ids['dose']}"
    assert _details(events[story.ids["late"]])["late"] == "true"


def test_one_provenance_per_signature_targets_the_signed_events(story: Story) -> None:
    bundle = parse_bundle(fhir_bundle(story.entries, story.checkpoint, story.key))
    provenances = [p for _, p in _resources(bundle, Provenance)]
    by_id = {orjson.loads(e.leaf)["event"]["event_id"]: e for e in story.entries}

    assert len(provenances) == 2
    reviewed, approved = provenances
    assert [t.reference for t in reviewed.target] == [f"urn:uuid:{story.ids['dose']}"]
    assert [t.reference for t in approved.target] == [f"urn:uuid:{story.ids['opened']}"]
    assert reviewed.signature[0].type[0].code == REVIEW
    assert approved.signature[0].type[0].code == VALIDATION
    for provenance, role in ((reviewed, "reviewed"), (approved, "approved")):
        signature = provenance.signature[0]
        signing = by_id[story.ids[role]]
        assert signature.data == signing.leaf
        assert signature.who.identifier.value == "dr-khan"
        assert provenance.agent[0].who.identifier.value == "dr-khan"
        assert provenance.agent[0].role[0].text == "physician"
        assert provenance.recorded == signature.when
    valid = {
        p.signature[0].type[0].code: next(
            x.valueBoolean for x in p.extension if x.url == SIGNATURE_VALID_URL
        )
        for p in provenances
    }
    assert valid == {REVIEW: False, VALIDATION: True}  # the correction voided the review


def test_the_bundle_carries_the_checkpoint_and_the_verifier_key(story: Story) -> None:
    bundle = parse_bundle(fhir_bundle(story.entries, story.checkpoint, story.key))
    root = base64.b64encode(story.checkpoint.root).decode()

    assert bundle.identifier.system == CHECKPOINT_SYSTEM
    assert bundle.identifier.value == f"{story.checkpoint.tree_size}:{root}"
    assert bundle.timestamp == datetime.fromisoformat(story.checkpoint.created_at)
    parts = {
        b.meta.tag[0].code: b
        for _, b in _resources(bundle, Binary)
        if b.meta.tag[0].system == EXPORT_PART_SYSTEM
    }
    assert parts["checkpoint"].contentType == "text/plain"
    assert parts["checkpoint"].data.decode() == story.checkpoint.note
    assert parts["verifier-key"].data.decode() == story.key
    assert f"\n{story.checkpoint.tree_size}\n{root}\n" in story.checkpoint.note


def test_the_same_ledger_and_checkpoint_export_to_the_same_bytes(story: Story) -> None:
    first = fhir_bundle(story.entries, story.checkpoint, story.key)
    assert fhir_bundle(story.entries, story.checkpoint, story.key) == first


# --- PDF ---------------------------------------------------------------------------------------


def _poppler() -> None:
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        pytest.fail("pdftoppm/pdftotext missing: install poppler-utils (./dev test does)")


def _read(pdf: bytes, tmp_path: Path, pages: tuple[int, int] | None = None) -> str:
    """Render to PNG (every page, or first..last) and extract the text, as an inspector would."""
    _poppler()
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    span = ["-f", str(pages[0]), "-l", str(pages[1])] if pages else []
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", *span, str(path), str(tmp_path / "page")], check=True
    )
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert pngs
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    out = subprocess.run(
        ["pdftotext", "-layout", *span, str(path), "-"], check=True, capture_output=True
    )
    return out.stdout.decode()


def test_the_pdf_tells_the_timeline_and_prints_the_checkpoint(story: Story, tmp_path: Path) -> None:
    events = timeline.build(story.entries)
    pdf = pdf_report(PROCEDURE_ID, events, story.checkpoint, story.key)

    assert pdf.startswith(b"%PDF")
    text = _read(pdf, tmp_path)
    assert f"Procedure {PROCEDURE_ID}" in text
    for event in events:
        assert event["type"] in text
    assert "Checkpoint" in text
    assert f"tree size {story.checkpoint.tree_size}" in text
    assert base64.b64encode(story.checkpoint.root).decode() in text
    for line in story.checkpoint.note.splitlines():
        assert line in text
    assert story.key in text
    assert "proctrail verify --checkpoint" in text
    assert "VOID" in text  # the review, corrected after it was signed
    assert "VALID" in text  # the approval
    assert "LATE ENTRY" in text
    assert "(was: 2)" in text
    assert "2 mg was charted; 1 mg was given" in text
    assert "REJECTED" in text
    assert "page 1 of" in text


def test_long_payloads_wrap_and_paginate(
    ledger: Ledger, record: Callable[..., AuditRecord], signer: Signer, tmp_path: Path
) -> None:
    words = " ".join(f"word{i}" for i in range(3000))
    unbroken = "x" * 5000
    allergies = [f"allergen number {i} with a long descriptive name" for i in range(150)]
    assessed = record("sedation.assessed", occurred_at=at(0))
    assessed.event["payload"]["allergies"] = allergies
    ledger.append(
        [
            assessed,
            rejected(  # what a client sent is kept as sent, however large
                make_event(
                    "recovery.discharged",
                    payload={
                        "escort": words,
                        "condition": unbroken,
                        "note": "PADSS ≥ 9 → home, 2 µg\n漢字\tend",
                    },
                    occurred_at=at(1),
                ),
                "invalid event: payload.escort: String should have at most 500 characters",
                "harvest",
                utcnow(),
            ),
            record("sedation.depth_scored", occurred_at=at(2)),
        ]
    )
    checkpoint = ledger.store.latest_checkpoint()
    assert checkpoint is not None
    events = timeline.build(_entries(ledger))
    pdf = pdf_report(PROCEDURE_ID, events, checkpoint, signer.verifier.vkey())

    text = _read(pdf, tmp_path)
    assert "word2999" not in text  # cut at MAX_VALUE characters, with a note
    assert "more characters in the full export" in text
    assert "sedation.depth_scored" in text
    assert "PADSS ≥ 9 ? home, 2 µg" in text  # what the font lacks prints as ?
    assert "page 2 of" in text
