"""Shared fixtures: the in-memory bus, tmp_path stores, services built as their __main__ does.

Nothing here needs RabbitMQ: every bus is an `InMemoryBus(default_topology())` and every
message moves only when a test calls `bus.drain()`.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.audit.api import AuditApi
from services.audit.api import create_app as create_audit_app
from services.audit.checkpoint import Signer, load_keyring
from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from services.bedside.api import Bedside
from services.bedside.api import create_app as create_bedside_app
from services.bedside.store import BedsideStore
from shared.auth import TokenStore
from shared.bus import InMemoryBus, default_topology
from shared.bus.topology import Q_AUDIT
from shared.clinical.clock import FakeClock
from shared.config import Settings
from shared.events import CATALOGUE, parse_event, utcnow
from shared.events.record import AuditRecord, accepted
from shared.phase import PhaseService
from shared.storage import UNAVAILABLE
from tests.unit.clinical_harness import T0, Implant, Procedure, start_implant

SAMPLE_ID = "S7K2M9Q4X1B5"  # a valid default-scheme id (ISO 7064 MOD 37-2 check character)
PROCEDURE_ID = "6f1c2a3e-0b4d-4e8f-9a51-2c7d8e9f0a1b"
OTHER_EVENT_ID = "0d3b5a7c-9e1f-4a2b-8c4d-6e8f0a2b4c6d"
PATIENT = {"id": "MRN-0042", "issuer": "St-Elsewhere"}
UID = "1.2.840.113619.2.55.3.604688119"

# One valid payload for every type of the contract's catalogue (test_events checks coverage).
EXAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "procedure.scheduled": {
        "phase": "harvest",
        "patient": PATIENT,
        "room": "IR-2",
        "accession_number": "ACC-1001",
        "scheduled_start": "2025-03-04T09:00:00+01:00",
        "planned_targets": [{"kind": "disc", "level": "L4-L5", "side": "midline"}],
    },
    "procedure.opened": {"room": "IR-2", "operator_id": "dr-khan", "monitoring_nurse_id": "rn-lee"},
    "procedure.time_out": {
        "patient_confirmed": True,
        "procedure_confirmed": True,
        "site_confirmed": True,
        "consent_confirmed": True,
        "targets": ["L4-L5", "L5-S1"],
    },
    "procedure.closed": {"outcome": "aborted", "reason": "patient withdrew consent"},
    "sedation.assessed": {
        "asa_class": 2,
        "emergency": False,
        "weight_kg": 72.5,
        "fasting_hours": 8,
        "airway": "Mallampati II",
        "allergies": ["penicillin"],
    },
    "sedation.drug_administered": {
        "drug": "midazolam",
        "dose": 2,
        "unit": "mg",
        "route": "IV",
        "given_by": "rn-lee",
    },
    "sedation.vitals_recorded": {
        "spo2_pct": 97,
        "heart_rate_bpm": 72,
        "bp_systolic_mmhg": 128,
        "bp_diastolic_mmhg": 82,
        "resp_rate_per_min": 14,
        "etco2_mmhg": 38,
        "source": "monitor",
        "artifact": False,
    },
    "sedation.depth_scored": {"scale": "RASS", "score": -2},
    "anaesthesia.local_administered": {
        "agent": "lidocaine",
        "concentration_pct": 1,
        "volume_ml": 10,
        "site": "left posterior iliac crest",
    },
    "recovery.scored": {"scale": "Aldrete", "score": 9},
    "recovery.discharged": {"escort": "spouse", "condition": "stable, walking unaided"},
    "harvest.aspiration_performed": {
        "tissue": "bone_marrow",
        "site": "posterior iliac crest",
        "side": "left",
        "passes": 3,
        "volume_ml": 60,
        "anticoagulant": "heparin 1000 IU/mL",
        "guidance": "fluoroscopy",
    },
    "harvest.sample_labelled": {
        "sample_id": SAMPLE_ID,
        "volume_ml": 60,
        "collected_at": "2025-03-04T09:40:00+01:00",
    },
    "custody.handoff": {
        "item_id": SAMPLE_ID,
        "from_party": "rn-lee",
        "to_party": "courier-7",
        "temperature_c": 4.5,
        "condition": "sealed, intact",
    },
    "product.lot_released": {
        "lot_id": "LOT-77",
        "sample_id": SAMPLE_ID,
        "patient": PATIENT,
        "cell_type": "bone marrow MSC",
        "cell_count": 5.0e7,
        "viability_pct": 93.5,
        "sterility": "no growth at 14 days",
        "endotoxin": "<0.5 EU/mL",
        "mycoplasma": "negative",
        "expires_at": "2025-04-04T00:00:00+00:00",
        "released_by": "qp-ortiz",
    },
    "implant.product_verified": {
        "lot_id": "LOT-77",
        "patient_id_scanned": "MRN-0042",
        "verifier_ids": ["rn-lee", "dr-khan"],
    },
    "implant.needle_placed": {
        "target": {"kind": "disc", "level": "L4-L5", "side": "midline"},
        "approach": "posterolateral",
        "needle_gauge": 22,
        "needle_length_mm": 150,
        "confirming_sop_instance_uids": [UID],
        "contrast": {"agent": "iohexol 300", "volume_ml": 0.5},
    },
    "implant.injected": {
        "target": {"kind": "disc", "level": "L4-L5"},
        "lot_id": "LOT-77",
        "volume_ml": 1.5,
        "cell_count": 1.0e7,
    },
    "adverse_event.reported": {
        "term": "Vasovagal reaction",
        "grade": 2,
        "serious": False,
        "serious_criteria": [],
        "expected": True,
        "onset_at": "2025-03-04T10:05:00+01:00",
        "suspected_cause": "procedure",
        "action_taken": "legs raised, fluids",
        "outcome": "resolved",
        "related_procedure_id": PROCEDURE_ID,
    },
    "record.corrected": {
        "supersedes": OTHER_EVENT_ID,
        "reason": "dose entered in the wrong unit",
        "changes": {"payload.dose": {"old": 2, "new": 1}},
    },
    "record.signed": {
        "event_ids": [OTHER_EVENT_ID],
        "meaning": "reviewed",
        "signer_id": "dr-khan",
    },
    "imaging.capture_received": {
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.12.2",
        "sop_instance_uid": UID,
        "study_instance_uid": "1.2.840.113619.2.55.3.1",
        "series_instance_uid": "1.2.840.113619.2.55.3.1.1",
        "modality": "RF",
        "accession_number": "ACC-1001",
        "patient_id": "MRN-0042",
        "acquired_at": "2025-03-04T09:20:00+01:00",
        "calling_ae": "FLUORO1",
        "sha256": hashlib.sha256(b"a DICOM object").hexdigest(),
        "size_bytes": 524288,
        "number_of_frames": 30,
    },
    "imaging.dose_reported": {
        "sop_instance_uid": UID,
        "scope": "accumulated",
        "dap_total_gy_m2": 0.0012,
        "fluoro_time_s": 42.5,
        "frames": 30,
        "original": {"DoseAreaProductTotal": 0.0012},
    },
    "imaging.capture_unmatched": {
        "sop_instance_uid": UID,
        "reason": "no procedure with accession ACC-9999",
    },
    "imaging.capture_reconciled": {
        "sop_instance_uid": UID,
        "procedure_id": PROCEDURE_ID,
        "reason": "matched by hand after an accession typo",
    },
    "imaging.association_logged": {
        "calling_ae": "CARM_OR2",
        "called_ae": "PROCTRAIL",
        "peer_address": "10.20.0.41",
        "peer_port": 50412,
        "outcome": "released",
        "tls": True,
        "objects_stored": 14,
        "objects_refused": 0,
    },
    "alert.raised": {
        "code": "needle_unconfirmed",
        "severity": "warning",
        "message": "needle placed without a confirming image",
        "event_ids": [OTHER_EVENT_ID],
    },
    "audit.queried": {"filters": {"procedure_id": PROCEDURE_ID}, "rows": 3},
    "audit.exported": {"filters": {}, "rows": 10, "format": "csv"},
}


def example_payload(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE_PAYLOADS[event_type])


def make_event(
    event_type: str = "sedation.drug_administered",
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A raw envelope as a tablet would post it; `fields` replace or add envelope keys."""
    raw: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "schema": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"id": "rn-lee", "role": "nurse"},
        "source": {"kind": "tablet", "id": "tablet-ir2"},
        "payload": example_payload(event_type) if payload is None else payload,
    }
    if CATALOGUE[event_type].needs_procedure:
        raw["procedure_id"] = PROCEDURE_ID
    raw.update(fields)
    return raw


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus(default_topology())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, late_after_s=600.0, publish_timeout_s=5.0)


