"""The five pathways of domain.md, end to end through the public interfaces only: bedside's
HTTP API, the lab's releases, devices over DICOM (storescu), and the audit timeline, which must
hold every step with the right people and both clocks, in clinical order, and raise no alert
when everything was done right."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clinic import LAB, NURSE, PHYSICIAN, Clinic, alerts
from tests.integration.conftest import running_system

pytestmark = pytest.mark.integration


@pytest.fixture
def clinic(amqp_url: str, tmp_path: Path) -> Iterator[Clinic]:
    with running_system(amqp_url, tmp_path) as system:
        yield Clinic(system, tmp_path)


def sedated_start(c: Clinic, p: str, targets: list[str], weight: float = 72) -> None:
    c.post(p, "sedation.assessed", {"asa_class": 2, "emergency": False, "weight_kg": weight,
                                    "fasting_hours": 8, "airway": "Mallampati II",
                                    "allergies": ["iodinated contrast: none"]})  # fmt: skip
    c.post(p, "procedure.opened", {"room": "OR-2", "operator_id": PHYSICIAN[0],
                                   "monitoring_nurse_id": NURSE[0]})  # fmt: skip
    c.post(p, "sedation.drug_administered", {"drug": "midazolam", "dose": 2, "unit": "mg",
                                             "route": "IV", "given_by": PHYSICIAN[0]})  # fmt: skip
    c.post(p, "sedation.vitals_recorded", {"spo2_pct": 98, "heart_rate_bpm": 72,
                                           "source": "monitor", "artifact": False})  # fmt: skip
    c.post(p, "sedation.depth_scored", {"scale": "RASS", "score": -1})
    c.post(p, "anaesthesia.local_administered", {"agent": "lidocaine", "concentration_pct": 1,
                                                 "volume_ml": 5, "site": "skin"})  # fmt: skip
    c.post(p, "procedure.time_out", {"patient_confirmed": True, "procedure_confirmed": True,
                                     "site_confirmed": True, "consent_confirmed": True,
                                     "targets": targets}, by=PHYSICIAN)  # fmt: skip


def finish(c: Clinic, p: str) -> None:
    c.post(p, "sedation.vitals_recorded", {"spo2_pct": 97, "heart_rate_bpm": 70,
                                           "source": "monitor", "artifact": False})  # fmt: skip
    c.post(p, "procedure.closed", {"outcome": "completed"}, by=PHYSICIAN)
    c.post(p, "recovery.scored", {"scale": "Aldrete", "score": 10})
    c.post(p, "recovery.scored", {"scale": "PADSS", "score": 10})
    c.post(p, "recovery.discharged", {"escort": "spouse", "condition": "alert, walking"})


def harvest(c: Clinic, patient: str, tissue: str, guidance: str, site: str) -> tuple[str, str]:
    p = c.schedule("harvest", patient)
    sedated_start(c, p, [])
    c.post(p, "harvest.aspiration_performed", {
        "tissue": tissue, "site": site, "side": "right", "passes": 4, "volume_ml": 60,
        "anticoagulant": "heparin 1000 IU/mL", "guidance": guidance}, by=PHYSICIAN)  # fmt: skip
    sample = c.sample_id()
    collected = datetime.now(UTC).isoformat()
    labelled = {"sample_id": sample, "volume_ml": 60, "collected_at": collected}
    c.post(p, "harvest.sample_labelled", labelled)
    c.post(p, "custody.handoff", {"item_id": sample, "from_party": NURSE[0],
                                  "to_party": "courier.raj", "temperature_c": 18,
                                  "condition": "sealed"})  # fmt: skip
    arrival = {"item_id": sample, "from_party": "courier.raj", "to_party": LAB[0],
               "temperature_c": 19, "condition": "sealed, intact"}  # fmt: skip
    c.post(p, "custody.handoff", arrival, by=LAB)
    finish(c, p)
    return p, sample


def implant(c: Clinic, p: str, patient: str, lot: str, cells_each: float,
            targets: list[dict[str, Any]], views: list[list[tuple[str, float]]],
            accession: str) -> None:  # fmt: skip
    levels = [t["level"] for t in targets if t.get("level")]
    sedated_start(c, p, levels)
    c.post(p, "implant.product_verified", {"lot_id": lot, "patient_id_scanned": patient,
                                           "verifier_ids": [NURSE[0], PHYSICIAN[0]]})  # fmt: skip
    for target, shots in zip(targets, views, strict=True):
        c.post(p, "implant.needle_placed", {
            "target": target, "approach": "posterolateral" if target["kind"] == "disc"
            else "percutaneous", "needle_gauge": 22, "needle_length_mm": 150,
            "confirming_sop_instance_uids": []}, by=PHYSICIAN)  # fmt: skip
        c.images(patient, accession, shots)
        c.post(p, "implant.injected", {"target": target, "lot_id": lot, "volume_ml": 1.0,
                                       "cell_count": cells_each}, by=PHYSICIAN)  # fmt: skip
    finish(c, p)


def story(c: Clinic, p: str, captures: int = 0) -> list[dict[str, Any]]:
    events = c.timeline(p, captures)
    c.check_story(p, events)
    return events


FLUORO_PAIR = [("XA", 0.0), ("XA", 90.0)]


def test_herniated_disc_with_differentiated_cells_under_fluoroscopy(clinic: Clinic) -> None:
    c, patient, accession = clinic, "PAT-101", "ACC-101"
    _, sample = harvest(c, patient, "bone_marrow", "fluoroscopy", "posterior iliac crest")
    c.release("LOT-101", sample, patient, "chondrocyte-like (differentiated) MSC", 2.0e7,
              timedelta(days=3))  # fmt: skip
    p = c.schedule("implant", patient, accession)
    implant(c, p, patient, "LOT-101", 2.0e7, [{"kind": "disc", "level": "L4-L5"}],
            [FLUORO_PAIR], accession)  # fmt: skip
    events = story(c, p, captures=2)
    assert alerts(events) == []
    assert [e["payload"]["modality"] for e in events
            if e["type"] == "imaging.capture_received"] == ["XA", "XA"]  # fmt: skip


def test_lumbar_disc_disease_with_cultured_marrow_cells_in_several_discs_under_ct(
    clinic: Clinic,
) -> None:
    c, patient, accession = clinic, "PAT-102", "ACC-102"
    h, sample = harvest(c, patient, "bone_marrow", "fluoroscopy", "posterior iliac crest")
    c.release("LOT-102", sample, patient, "culture-expanded marrow MSC (21 days)", 6.0e7,
              timedelta(days=2))  # fmt: skip
    p = c.schedule("implant", patient, accession)
    discs = [{"kind": "disc", "level": lv} for lv in ("L3-L4", "L4-L5", "L5-S1")]
    implant(c, p, patient, "LOT-102", 2.0e7, discs, [[("CT", 0.0)]] * 3, accession)
    events = story(c, p, captures=3)
    assert alerts(events) == []
    assert alerts(story(c, h)) == []  # the harvest, its custody chain and cold chain
    placed = [
        e["payload"]["target"]["level"] for e in events if e["type"] == "implant.needle_placed"
    ]
    assert placed == ["L3-L4", "L4-L5", "L5-S1"]  # one record per disc


def test_spinal_cord_injury_with_adipose_cells_intra_arterial_and_intramuscular_repeated(
    clinic: Clinic,
) -> None:
    c, patient, accession = clinic, "PAT-103", "ACC-103"
    _, sample = harvest(c, patient, "adipose", "none", "abdomen")
    c.release("LOT-103", sample, patient, "adipose-derived stromal cells", 8.0e7,
              timedelta(days=200))  # fmt: skip
    targets = [{"kind": "artery", "name": "vertebral artery", "side": "left"},
               {"kind": "muscle", "name": "erector spinae", "side": "left"}]  # fmt: skip
    first = c.schedule("implant", patient, accession)
    implant(c, first, patient, "LOT-103", 2.0e7, targets, [FLUORO_PAIR, [("US", 0.0)]],
            accession)  # fmt: skip
    assert alerts(story(c, first, captures=3)) == []
    again = c.schedule("implant", patient, "ACC-103B", follows_procedure_id=first)
    implant(c, again, patient, "LOT-103", 2.0e7, targets, [FLUORO_PAIR, [("US", 0.0)]],
            "ACC-103B")  # fmt: skip
    events = story(c, again, captures=3)
    assert alerts(events) == []
    (scheduled,) = [e for e in events if e["type"] == "procedure.scheduled"]
    assert scheduled["payload"]["follows_procedure_id"] == first  # the repeat is linked


def test_same_day_marrow_concentrate(clinic: Clinic) -> None:
    c, patient, accession = clinic, "PAT-104", "ACC-104"
    _, sample = harvest(c, patient, "bone_marrow", "fluoroscopy", "posterior iliac crest")
    c.release("LOT-104", sample, patient, "bone marrow concentrate (same day, in clinic)",
              1.0e8, timedelta(hours=6))  # fmt: skip
    p = c.schedule("implant", patient, accession)
    implant(c, p, patient, "LOT-104", 5.0e7, [{"kind": "disc", "level": "L5-S1"}],
            [FLUORO_PAIR], accession)  # fmt: skip
    assert alerts(story(c, p, captures=2)) == []


def test_marrow_harvest_and_implant_under_ultrasound(clinic: Clinic) -> None:
    c, patient, accession = clinic, "PAT-105", "ACC-105"
    h, sample = harvest(c, patient, "bone_marrow", "ultrasound", "posterior iliac crest")
    c.release("LOT-105", sample, patient, "bone marrow concentrate", 4.0e7, timedelta(hours=8))
    p = c.schedule("implant", patient, accession)
    implant(c, p, patient, "LOT-105", 2.0e7, [{"kind": "muscle", "name": "multifidus",
                                              "side": "bilateral"}], [[("US", 0.0)]],
            accession)  # fmt: skip
    assert alerts(story(c, p, captures=1)) == []
    (aspiration,) = [e for e in story(c, h) if e["type"] == "harvest.aspiration_performed"]
    assert aspiration["payload"]["guidance"] == "ultrasound"
