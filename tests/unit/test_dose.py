"""Radiation dose SRs as devices write them: odd units, no template id, biplane, CT events."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    ComprehensiveSRStorage,
    ExplicitVRLittleEndian,
    XRayAngiographicImageStorage,
    XRayRadiofluoroscopicImageStorage,
)

from services.imaging.dose import (
    COUNT,
    DOSE,
    DOSE_AREA,
    DOSE_LENGTH,
    TIME,
    DoseReport,
    dose_report,
    parse_unit,
)
from shared.events import parse_event
from shared.events.catalogue import ImagingDoseReported
from tests.dicom_factory import ct_dose_sr, ct_series, plain_sr, rf_cine, xa_cine, xray_dose_sr

SOP = "1.2.826.0.1.3680043.8.498.1"


def report_of(path: Path) -> DoseReport:
    report = dose_report(dcmread(path))
    assert report is not None
    return report


def find_item(ds: Dataset, concept: str) -> Dataset:
    """The first content item, depth first, whose concept name code is `concept`."""
    item: Dataset
    for item in ds.get("ContentSequence", []):
        if item.ConceptNameCodeSequence[0].CodeValue == concept:
            return item
        try:
            return find_item(item, concept)
        except LookupError:
            continue
    raise LookupError(concept)


# --- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dimension", "factor"),
    [
        ("Gy.m2", DOSE_AREA, "1"),
        ("Gy*m2", DOSE_AREA, "1"),
        ("Gym2", DOSE_AREA, "1"),
        ("dGy.cm2", DOSE_AREA, "0.00001"),
        ("dGy*cm2", DOSE_AREA, "0.00001"),
        ("dGycm2", DOSE_AREA, "0.00001"),
        ("cGy.cm2", DOSE_AREA, "0.000001"),
        ("mGy.cm2", DOSE_AREA, "0.0000001"),
        ("uGy.m2", DOSE_AREA, "0.000001"),
        ("µGy.m2", DOSE_AREA, "0.000001"),
        ("Gy.cm2", DOSE_AREA, "0.0001"),
        ("gray square meter", DOSE_AREA, "1"),
        ("decigray centimeter squared", DOSE_AREA, "0.00001"),
        ("Gy·m²", DOSE_AREA, "1"),
        ("dGy x cm2", DOSE_AREA, "0.00001"),
        ("Gy.m^2", DOSE_AREA, "1"),
        ("mGy", DOSE, "0.001"),
        ("uGy", DOSE, "0.000001"),
        ("dGy", DOSE, "0.1"),
        ("cGy", DOSE, "0.01"),
        ("Gy", DOSE, "1"),
        ("milligray", DOSE, "0.001"),
        ("s", TIME, "1"),
        ("min", TIME, "60"),
        ("ms", TIME, "0.001"),
        ("h", TIME, "3600"),
        ("seconds", TIME, "1"),
        ("mGy.cm", DOSE_LENGTH, "1"),
        ("mGy*cm", DOSE_LENGTH, "1"),
        ("cGy.cm", DOSE_LENGTH, "10"),
        ("Gy.cm", DOSE_LENGTH, "1000"),
        ("{frames}", COUNT, "1"),
        ("1", COUNT, "1"),
    ],
)
def test_parse_unit_reads_the_spellings_devices_send(
    text: str, dimension: str, factor: str
) -> None:
    assert parse_unit(text) == (dimension, Decimal(factor))


@pytest.mark.parametrize("text", ["R.cm2", "mAs", "Gy/min", "cGy.cm3", "furlong"])
def test_parse_unit_knows_what_it_does_not_know(text: str) -> None:
    assert parse_unit(text) is None


# --- X-ray: units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("dGy.cm2", 2.5),
        ("dGy*cm2", 2.5),
        ("dGycm2", 2.5),
        ("Gy.m2", 0.000025),
        ("Gy*m2", 0.000025),
        ("Gym2", 0.000025),
        ("cGy.cm2", 25),
        ("mGy.cm2", 250),
        ("uGy.m2", 25),
        ("µGy.m2", 25),
        ("Gy.cm2", 0.25),
        ("µGy·m²", 25),
    ],
)
def test_every_dap_spelling_normalises_to_exactly_the_same_gy_m2(
    tmp_path: Path, unit: str, value: float
) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap=value, dap_unit=unit))
    assert report.dap_total_gy_m2 == 2.5e-5
    assert report.original["dap_total"]["unit"] == unit
    assert report.original["dap_total"]["value"] == value
    assert report.warnings == []


@pytest.mark.parametrize(
    ("unit", "value"),
    [("mGy", 1200), ("uGy", 1200000), ("dGy", 12), ("cGy", 120), ("Gy", 1.2)],
)
def test_dose_at_the_reference_point_normalises_to_gy(
    tmp_path: Path, unit: str, value: float
) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dose_rp=value, dose_unit=unit))
    assert report.dose_rp_total_gy == 1.2
    assert report.original["dose_rp_total"] == {
        "value": value,
        "unit": unit,
        "plane": "Single Plane",
    }


@pytest.mark.parametrize(
    ("unit", "value", "seconds"),
    [("s", 252, 252.0), ("min", 4.2, 252.0), ("ms", 252000, 252.0), ("h", 0.07, 252.0)],
)
def test_fluoro_time_normalises_to_seconds(
    tmp_path: Path, unit: str, value: float, seconds: float
) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", fluoro_time=value, time_unit=unit))
    assert report.fluoro_time_s == seconds
    assert report.original["fluoro_time_total"]["unit"] == unit


def test_a_siemens_style_report_without_template_gives_the_contract_payload(
    tmp_path: Path,
) -> None:
    path = xray_dose_sr(
        tmp_path / "sr.dcm", dap=2.5, dap_unit="dGy.cm2", dose_rp=1200, dose_unit="mGy",
        fluoro_time=4.2, time_unit="min", frames=30, events=4,
    )  # fmt: skip
    ds = dcmread(path)
    assert "ContentTemplateSequence" not in ds

    report = dose_report(ds)

    assert report is not None
    payload = report.payload(SOP)
    assert {k: v for k, v in payload.items() if k != "original"} == {
        "sop_instance_uid": SOP,
        "scope": "study",
        "dap_total_gy_m2": 2.5e-5,
        "dose_rp_total_gy": 1.2,
        "fluoro_time_s": 252.0,
        "frames": 30,
    }
    original = payload["original"]
    assert original["dap_total"] == {"value": 2.5, "unit": "dGy.cm2", "plane": "Single Plane"}
    assert original["fluoro_time_total"]["value"] == 4.2
    assert original["frames_total"]["value"] == 30
    assert original["scope"] == {
        "code": "113014",
        "meaning": "Study",
        "uid": str(ds.StudyInstanceUID),
    }
    assert report.scope_uid == ds.StudyInstanceUID
    # the four per-event DAPs (122130) are not totals
    assert report.irradiation_events == 4
    assert report.fluoro_dap_gy_m2 == 1.875e-5
    assert report.acquisition_dap_gy_m2 == 6.25e-6
    assert report.acquisition_time_s == 25.2
    ImagingDoseReported.model_validate(payload)


def test_the_template_identifier_changes_nothing(tmp_path: Path) -> None:
    without = report_of(xray_dose_sr(tmp_path / "a.dcm", study_uid="1.2.3"))
    with_it = report_of(xray_dose_sr(tmp_path / "b.dcm", study_uid="1.2.3", with_template=True))
    assert dcmread(tmp_path / "b.dcm").ContentTemplateSequence[0].TemplateIdentifier == "10001"
    assert without.payload(SOP) == with_it.payload(SOP)


@pytest.mark.parametrize("numeric", ["ds", "padded", "float", "float_only"])
def test_values_are_read_from_padded_ds_and_floating_point_value(
    tmp_path: Path, numeric: Any
) -> None:
    report = report_of(
        xray_dose_sr(tmp_path / "sr.dcm", dap=2.345678912, dap_unit="dGy.cm2", numeric=numeric)
    )
    # "float" sends NumericValue "2.35" and the exact FloatingPointValue: the exact one wins.
    assert report.dap_total_gy_m2 == 2.345678912e-5
    assert report.warnings == []


def test_a_value_that_is_not_a_number_is_left_out_with_a_warning(tmp_path: Path) -> None:
    ds = dcmread(xray_dose_sr(tmp_path / "sr.dcm", parts=False))  # nothing to derive it from
    measured = find_item(ds, "113722").MeasuredValueSequence[0]
    tag = Tag("NumericValue")
    measured[tag] = RawDataElement(tag, "DS", 4, b"n/a ", 0, False, True)

    report = dose_report(ds)

    assert report is not None
    assert report.dap_total_gy_m2 is None
    assert report.dose_rp_total_gy == 1.2
    assert any("'n/a' is not a number" in w for w in report.warnings)


def test_a_decimal_comma_is_read_with_a_warning(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap=2.5, numeric="comma"))
    assert report.dap_total_gy_m2 == 2.5e-5
    assert any("decimal comma" in w for w in report.warnings)


def test_units_sent_only_as_code_meaning_are_understood(tmp_path: Path) -> None:
    path = xray_dose_sr(
        tmp_path / "sr.dcm", dap=2.5, dap_unit="dGy*cm²", dose_rp=1200, dose_unit="milligray",
        fluoro_time=4.2, time_unit="minutes", unit_style="meaning_only",
    )  # fmt: skip
    dap = find_item(dcmread(path), "113722")
    units = dap.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
    assert ("CodeValue" in units, units.CodeMeaning) == (False, "dGy*cm²")

    report = report_of(path)

    assert (report.dap_total_gy_m2, report.dose_rp_total_gy, report.fluoro_time_s) == (
        2.5e-5,
        1.2,
        252.0,
    )
    assert report.original["dose_rp_total"]["unit"] == "milligray"


def test_an_unknown_unit_keeps_the_original_leaves_the_figure_out_and_warns(
    tmp_path: Path,
) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap=2.5, dap_unit="R.cm2"))

    assert report.dap_total_gy_m2 is None
    payload = report.payload(SOP)
    assert "dap_total_gy_m2" not in payload
    assert payload["dose_rp_total_gy"] == 1.2  # the other figures are unaffected
    assert payload["original"]["dap_total"] == {
        "value": 2.5,
        "unit": "R.cm2",
        "plane": "Single Plane",
    }
    assert any("'R.cm2'" in w and "unknown unit" in w for w in report.warnings)
    assert payload["original"]["warnings"] == report.warnings
    ImagingDoseReported.model_validate(payload)


def test_a_unit_of_the_wrong_kind_is_not_normalised(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap=2.5, dap_unit="mGy"))
    assert report.dap_total_gy_m2 is None
    assert report.original["dap_total"]["unit"] == "mGy"
    assert any("not a dose_area" in w for w in report.warnings)


def test_a_missing_dap_total_is_derived_from_fluoro_and_acquisition(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap=2.5, omit={"dap_total"}))
    assert report.dap_total_gy_m2 == 2.5e-5  # 1.875 + 0.625 dGy·cm²
    assert "dap_total" not in report.original
    assert any("derived" in w for w in report.warnings)


def test_biplane_totals_are_summed_and_each_plane_kept(tmp_path: Path) -> None:
    path = xray_dose_sr(
        tmp_path / "sr.dcm", dap=2.5, dose_rp=1200, fluoro_time=4.2, frames=30,
        plane_b={"dap": 1.0, "dose_rp": 300, "fluoro_time": 1.5, "frames": 10},
    )  # fmt: skip
    report = report_of(path)
    assert (report.dap_total_gy_m2, report.dose_rp_total_gy) == (3.5e-5, 1.5)
    assert (report.fluoro_time_s, report.frames) == (342.0, 40)
    assert [p["plane"] for p in report.original["dap_total"]] == ["Plane A", "Plane B"]
    assert [p["value"] for p in report.original["dap_total"]] == [2.5, 1.0]


@pytest.mark.parametrize(
    ("scope", "named"),
    [("study", "study"), ("pps", "performed_procedure_step"), ("series", "series")],
)
def test_the_scope_of_accumulation_and_its_uid(tmp_path: Path, scope: Any, named: str) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", scope=scope, scope_uid="1.2.3.4"))
    assert report.scope == named
    assert report.scope_uid == "1.2.3.4"
    assert report.original["scope"]["uid"] == "1.2.3.4"


def test_a_scope_uid_sent_beside_the_scope_instead_of_under_it_is_found(tmp_path: Path) -> None:
    ds = dcmread(xray_dose_sr(tmp_path / "sr.dcm", scope_uid="1.2.3.4"))
    scope = find_item(ds, "113705")
    uid_item = scope.ContentSequence[0]
    del scope.ContentSequence
    ds.ContentSequence.append(uid_item)

    report = dose_report(ds)

    assert report is not None
    assert (report.scope, report.scope_uid) == ("study", "1.2.3.4")


def test_a_report_without_scope_says_unspecified(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", scope=None))
    assert report.payload(SOP)["scope"] == "unspecified"
    assert "scope" not in report.original


# --- CT ---------------------------------------------------------------------------------------


def test_ct_report_gives_largest_ctdivol_and_the_total_dlp(tmp_path: Path) -> None:
    path = ct_dose_sr(
        tmp_path / "ct.dcm",
        events=[(None, None), (12.4, 223.7), (28.1, 140.5, "head"), (9.8, 176.2)],
        total_dlp=540.4,
    )
    report = report_of(path)
    payload = report.payload(SOP)
    assert {k: v for k, v in payload.items() if k != "original"} == {
        "sop_instance_uid": SOP,
        "scope": "study",
        "ctdivol_mgy": 28.1,
        "dlp_total_mgy_cm": 540.4,
    }
    events = payload["original"]["ct_events"]
    assert len(events) == 4
    assert "ctdivol" not in events[0]  # the localizer
    assert events[1]["ctdivol"] == {"value": 12.4, "unit": "mGy"}
    assert events[1]["dlp"] == {"value": 223.7, "unit": "mGy.cm"}
    assert events[2]["phantom"] == "IEC Head Dosimetry Phantom"
    assert events[3]["phantom"] == "IEC Body Dosimetry Phantom"
    assert payload["original"]["dlp_total"] == {"value": 540.4, "unit": "mGy.cm"}
    assert report.irradiation_events == 4
    assert report.warnings == []
    ImagingDoseReported.model_validate(payload)


def test_ct_dlp_total_is_summed_from_the_acquisitions_when_missing(tmp_path: Path) -> None:
    report = report_of(
        ct_dose_sr(tmp_path / "ct.dcm", events=[(12.4, 223.7), (9.8, 176.2)], total_dlp=None)
    )
    assert report.dlp_total_mgy_cm == 399.9
    assert any("summed" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("ctdivol_unit", "ctdivol", "dlp_unit", "dlp"),
    [
        ("mGy", 12.4, "mGy*cm", 223.7),
        ("cGy", 1.24, "cGy.cm", 22.37),
        ("Gy", 0.0124, "Gy.cm", 0.2237),
        ("uGy", 12400, "mGycm", 223.7),
    ],
)
def test_ct_units_normalise_to_mgy_and_mgy_cm(
    tmp_path: Path, ctdivol_unit: str, ctdivol: float, dlp_unit: str, dlp: float
) -> None:
    report = report_of(
        ct_dose_sr(
            tmp_path / "ct.dcm", events=[(ctdivol, dlp)], ctdivol_unit=ctdivol_unit,
            dlp_unit=dlp_unit,
        )
    )  # fmt: skip
    assert (report.ctdivol_mgy, report.dlp_total_mgy_cm) == (12.4, 223.7)
    assert report.original["dlp_total"]["unit"] == dlp_unit


def test_ct_report_with_template_and_floating_point_values(tmp_path: Path) -> None:
    report = report_of(
        ct_dose_sr(tmp_path / "ct.dcm", events=[(7.25, 101.5)], with_template=True,
                   numeric="float_only")
    )  # fmt: skip
    assert (report.ctdivol_mgy, report.dlp_total_mgy_cm) == (7.25, 101.5)


# --- what is not a dose report ----------------------------------------------------------------


def test_a_comprehensive_sr_carrying_dose_content_is_a_dose_report(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", sop_class=ComprehensiveSRStorage))
    assert report.dap_total_gy_m2 == 2.5e-5


def test_a_comprehensive_sr_that_is_not_a_dose_report_gives_none(tmp_path: Path) -> None:
    assert dose_report(dcmread(plain_sr(tmp_path / "note.dcm"))) is None


def test_images_give_none(tmp_path: Path) -> None:
    ct = get_testdata_file("CT_small.dcm")
    assert ct is not None
    assert dose_report(dcmread(ct)) is None
    assert dose_report(dcmread(xa_cine(tmp_path / "xa.dcm", frames=2, rows=8, cols=8))) is None


def test_an_empty_dose_sr_is_still_a_report_with_a_warning(tmp_path: Path) -> None:
    ds = dcmread(xray_dose_sr(tmp_path / "sr.dcm"))
    del ds.ContentSequence
    report = dose_report(ds)
    assert report is not None
    assert not report.has_figures
    assert report.warnings == ["no dose figure with a readable unit found in the report"]
    assert report.payload(SOP) == {
        "sop_instance_uid": SOP,
        "scope": "unspecified",
        "original": {"warnings": report.warnings},
    }


def test_the_payload_travels_as_an_imaging_dose_reported_event(tmp_path: Path) -> None:
    report = report_of(xray_dose_sr(tmp_path / "sr.dcm", dap_unit="R.cm2"))
    envelope = parse_event(
        {
            "event_id": "0d3b5a7c-9e1f-4a2b-8c4d-6e8f0a2b4c6d",
            "type": "imaging.dose_reported",
            "schema": 1,
            "occurred_at": "2025-03-04T09:30:00+01:00",
            "actor": {"id": "CARM-OR3", "role": "device"},
            "source": {"kind": "dicom", "id": "CARM-OR3"},
            "payload": report.payload(SOP),
        }
    )
    assert envelope.type == "imaging.dose_reported"
    assert b'"unit":"R.cm2"' in envelope.to_bytes()


# --- the factory's cines ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "sop_class", "modality", "private"),
    [
        (xa_cine, XRayAngiographicImageStorage, "XA", (0x0019, "SIEMENS AX")),
        (rf_cine, XRayRadiofluoroscopicImageStorage, "RF", (0x2001, "Philips Imaging DD 001")),
    ],
)
def test_factory_cines_have_the_frames_and_size_asked_for(
    tmp_path: Path,
    make: Callable[..., Path],
    sop_class: str,
    modality: str,
    private: tuple[int, str],
) -> None:
    path = make(tmp_path / "cine.dcm", frames=7, rows=64, cols=48, accession="ACC-7")
    ds = dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.SOPClassUID, ds.Modality) == (sop_class, modality)
    assert (ds.NumberOfFrames, ds.Rows, ds.Columns) == (7, 64, 48)
    assert (ds.BitsAllocated, ds.BitsStored, ds.PhotometricInterpretation) == (
        16,
        12,
        "MONOCHROME2",
    )
    assert len(ds.PixelData) == 7 * 64 * 48 * 2
    frames = [ds.PixelData[i * 64 * 48 * 2 : (i + 1) * 64 * 48 * 2] for i in range(7)]
    assert len(set(frames)) == 7
    assert ds.AccessionNumber == "ACC-7"
    assert ds.TimezoneOffsetFromUTC[0] in "+-"
    assert ds.private_block(*private)[0x01].value == "SPINE LUMBAR AP"
    assert float(ds.ImageAndFluoroscopyAreaDoseProduct) > 0
    assert ("FluoroscopyFlag" in ds) == (modality == "RF")


def test_a_default_cine_is_over_50_mb(tmp_path: Path) -> None:
    path = xa_cine(tmp_path / "big.dcm", study_uid="1.2.3.4")
    assert path.stat().st_size >= 120 * 512 * 512 * 2 > 50_000_000
    ds = dcmread(path, stop_before_pixels=True)
    assert (ds.NumberOfFrames, ds.StudyInstanceUID) == (120, "1.2.3.4")


def test_ct_series_copies_have_fresh_instance_uids(tmp_path: Path) -> None:
    paths = ct_series(tmp_path / "ct", 3)
    uids = {str(dcmread(p).SOPInstanceUID) for p in paths}
    assert len(uids) == 3
    assert {int(dcmread(p).InstanceNumber) for p in paths} == {1, 2, 3}