@pytest.fixture
def tokens(settings: Settings) -> Iterator[TokenStore]:
    store = TokenStore(settings.data_dir)
    yield store
    store.close()


@pytest.fixture
def bearer(tokens: TokenStore) -> Callable[..., dict[str, str]]:
    """Headers carrying a fresh token of the given role."""

    def headers(role: str, user: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.create(role, user or f'{role}-1')}"}

    return headers


@pytest.fixture
def bedside(settings: Settings, bus: InMemoryBus, tokens: TokenStore) -> Iterator[Bedside]:
    store = BedsideStore(settings.service_dir("bedside") / "bedside.sqlite3")
    yield Bedside(settings, bus, tokens, store)
    store.close()


@pytest.fixture
async def bedside_client(bedside: Bedside) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_bedside_app(bedside))
    async with httpx.AsyncClient(transport=transport, base_url="http://bedside") as client:
        yield client


@pytest.fixture
def harvest(settings: Settings, bus: InMemoryBus) -> PhaseService:
    return PhaseService("harvest", ("harvest",), bus, settings.publish_timeout_s)


@pytest.fixture
def implant(settings: Settings, bus: InMemoryBus) -> PhaseService:
    return PhaseService("implant", ("implant", "lab"), bus, settings.publish_timeout_s)


