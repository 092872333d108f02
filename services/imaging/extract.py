"""What a received object says about itself: identifiers, acquisition time, device."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset

from services.imaging.validate import keywords_to_tags

Header = Mapping[str, Any]  # keyword -> value, as header_values() gives it
_CHARSET = 0x00080005

# DICOM keyword -> payload key, copied when present (device and acquisition context).
_DESCRIPTIVE = {
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "manufacturer_model_name",
    "StationName": "station_name",
    "DeviceSerialNumber": "device_serial_number",
    "BodyPartExamined": "body_part_examined",
    "Laterality": "laterality",
    "NumberOfFrames": "number_of_frames",
    "BurnedInAnnotation": "burned_in_annotation",
    "IssuerOfPatientID": "patient_id_issuer",
}


def _text(ds: Header, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _offset(ds: Header) -> timezone | None:
    raw = _text(ds, "TimezoneOffsetFromUTC")
    if raw is None or len(raw) != 5 or raw[0] not in "+-" or not raw[1:].isdigit():
        return None
    minutes = int(raw[1:3]) * 60 + int(raw[3:5])
    return timezone(timedelta(minutes=minutes if raw[0] == "+" else -minutes))


def acquired_at(ds: Header) -> tuple[datetime | None, bool]:
    """Acquisition time with its UTC offset, and whether the offset had to be assumed.

    Devices often omit TimezoneOffsetFromUTC; then the listener's local zone is assumed and
    the event says so rather than pretending the time is exact.
    """
    raw = _text(ds, "AcquisitionDateTime")
    if raw is None:
        for date_kw, time_kw in (
            ("AcquisitionDate", "AcquisitionTime"),
            ("ContentDate", "ContentTime"),
            ("StudyDate", "StudyTime"),
        ):
            date, time = _text(ds, date_kw), _text(ds, time_kw)
            if date:
                raw = date + (time or "")
                break
    if raw is None:
        return None, False
    digits, sign, tz = raw, "", ""
    for s in "+-":
        if s in raw[8:]:
            digits, tz = raw.split(s, 1)
            sign = s
    digits = digits.split(".")[0]
    try:
        moment = datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None, False
    zone = _offset(ds)
    if sign and len(tz) == 4 and tz.isdigit():
        minutes = int(tz[:2]) * 60 + int(tz[2:])
        zone = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
    if zone is None:
        return moment.astimezone(), True
    return moment.replace(tzinfo=zone), False


# Per-modality acquisition and dose fields (dicom.md): keyword -> (payload key, number?).
_MODALITY = {
    "KVP": ("kvp", True),
    "XRayTubeCurrent": ("tube_current_ma", True),
    "XRayTubeCurrentInmA": ("tube_current_ma", True),
    "ExposureTime": ("exposure_time_ms", True),
    "ExposureTimeInms": ("exposure_time_ms", True),
    "DistanceSourceToDetector": ("source_detector_distance_mm", True),
    "DistanceSourceToPatient": ("source_patient_distance_mm", True),
    "PositionerPrimaryAngle": ("positioner_primary_angle_deg", True),
    "PositionerSecondaryAngle": ("positioner_secondary_angle_deg", True),
    "ImageAndFluoroscopyAreaDoseProduct": ("area_dose_product_dgy_cm2", True),
    "FluoroscopyFlag": ("fluoroscopy", False),
    "FrameTime": ("frame_time_ms", True),
    "CineRate": ("cine_rate_fps", True),
    "TotalTimeOfFluoroscopy": ("fluoro_time_s", True),
    "TransducerData": ("transducer", False),
    "TransducerFrequency": ("transducer_frequency_khz", True),
    "MechanicalIndex": ("mechanical_index", True),
    "SoftTissueThermalIndex": ("soft_tissue_thermal_index", True),
    "BoneThermalIndex": ("bone_thermal_index", True),
    "CranialThermalIndex": ("cranial_thermal_index", True),
    "DepthOfScanField": ("depth_of_scan_field_mm", True),
    "CTDIvol": ("ctdivol_mgy", True),
    "SpiralPitchFactor": ("spiral_pitch_factor", True),
    "ExposureModulationType": ("exposure_modulation_type", False),
}


def _number(value: Any) -> float | None:
    try:
        number = float(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def modality_fields(ds: Header) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, (key, numeric) in _MODALITY.items():
        value = ds.get(keyword)
        if value is None or str(value).strip() == "" or key in out:
            continue
        if numeric:
            number = _number(value)
            if number is not None:
                out[key] = number
        else:
            out[key] = (
                "\\".join(str(v) for v in value) if isinstance(value, list) else str(value).strip()
            )
    return out


def header_values(ds: Dataset) -> dict[str, Any]:
    """The values capture_fields reads, each converted once (what pydicom's `get` would give)."""
    encodings = None
    if _CHARSET in ds:
        value = ds[_CHARSET].value  # one name, or several (a MultiValue)
        encodings = convert_encodings([value] if isinstance(value, str) else list(value or []))
    out: dict[str, Any] = {}
    for tag, element in ds._dict.items():
        if int(tag) in CAPTURE_TAGS:  # int: a BaseTag key would compare in Python
            if isinstance(element, RawDataElement):
                element = convert_raw_data_element(element, encoding=encodings)
            out[element.keyword] = element.value
    _from_functional_groups(ds, out)
    return out


def _from_functional_groups(ds: Dataset, out: dict[str, Any]) -> None:
    """Enhanced multi-frame objects (XA, XRF, CT, ...) keep acquisition fields in functional
    group macros: take each field missing at top level from the shared groups, else from the
    first frame's. Values that vary by frame (the positioner during a spin) are the first
    frame's."""
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(keyword)
        if not groups:
            continue
        for macro in groups[0]:
            if macro.VR != "SQ" or not macro.value:
                continue
            for element in macro.value[0]:
                if element.keyword in _MODALITY and element.keyword not in out:
                    out[element.keyword] = element.value


def capture_fields(ds: Header) -> dict[str, Any]:
    """The identifiers of `imaging.capture_received` (without file hash, size and caller)."""
    fields: dict[str, Any] = {
        "sop_class_uid": str(ds["SOPClassUID"]).strip(),
        "sop_instance_uid": str(ds["SOPInstanceUID"]).strip(),
        "modality": _text(ds, "Modality") or "OT",
    }
    for keyword, key in (("StudyInstanceUID", "study_instance_uid"),
                         ("SeriesInstanceUID", "series_instance_uid")):  # fmt: skip
        if (uid := _text(ds, keyword)) is not None:
            fields[key] = uid  # Type 1, yet missing from some objects seen in the field
    for keyword, key in (("AccessionNumber", "accession_number"), ("PatientID", "patient_id")):
        if (value := _text(ds, keyword)) is not None:
            fields[key] = value
    moment, assumed = acquired_at(ds)
    if moment is not None:
        fields["acquired_at"] = moment.isoformat()
        if assumed:
            fields["acquired_at_offset_assumed"] = True
    for keyword, key in _DESCRIPTIVE.items():
        value = ds.get(keyword)
        if value is None or not str(value).strip():
            continue
        if keyword == "NumberOfFrames":  # IS; devices have been seen writing "1A"
            frames = _number(value)
            if frames is not None and frames == int(frames) and frames >= 0:
                fields[key] = int(frames)
        else:
            fields[key] = str(value).strip()
    fields.update(modality_fields(ds))
    return fields


# Every tag this module reads: the listener's fast reader (validate.py) keeps only these.
CAPTURE_TAGS = keywords_to_tags(
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID",
    "SeriesInstanceUID", "AccessionNumber", "PatientID", "TimezoneOffsetFromUTC",
    "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime",
    "StudyDate", "StudyTime", *_DESCRIPTIVE, *_MODALITY,
)  # fmt: skip
