"""Exports cut against one signed checkpoint, carrying it, and themselves audited."""

from __future__ import annotations

import base64
import csv
from collections.abc import Callable

import httpx
import orjson
import pytest

from services.audit import merkle
from services.audit.checkpoint import Verifier
from services.audit.export_fhir import parse_bundle
from services.audit.ledger import Ledger
from shared.bus import InMemoryBus
from shared.bus.topology import Q_AUDIT
from shared.events.record import AuditRecord

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]


async def export(client: httpx.AsyncClient, bearer: Bearer, **params: str) -> httpx.Response:
    r = await client.get("/v1/audit/export", params=params, headers=bearer("compliance"))
    assert r.status_code == 200, r.text
    return r


async def test_a_csv_export_has_every_matching_entry_and_the_checkpoint_it_was_cut_against(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
    signer_vkey: str,
) -> None:
    ledger.append([record() for _ in range(12)])
    r = await export(audit_client, bearer, format="csv", type="sedation.drug_administered")
    text = r.text
    comments = [line for line in text.splitlines() if line.startswith("#")]
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    checkpoint = ledger.store.latest_checkpoint()
    assert checkpoint is not None
    assert [int(row["seq"]) for row in rows] == list(range(12))
    assert rows[0]["type"] == "sedation.drug_administered"
    assert orjson.loads(rows[0]["payload"])["drug"]
    assert f"# {checkpoint.note.splitlines()[2]}" in comments  # the root line of the note
    assert f"# verifier key: {signer_vkey}" in comments
    size, root = r.headers["proctrail-checkpoint"].split(":")
    assert (int(size), base64.b64decode(root)) == (checkpoint.tree_size, checkpoint.root)
    assert r.headers["content-type"].startswith("text/csv")


async def test_every_ndjson_entry_carries_a_proof_that_verifies_against_the_signed_checkpoint(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    for _ in range(5):
        ledger.append([record() for _ in range(7)])
    lines = (await export(audit_client, bearer, format="ndjson")).content.splitlines()
    head = orjson.loads(lines[0])["checkpoint"]
    signed = Verifier.from_vkey(head["verifier_key"]).open(head["note"])
    assert signed.size == head["tree_size"] == 35
    entries = [orjson.loads(line) for line in lines[1:]]
    assert len(entries) == 35
    for entry in entries:
        proof = [base64.b64decode(h) for h in entry["inclusion_proof"]["hashes"]]
        leaf = merkle.leaf_hash(base64.b64decode(entry["leaf"]))
        assert merkle.verify_inclusion(leaf, entry["seq"], signed.size, proof, signed.root)


async def test_an_export_is_itself_recorded_with_its_format_and_row_count(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bus: InMemoryBus,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    ledger.append([record() for _ in range(3)])
    await export(audit_client, bearer, format="csv")
    (message,) = bus.messages(Q_AUDIT)
    event = orjson.loads(message.body)["event"]
    assert event["type"] == "audit.exported"
    assert event["payload"] == {"filters": {"format": "csv"}, "rows": 3, "format": "csv"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xls"}, "format"), ({"format": "pdf"}, "procedure_id"), ({}, "format")],
)
async def test_an_export_that_cannot_be_made_is_refused_naming_why(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
    params: dict[str, str],
    field: str,
) -> None:
    ledger.append([record()])
    r = await audit_client.get("/v1/audit/export", params=params, headers=bearer("compliance"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_fhir_and_pdf_exports_come_through_the_api_with_their_checkpoint(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    first = record()
    ledger.append([first, record(procedure_id=first.event["procedure_id"])])
    procedure_id = first.event["procedure_id"]
    fhir = await export(audit_client, bearer, format="fhir", procedure_id=procedure_id)
    bundle = parse_bundle(fhir.content)
    assert bundle.identifier is not None
    assert bundle.identifier.value == fhir.headers["proctrail-checkpoint"]
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    pdf = await export(audit_client, bearer, format="pdf", procedure_id=procedure_id)
    assert pdf.content.startswith(b"%PDF")
    assert 'filename="proctrail-2.pdf"' in pdf.headers["content-disposition"]
