"""A compliance officer in the browser (Debian's Chromium via Playwright) against `proctrail
up`: finds a procedure by patient, reads its timeline with the vitals chart and a capture
thumbnail rendered from the stored DICOM, and downloads the PDF export. Roles hold in the
browser too: a nurse cannot open the compliance pages, a compliance officer cannot record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, fits
from tests.integration.clinic import PHYSICIAN, Clinic
from tests.integration.conftest import System, running_system

pytestmark = pytest.mark.integration


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(amqp_url, tmp_path) as sysm:
        yield sysm


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")


def test_a_compliance_officer_finds_a_procedure_reads_its_timeline_and_exports_it(
    tablet: Page, system: System, tmp_path: Path
) -> None:
    clinic = Clinic(system, tmp_path)
    procedure = clinic.schedule("implant", "PAT-C1", "ACC-C1")
    for spo2, hr in ((98, 72), (96, 80), (97, 76)):
        vitals = {"spo2_pct": spo2, "heart_rate_bpm": hr, "source": "monitor", "artifact": False}
        clinic.post(procedure, "sedation.vitals_recorded", vitals)
    clinic.post(procedure, "implant.needle_placed", {
        "target": {"kind": "disc", "level": "L4-L5"}, "approach": "posterolateral",
        "needle_gauge": 22, "needle_length_mm": 150, "confirming_sop_instance_uids": []},
        by=PHYSICIAN)  # fmt: skip
    clinic.images("PAT-C1", "ACC-C1", [("XA", 0.0)])
    clinic.timeline(procedure, captures=1)  # everything is in the ledger

    sign_in(tablet, system.audit, system.compliance)
    tablet.fill("#q-patient_id", "PAT-C1")
    tablet.click("button:has-text('Search')")
    tablet.click(f"#results a[href='#/procedure/{procedure}']")
    expect(tablet.locator("#vitals-chart polyline[data-series='spo2_pct']")).to_be_visible()
    image = tablet.locator(".thumbs img").first
    tablet.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    tablet.screenshot(path=str(ARTIFACTS / "compliance-timeline.png"), full_page=True)
    assert fits(tablet)  # nothing wider than the tablet's screen
    tablet.set_viewport_size({"width": 1366, "height": 800})  # and on a desktop
    assert fits(tablet)
    tablet.screenshot(path=str(ARTIFACTS / "compliance-timeline-desktop.png"), full_page=True)
    tablet.set_viewport_size({"width": 768, "height": 1024})
    with tablet.expect_download() as download:
        tablet.click("#export-pdf")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".pdf"
    assert saved.read_bytes().startswith(b"%PDF")


def test_roles_hold_in_the_browser(tablet: Page, system: System) -> None:
    sign_in(tablet, system.audit, system.nurse)
    expect(tablet.locator("[role=alert]")).to_contain_text("cannot open the compliance pages")
    expect(tablet.locator("#search")).to_have_count(0)
    tablet.screenshot(path=str(ARTIFACTS / "compliance-refuses-a-nurse.png"))
    sign_in(tablet, system.bedside, system.compliance)
    expect(tablet.locator("[role=alert]")).to_contain_text("cannot record events")
    expect(tablet.locator("[data-procedure]")).to_have_count(0)
    tablet.screenshot(path=str(ARTIFACTS / "tablet-refuses-compliance.png"))
