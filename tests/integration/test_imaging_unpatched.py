"""A listener whose pynetdicom patches do not fit the pynetdicom it finds runs without any of
them, says which one did not fit, and stores and announces exactly what it would patched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pydicom
import pytest

from services.imaging.spool import PREFIX as SPOOL_PREFIX
from tests import dicom_factory
from tests.integration.imaging_listener import (
    Audit,
    RunningListener,
    dataset_bytes,
    pynetdicom_send,
    running_listener,
)

pytestmark = pytest.mark.integration

MISFIT = "reactor"
ANNOUNCED = ("imaging.capture_received", "imaging.capture_unmatched", "imaging.dose_reported")


def send_and_collect(
    listener: RunningListener, ct: list[Path], xa: Path, dose: Path
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Send the objects from both senders; every event announced about them, by event id."""
    assert listener.storescu(*ct).returncode == 0  # one association, several objects
    assert pynetdicom_send(listener.port, xa) == 0x0000
    assert listener.storescu(dose).returncode == 0
    objects = len(ct) + 2
    audit = Audit(listener.amqp_url)
    audit.wait_for("imaging.capture_received", objects)
    audit.wait_for("imaging.capture_unmatched", objects)  # no procedure is scheduled
    audit.wait_for("imaging.dose_reported", 1)
    logged = audit.wait_for("imaging.association_logged", 3)
    assert sorted(e["payload"]["objects_stored"] for e in logged) == [1, 1, len(ct)]
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in (*ct, xa, dose)}  # fmt: skip
    captures = audit.of_type("imaging.capture_received")
    assert sorted(c["payload"]["sop_instance_uid"] for c in captures) == sorted(sent)
    for capture in captures:
        kept = (listener.root / capture["payload"]["stored_as"]).read_bytes()
        assert hashlib.sha256(kept).hexdigest() == capture["payload"]["sha256"]
        assert len(kept) == capture["payload"]["size_bytes"]
    (xa_capture,) = [c for c in captures if sent[c["payload"]["sop_instance_uid"]] == xa]
    kept_xa = listener.root / xa_capture["payload"]["stored_as"]
    assert dataset_bytes(kept_xa) == dataset_bytes(xa)  # pynetdicom sent the file's own bytes
    assert listener.leftovers() == []
    return {e["event_id"]: (e["type"], e["payload"]) for t in ANNOUNCED for e in audit.of_type(t)}


def test_without_its_patches_the_listener_stores_and_announces_the_same(
    amqp_url: str, tmp_path: Path
) -> None:
    ct = dicom_factory.ct_series(tmp_path / "ct", 5)
    xa = dicom_factory.xa_cine(tmp_path / "xa.dcm", frames=12, rows=256, cols=256)
    dose = dicom_factory.xray_dose_sr(tmp_path / "dose.dcm")
    one_worker = {"PROCTRAIL_DICOM_WORKERS": "1"}  # the test entry point is the only process

    with running_listener(amqp_url, tmp_path / "patched" / "var", **one_worker) as patched:
        assert patched.logged("pynetdicom patches applied")
        with_patches = send_and_collect(patched, ct, xa, dose)

    with running_listener(
        amqp_url, tmp_path / "unpatched" / "var", "tests.integration.unpatched_imaging",
        PROCTRAIL_TEST_MISFIT_PATCH=MISFIT, **one_worker,
    ) as unpatched:  # fmt: skip
        warned = unpatched.logged(
            "pynetdicom patch does not fit; the listener runs without any patch"
        )
        assert [w["patch"] for w in warned] == [MISFIT]
        assert warned[0]["level"] == "warning"
        assert "pynetdicom.dul has no time_renamed" in warned[0]["found"]
        assert unpatched.logged("pynetdicom patches applied") == []
        without_patches = send_and_collect(unpatched, ct, xa, dose)
        spooled = [
            p for p in (unpatched.root / "incoming").iterdir() if p.name.startswith(SPOOL_PREFIX)
        ]
        assert spooled == []  # pynetdicom made its own temporary files

    assert len(with_patches) == 2 * (len(ct) + 2) + 1
    assert without_patches == with_patches