@pytest.fixture
def ledger_path(settings: Settings) -> Path:
    return settings.service_dir("audit") / "ledger.sqlite3"


@pytest.fixture
def signer(settings: Settings) -> Signer:
    return Signer.load_or_create(settings.service_dir("audit") / "key.pem", settings.log_origin)


@pytest.fixture
def ledger(ledger_path: Path, signer: Signer) -> Iterator[Ledger]:
    store = SqliteStore(ledger_path)
    yield Ledger(store, signer)
    store.close()


@pytest.fixture
def appender(ledger: Ledger, bus: InMemoryBus) -> Appender:
    """The audit consumer, subscribed to q.audit as services/audit/__main__.py does it."""
    consumer = Appender(ledger)
    bus.subscribe(Q_AUDIT, consumer.handle, prefetch=300, max_batch=300, transient=UNAVAILABLE)
    return consumer


@pytest.fixture
def reader(ledger: Ledger, ledger_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(ledger_path, readonly=True)
    yield store
    store.close()


@pytest.fixture
def audit_api(
    reader: SqliteStore, tokens: TokenStore, signer: Signer, bus: InMemoryBus, settings: Settings
) -> AuditApi:
    """The audit API as services/audit/__main__.py builds it (its keyring from the data dir)."""
    keyring = load_keyring(settings.service_dir("audit"), signer.verifier)
    return AuditApi(reader, tokens, keyring, bus, imaging_root=settings.data_dir / "imaging")


@pytest.fixture
async def audit_client(audit_api: AuditApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_audit_app(audit_api))
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        yield client


@pytest.fixture(name="new_event")
def new_event_fixture() -> Callable[..., dict[str, Any]]:
    """`new_event(type, payload=None, **envelope_keys)`: a raw envelope as a tablet posts it."""
    return make_event


@pytest.fixture(name="example")
def example_fixture() -> Callable[[str], dict[str, Any]]:
    """`example(type)`: a fresh copy of that type's valid example payload."""
    return example_payload


@pytest.fixture(name="example_payloads")
def example_payloads_fixture() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(EXAMPLE_PAYLOADS)


@pytest.fixture
def record(new_event: Callable[..., dict[str, Any]]) -> Callable[..., AuditRecord]:
    """`record(type="…", payload=None, **envelope_keys)`: an accepted record stamped by harvest."""

    def make(event_type: str = "sedation.drug_administered", **fields: Any) -> AuditRecord:
        payload = fields.pop("payload", None)
        return accepted(parse_event(new_event(event_type, payload, **fields)), "harvest", utcnow())

    return make


@pytest.fixture
def signer_vkey(signer: Signer) -> str:
    return signer.verifier.vkey()


# --- the clinical rules on the in-memory bus (tests/unit/test_clinical_*.py) ----------------


@pytest.fixture
def clock() -> FakeClock:
    """The clinical services' clock; tests move it instead of sleeping."""
    return FakeClock(T0)


@pytest.fixture
def implant_rules(bus: InMemoryBus, tmp_path: Path, clock: FakeClock) -> Implant:
    """The implant service with its clinical rules, consuming q.implant."""
    return start_implant(bus, tmp_path / "clinical.sqlite3", clock)


@pytest.fixture
def procedure(
    bus: InMemoryBus,
    implant_rules: Implant,
    new_event: Callable[..., dict[str, Any]],
    example: Callable[[str], dict[str, Any]],
) -> Procedure:
    """An implant procedure for MRN-0042, scheduled; post its events with `.post`."""
    return Procedure(bus, new_event, example)
