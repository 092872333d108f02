"""A nurse on a tablet (Playwright driving Debian's Chromium at 768x1024) against `proctrail up`:
every entry reaches the ledger, and with the network cut entries wait on the tablet and are
sent once each when it returns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, fits
from tests.integration.clinic import Clinic
from tests.integration.conftest import System, running_system, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(amqp_url, tmp_path) as sysm:
        yield sysm


def schedule(system: System, patient: str) -> str:
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/procedures", json={"phase": "implant", "patient": {"id": patient},
                                                "room": "OR-2"})  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["procedure_id"])


def ledger(system: System, procedure_id: str) -> list[dict[str, Any]]:
    with system.audit_client(system.compliance) as client:
        r = client.get("/v1/audit/entries", params={"procedure_id": procedure_id})
    assert r.status_code == 200, r.text
    return [e["event"] for e in r.json()["entries"]]


def open_procedure(page: Page, system: System, procedure_id: str) -> None:
    page.goto(system.bedside)
    page.fill("#token", system.nurse)
    page.click("button:has-text('Sign in')")
    page.click(f"[data-procedure='{procedure_id}']")


def record(page: Page, event_type: str, fill: dict[str, str], select: dict[str, str] | None = None,
           check: list[str] | None = None) -> None:  # fmt: skip
    page.click(f"[data-type='{event_type}']")
    for field, value in fill.items():
        page.fill(f"#f-{field}", value)
    for field, value in (select or {}).items():
        page.select_option(f"#f-{field}", value)
    for field in check or []:
        page.check(f"#f-{field}")
    page.click("button:has-text('Record')")


def test_a_nurse_records_a_sedation_sequence_and_a_needle_placement(
    tablet: Page, system: System
) -> None:
    procedure = schedule(system, "PAT-T1")
    open_procedure(tablet, system, procedure)
    record(tablet, "sedation.drug_administered",
           {"drug": "midazolam", "dose": "2", "route": "IV", "given_by": "dr.cole"},
           {"unit": "mg"})  # fmt: skip
    record(tablet, "sedation.vitals_recorded", {"spo2_pct": "98", "heart_rate_bpm": "72"},
           {"source": "monitor"})  # fmt: skip
    record(tablet, "sedation.depth_scored", {"score": "-1"}, {"scale": "RASS"})
    record(
        tablet,
        "procedure.time_out",
        {"targets": "L4-L5"},
        None,
        ["patient_confirmed", "procedure_confirmed", "site_confirmed", "consent_confirmed"],
    )
    record(tablet, "implant.needle_placed",
           {"approach": "posterolateral", "needle_gauge": "22", "needle_length_mm": "150"},
           {"target-kind": "disc", "target-level": "L4-L5"})  # fmt: skip
    expect(tablet.locator("#outbox")).to_be_hidden()  # nothing left waiting on the tablet
    assert fits(tablet)
    wanted = ["sedation.drug_administered", "sedation.vitals_recorded", "sedation.depth_scored",
              "procedure.time_out", "implant.needle_placed"]  # fmt: skip
    wait_until(lambda: set(wanted) <= {e["type"] for e in ledger(system, procedure)}, 30)
    entries = {e["type"]: e for e in ledger(system, procedure)}
    for kind in wanted:
        assert entries[kind]["actor"] == {"id": "nurse.ana", "role": "nurse"}
        assert entries[kind]["source"]["kind"] == "tablet"
    assert entries["sedation.drug_administered"]["payload"]["dose"] == 2
    assert entries["implant.needle_placed"]["payload"]["target"] == {"kind": "disc",
                                                                    "level": "L4-L5"}  # fmt: skip
    assert entries["procedure.time_out"]["payload"]["targets"] == ["L4-L5"]


def test_with_the_network_cut_entries_wait_and_are_sent_once_each(
    tablet: Page, system: System
) -> None:
    procedure = schedule(system, "PAT-T2")
    open_procedure(tablet, system, procedure)
    tablet.route("**/v1/events", lambda route: route.abort())  # the ward's Wi-Fi drops
    record(tablet, "sedation.vitals_recorded", {"spo2_pct": "97"}, {"source": "manual"})
    record(tablet, "sedation.vitals_recorded", {"spo2_pct": "95"}, {"source": "manual"})
    expect(tablet.locator("#outbox")).to_contain_text("2 entries waiting to send")
    tablet.wait_for_timeout(3500)  # the tablet has retried at least once, still offline
    expect(tablet.locator("#outbox")).to_contain_text("2 entries waiting to send")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tablet.screenshot(path=str(ARTIFACTS / "tablet-offline-queue.png"))
    tablet.unroute("**/v1/events")  # back online
    tablet.click("#outbox >> text=Send now")
    expect(tablet.locator("#outbox")).to_be_hidden(timeout=15000)
    wait_until(lambda: len([e for e in ledger(system, procedure)
                            if e["type"] == "sedation.vitals_recorded"]) >= 2, 30)  # fmt: skip
    vitals = [e for e in ledger(system, procedure) if e["type"] == "sedation.vitals_recorded"]
    assert sorted(e["payload"]["spo2_pct"] for e in vitals) == [95, 97]  # once each


def test_the_tablet_shows_running_totals_and_the_alerts_the_services_raise(
    tablet: Page, system: System
) -> None:
    procedure = schedule(system, "PAT-T3")
    open_procedure(tablet, system, procedure)
    for dose in ("2", "1.5"):
        record(tablet, "sedation.drug_administered",
               {"drug": "midazolam", "dose": dose, "route": "IV", "given_by": "dr.cole"},
               {"unit": "mg"})  # fmt: skip
    expect(tablet.locator("#totals")).to_contain_text("3.5 mg", timeout=15000)
    record(tablet, "implant.needle_placed",  # before any time-out
           {"approach": "posterolateral", "needle_gauge": "22", "needle_length_mm": "150"},
           {"target-kind": "disc", "target-level": "L5-S1"})  # fmt: skip
    expect(tablet.locator("#alerts")).to_contain_text("intervention before time out",
                                                      timeout=20000)  # fmt: skip
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tablet.screenshot(path=str(ARTIFACTS / "tablet-live-alerts.png"), full_page=True)


def test_a_nurse_reconciles_an_image_the_listener_could_not_match(
    tablet: Page, system: System, tmp_path: Path
) -> None:
    procedure = schedule(system, "PAT-T4")
    (sop,) = Clinic(system, tmp_path).images("PAT-T4-TYPO", "ACC-NONE", [("CT", 0.0)])
    open_procedure(tablet, system, procedure)
    item = tablet.locator(f"#unmatched li[data-sop='{sop}']")
    expect(item).to_contain_text("patient PAT-T4-TYPO", timeout=20000)
    expect(item).to_contain_text("CT")
    assert fits(tablet)
    tablet.screenshot(path=str(ARTIFACTS / "tablet-reconciliation-list.png"), full_page=True)
    item.locator("button").click()
    tablet.select_option("#reconcile-why", index=2)  # the patient ID on the device was wrong
    tablet.fill("#reconcile-more", "typed at the CT console")
    tablet.click("button:has-text('Reconcile')")
    expect(tablet.locator("#outbox")).to_be_hidden(timeout=15000)
    expect(tablet.locator(f"#unmatched li[data-sop='{sop}']")).to_have_count(0)

    def reconciled() -> bool:
        types = [e["type"] for e in ledger(system, procedure)]
        return {"imaging.capture_reconciled", "imaging.capture_received"} <= set(types)

    wait_until(reconciled, 30)
    events = {e["type"]: e for e in ledger(system, procedure)}
    note = events["imaging.capture_reconciled"]
    assert note["payload"]["sop_instance_uid"] == sop
    assert note["payload"]["reason"].endswith(": typed at the CT console")
    assert note["actor"] == {"id": "nurse.ana", "role": "nurse"}
    capture = events["imaging.capture_received"]  # now this procedure's, naming who said so
    assert capture["payload"]["sop_instance_uid"] == sop
    assert capture["payload"]["reconciled_by"] == note["event_id"]
