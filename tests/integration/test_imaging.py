"""The imaging listener with real senders and real files: what devices send, it keeps
byte for byte and announces; what is broken it refuses; who it does not know it turns away."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import data_store  # type: ignore[import-untyped]
import pydicom
import pytest
from pynetdicom import AE, _config

from tests import dicom_factory
from tests.integration.conftest import dcmtk
from tests.integration.imaging_listener import (
    Audit,
    RunningListener,
    dataset_bytes,
    pynetdicom_send,
    running_listener,
)

pytestmark = pytest.mark.integration

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"  # pydicom-data, the larger set
MODALITIES = {"CT", "US", "OT", "SR", "CR", "MR", ""}
KNOWN_BROKEN = {  # broken on purpose in the test sets; the listener rightly refuses them
    "MR_truncated.dcm",
    "rtplan_truncated.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",  # pixel data without its delimiter
    "bad_sequence.dcm",  # file meta and dataset name two different SOP instances
}
DCMTK_CANNOT_SEND = {"explicit_VR-UN.dcm"}  # storescu finds no SOP UIDs (they are in UN)


def real_files() -> list[Path]:
    """pydicom's and pydicom-data's CT, US, SC, SR, CR and MR test files (storage SOP classes,
    Part 10)."""
    from pynetdicom import AllStoragePresentationContexts

    storage = {c.abstract_syntax for c in AllStoragePresentationContexts}
    out = []
    every = [p for folder in (TEST_FILES, PYDICOM_DATA) for p in folder.rglob("*") if p.is_file()]
    for path in sorted(every):
        if path.name in KNOWN_BROKEN:
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        meta = getattr(ds, "file_meta", None)
        if meta is None or "TransferSyntaxUID" not in meta:
            continue
        if ds.get("SOPClassUID") in storage and ds.get("Modality", "") in MODALITIES:
            out.append(path)
    return out


@pytest.fixture
def listener(amqp_url: str, tmp_path: Path) -> Iterator[RunningListener]:
    with running_listener(amqp_url, tmp_path / "var") as running:
        yield running


def stored_path(listener: RunningListener, capture: dict) -> Path:
    return listener.root / capture["payload"]["stored_as"]


def test_every_real_test_file_is_kept_byte_for_byte_and_announced(
    listener: RunningListener,
) -> None:
    files = real_files()
    assert len(files) > 100
    dcmtk_files = [p for p in files if p.name not in DCMTK_CANNOT_SEND]
    failed = [p.name for p in dcmtk_files if listener.storescu(p).returncode != 0]
    assert failed == []
    refused = [p.name for p in files if pynetdicom_send(listener.port, p) != 0x0000]
    assert refused == []  # the second sender: the same objects again, each still Success
    audit = Audit(listener.amqp_url)
    captures = audit.wait_for("imaging.capture_received", len(files), timeout=120)
    for path in files:
        sent = dataset_bytes(path)
        matching = [c for c in captures if dataset_bytes(stored_path(listener, c)) == sent]
        assert matching, f"{path.name}: no stored object holds exactly the bytes sent"
        capture = matching[0]
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert capture["payload"]["sop_instance_uid"] == str(ds.SOPInstanceUID)
        assert capture["payload"]["sop_class_uid"] == str(ds.SOPClassUID)
        stored = stored_path(listener, capture).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == capture["payload"]["sha256"]
        assert len(stored) == capture["payload"]["size_bytes"]
    assert listener.leftovers() == []


def test_large_xa_and_rf_cines_arrive_whole_from_both_senders(
    listener: RunningListener, tmp_path: Path
) -> None:
    xa = dicom_factory.xa_cine(tmp_path / "xa.dcm", frames=110)
    rf = dicom_factory.rf_cine(tmp_path / "rf.dcm", frames=110)
    assert min(xa.stat().st_size, rf.stat().st_size) > 50_000_000
    assert listener.storescu(xa).returncode == 0
    _config.STORE_SEND_CHUNKED_DATASET = True  # pynetdicom streams the file as it is
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(pydicom.dcmread(rf, stop_before_pixels=True).SOPClassUID,
                             "1.2.840.10008.1.2.1")  # fmt: skip
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="PROCTRAIL")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(rf).Status == 0x0000
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = False
    captures = Audit(listener.amqp_url).wait_for("imaging.capture_received", 2)
    for sent in (xa, rf):
        ds = pydicom.dcmread(sent, stop_before_pixels=True)
        (capture,) = [c for c in captures if c["payload"]["sop_instance_uid"] == ds.SOPInstanceUID]
        assert dataset_bytes(stored_path(listener, capture)) == dataset_bytes(sent)
        payload = capture["payload"]
        assert payload["number_of_frames"] == 110
        assert payload["modality"] == ds.Modality
        assert payload["kvp"] == float(ds.KVP)
        assert payload["manufacturer"] == ds.Manufacturer


def test_dose_reports_give_normalised_totals_and_cross_the_patient_threshold(
    amqp_url: str, tmp_path: Path
) -> None:
    with running_listener(
        amqp_url, tmp_path / "var", PROCTRAIL_DOSE_THRESHOLD_RP_GY="2"
    ) as listener:
        xray = dicom_factory.xray_dose_sr(tmp_path / "xray.dcm", dap=2.5, dap_unit="dGy.cm2",
                                          dose_rp=1200.0, dose_unit="mGy",
                                          fluoro_time=4.2, time_unit="min")  # fmt: skip
        again = dicom_factory.xray_dose_sr(tmp_path / "xray2.dcm", dose_rp=1000.0)
        ct = dicom_factory.ct_dose_sr(tmp_path / "ct.dcm")
        for path in (xray, again, ct):
            assert listener.storescu(path).returncode == 0
        audit = Audit(listener.amqp_url)
        doses = audit.wait_for("imaging.dose_reported", 3)
        first = next(
            d for d in doses
            if d["payload"]["sop_instance_uid"] == pydicom.dcmread(xray).SOPInstanceUID
        )  # fmt: skip
        assert first["payload"]["dap_total_gy_m2"] == pytest.approx(2.5e-5)
        assert first["payload"]["dose_rp_total_gy"] == pytest.approx(1.2)
        assert first["payload"]["fluoro_time_s"] == pytest.approx(252)
        original = first["payload"]["original"]["dap_total"]
        assert (original["value"], original["unit"]) == (2.5, "dGy.cm2")  # as the device said
        ct_dose = next(d for d in doses if "dlp_total_mgy_cm" in d["payload"])
        assert ct_dose["payload"]["dlp_total_mgy_cm"] == pytest.approx(223.7 + 176.2)
        (alert,) = audit.wait_for("alert.raised", 1)
        assert alert["payload"]["code"] == "dose_threshold"
        assert "reference-point air kerma 2.2 Gy" in alert["payload"]["message"]


def test_enhanced_ct_and_xa_are_kept_and_announced_with_their_functional_group_fields(
    listener: RunningListener, tmp_path: Path
) -> None:
    ct = dicom_factory.enhanced_ct(tmp_path / "ect.dcm")
    xa = dicom_factory.enhanced_xa(tmp_path / "exa.dcm")
    assert listener.storescu(ct).returncode == 0
    assert listener.storescu(xa).returncode == 0
    captures = Audit(listener.amqp_url).wait_for("imaging.capture_received", 2)
    by_modality = {c["payload"]["modality"]: c for c in captures}
    assert dataset_bytes(stored_path(listener, by_modality["CT"])) == dataset_bytes(ct)
    assert by_modality["CT"]["payload"]["ctdivol_mgy"] == 7.5
    assert by_modality["CT"]["payload"]["spiral_pitch_factor"] == 0.8
    assert by_modality["XA"]["payload"]["source_detector_distance_mm"] == 1195.5
    assert by_modality["XA"]["payload"]["positioner_primary_angle_deg"] == -30.0


@pytest.mark.parametrize("damage", dicom_factory.DAMAGES)
def test_a_malformed_object_gets_a_failure_status_and_leaves_nothing(
    listener: RunningListener, tmp_path: Path, damage: str
) -> None:
    broken = dicom_factory.damaged_ct(tmp_path, damage)
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm", stop_before_pixels=True)
    before = listener.files()
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the bytes as they are
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="PROCTRAIL")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(broken)
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert status.Status >= 0xA000  # a failure status, not Success or a warning
    assert listener.alive()
    assert listener.files() == before
    assert listener.leftovers() == []


def test_a_resend_changes_nothing_and_other_bytes_under_the_same_uid_are_kept_and_flagged(
    listener: RunningListener, tmp_path: Path
) -> None:
    original = TEST_FILES / "CT_small.dcm"  # pynetdicom sends the file's bytes verbatim
    assert pynetdicom_send(listener.port, original) == 0x0000
    assert pynetdicom_send(listener.port, original) == 0x0000
    ds = pydicom.dcmread(original)
    ds.PatientName = "Corrected^Name"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed, enforce_file_format=True)
    assert pynetdicom_send(listener.port, changed) == 0x0000
    captures = Audit(listener.amqp_url).wait_for("imaging.capture_received", 2)
    assert len(captures) == 2  # the resend was the same event; the changed object is another
    assert len(listener.files()) == 2
    second = next(c for c in captures if "uid_conflict_with_sha256" in c["payload"])
    first = next(c for c in captures if c is not second)
    assert second["payload"]["uid_conflict_with_sha256"] == first["payload"]["sha256"]
    assert dataset_bytes(stored_path(listener, first)) == dataset_bytes(original)
    assert dataset_bytes(stored_path(listener, second)) == dataset_bytes(changed)


def test_an_unknown_calling_ae_is_turned_away_and_the_attempt_is_logged(
    listener: RunningListener,
) -> None:
    sent = listener.storescu(TEST_FILES / "CT_small.dcm", aet="INTRUDER")
    assert sent.returncode != 0
    assert "Association Rejected" in sent.stderr + sent.stdout
    wrong_called = subprocess.run(
        [dcmtk("storescu"), "-aet", "STORESCU", "-aec", "NOT_US", "127.0.0.1",
         str(listener.port), str(TEST_FILES / "CT_small.dcm")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert wrong_called.returncode != 0
    assert listener.storescu(TEST_FILES / "CT_small.dcm").returncode == 0
    audit = Audit(listener.amqp_url)
    logged = audit.wait_for("imaging.association_logged", 3)
    outcomes = {(e["payload"]["calling_ae"], e["payload"]["outcome"]) for e in logged}
    assert ("INTRUDER", "rejected") in outcomes
    assert sum(1 for e in logged if e["payload"]["outcome"] == "rejected") == 2
    assert ("STORESCU", "released") in outcomes
    released = next(e for e in logged if e["payload"]["outcome"] == "released")
    assert released["payload"]["objects_stored"] == 1
    assert released["payload"]["peer_address"] == "127.0.0.1"
