"""Realistic DICOM test objects built with pydicom: C-arm cines, dose SRs, CT series.

Nothing here ships with pydicom or pynetdicom: XA/RF multi-frame cines with vendor-style headers
and private blocks, X-ray and CT radiation dose SRs as devices write them (optionally without
the template identifier, with odd unit spellings, padded DS values, FloatingPointValue, units
only in CodeMeaning), and copies of pydicom's CT_small.dcm for benchmarks.

Every object is a Part 10 file (preamble, file meta, explicit VR little endian) of a storage
SOP class DCMTK's storescu proposes, so it can be sent as is. Cines are written header first
and then the pixel data frame by frame, so a 500 MB object never sits in memory and no numpy
is needed.
"""

from __future__ import annotations

import random
import struct
import sys
from array import array
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ComprehensiveSRStorage,
    ExplicitVRLittleEndian,
    XRayAngiographicImageStorage,
    XRayRadiationDoseSRStorage,
    XRayRadiofluoroscopicImageStorage,
    generate_uid,
)

IMPLEMENTATION_VERSION = "PROCTRAIL_TEST"
MAX_PIXEL_BYTES = 0xFFFFFFFE  # a defined 32-bit length, even

Vendor = Literal["siemens", "philips", "ge"]
Numeric = Literal["ds", "padded", "float", "float_only", "comma"]
UnitStyle = Literal["ucum", "meaning_only"]


@dataclass(frozen=True)
class _Device:
    manufacturer: str
    model: str
    software: str
    station: str
    serial: str
    institution: str
    private_group: int
    private_creator: str


DEVICES: dict[str, _Device] = {
    "siemens": _Device("Siemens Healthineers", "Cios Alpha", "VA30A_SP02", "CARM-OR3", "21045",
                       "St Elsewhere Spine Centre", 0x0019, "SIEMENS AX"),
    "philips": _Device("Philips", "Zenition 70", "R2.1.3", "PHCARM2", "ZN70-0419",
                       "St Elsewhere Spine Centre", 0x2001, "Philips Imaging DD 001"),
    "ge": _Device("GE OEC Medical Systems", "OEC Elite", "5.1.2", "OEC-IR2", "E2-18877",
                  "St Elsewhere Spine Centre", 0x0009, "GEMS_IDEN_01"),
}  # fmt: skip


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _moment(acquired_at: datetime | None) -> datetime:
    if acquired_at is None:
        return datetime.now(UTC).astimezone().replace(microsecond=0)
    if acquired_at.tzinfo is None:
        raise ValueError("acquired_at must be timezone-aware")
    return acquired_at


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _patient_and_study(
    ds: Dataset,
    *,
    patient_id: str,
    patient_name: str,
    issuer: str | None,
    accession: str | None,
    study_uid: str,
    series_uid: str,
    moment: datetime,
    tz_offset: bool,
    study_description: str,
) -> None:
    day, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate, ds.InstanceCreationTime = day, time
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = day
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.AccessionNumber = accession or ""  # type 2: unscheduled cases arrive without one
    ds.ReferringPhysicianName = "Khan^Amira^^Dr"
    ds.StudyDescription = study_description
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = "19640312"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "S" + moment.strftime("%y%m%d%H%M")
    if tz_offset:
        ds.TimezoneOffsetFromUTC = _offset(moment)


def _private_block(ds: Dataset, device: _Device, dap_dgy_cm2: float, pulse_rate: int) -> None:
    """A vendor-style private block: creator (gggg,0010) and a few tags in (gggg,10xx)."""
    block = ds.private_block(device.private_group, device.private_creator, create=True)
    block.add_new(0x01, "LO", "SPINE LUMBAR AP")  # organ program
    block.add_new(0x02, "DS", f"{dap_dgy_cm2:.2f}")  # DAP in the vendor's own unit...
    block.add_new(0x03, "LO", "dGy*cm2")  # ...spelt its own way
    block.add_new(0x04, "US", pulse_rate)
    block.add_new(0x05, "SL", -3)
    block.add_new(0x06, "OB", b"SV10\x04\x03\x02\x01" + bytes(24))  # CSA-like blob


def _base_frame(rows: int, cols: int, seed: int) -> bytes:
    """One 12-bit frame: round image-intensifier field, a brighter vertebral column, noise."""
    rng = random.Random(seed)
    noise = [rng.randrange(0, 160) for _ in range(997)]
    cy, cx = rows / 2, cols / 2
    radius2 = (min(rows, cols) * 0.48) ** 2
    spine_lo, spine_hi = int(cols * 0.42), int(cols * 0.58)
    pixels = array("H")
    for y in range(rows):
        dy2 = (y - cy) ** 2
        level = 1400 + (y * 900) // max(rows, 1)
        if (y // max(rows // 12, 1)) % 2 == 0:
            level += 150  # vertebral bodies and discs alternate
        row = array("H", bytes(cols * 2))
        for x in range(cols):
            if (x - cx) ** 2 + dy2 <= radius2:
                v = (
                    level
                    + (700 if spine_lo <= x < spine_hi else 0)
                    + noise[(x * 31 + y * 17) % 997]
                )
                row[x] = v & 0x0FFF
        pixels.extend(row)
    if sys.byteorder == "big":
        pixels.byteswap()
    return pixels.tobytes()


def _cine(
    path: Path,
    *,
    sop_class: str,
    modality: str,
    frames: int,
    rows: int,
    cols: int,
    patient_id: str,
    patient_name: str,
    issuer: str | None,
    accession: str | None,
    study_uid: str | None,
    series_uid: str | None,
    sop_uid: str | None,
    instance_number: int,
    vendor: Vendor,
    acquired_at: datetime | None,
    tz_offset: bool,
    frame_rate: int,
    dap_dgy_cm2: float,
    primary_angle: float,
    secondary_angle: float,
    seed: int,
) -> Path:
    if frames < 1 or rows < 2 or cols < 2:
        raise ValueError("a cine needs at least one frame of 2 x 2 pixels")
    length = frames * rows * cols * 2
    if length > MAX_PIXEL_BYTES:
        raise ValueError(f"{length} bytes of pixel data do not fit a 32-bit length")
    device = DEVICES[vendor]
    moment = _moment(acquired_at)
    sop_uid = sop_uid or generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    _patient_and_study(
        ds,
        patient_id=patient_id,
        patient_name=patient_name,
        issuer=issuer,
        accession=accession,
        study_uid=study_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        moment=moment,
        tz_offset=tz_offset,
        study_description="Lumbar disc injection L4-L5",
    )
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.AcquisitionDate = moment.strftime("%Y%m%d")
    ds.AcquisitionTime = moment.strftime("%H%M%S.%f")
    ds.AcquisitionDateTime = moment.strftime("%Y%m%d%H%M%S.%f")
    ds.Modality = modality
    ds.Manufacturer = device.manufacturer
    ds.InstitutionName = device.institution
    ds.StationName = device.station
    ds.ManufacturerModelName = device.model
    ds.DeviceSerialNumber = device.serial
    ds.SoftwareVersions = device.software
    ds.OperatorsName = "Lee^Robin"
    ds.PerformedProcedureStepID = "PPS" + moment.strftime("%H%M%S")
    ds.BodyPartExamined = "LSPINE"
    ds.PatientPosition = ""  # XA: type 2 in General Series, often empty on C-arms
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    request = Dataset()
    request.RequestedProcedureID = "RP-" + (accession or "UNSCHEDULED")
    request.ScheduledProcedureStepID = "SPS-" + (accession or "UNSCHEDULED")
    if accession:
        request.AccessionNumber = accession
    ds.RequestAttributesSequence = DicomSequence([request])
    # X-ray acquisition (XA acquisition / X-ray acquisition module of RF)
    frame_time_ms = 1000 / frame_rate
    ds.KVP = "78"
    ds.RadiationSetting = "SC"
    ds.RadiationMode = "PULSED"
    ds.XRayTubeCurrent = 6
    ds.XRayTubeCurrentInmA = 6.2
    ds.ExposureTime = round(frames * frame_time_ms)
    ds.ExposureTimeInms = float(frames * frame_time_ms)
    ds.AveragePulseWidth = 8.0
    ds.ImageAndFluoroscopyAreaDoseProduct = f"{dap_dgy_cm2:.3f}"  # dGy·cm² by definition
    ds.TotalTimeOfFluoroscopy = max(1, round(frames / frame_rate))
    ds.IntensifierSize = "300"
    ds.FieldOfViewShape = "ROUND"
    ds.FieldOfViewDimensions = [230]
    ds.ImagerPixelSpacing = ["0.308", "0.308"]
    ds.FocalSpots = ["0.6"]
    ds.Grid = "IN"
    ds.DistanceSourceToDetector = "1000"
    ds.DistanceSourceToPatient = "620"
    ds.EstimatedRadiographicMagnificationFactor = "1.613"
    ds.PositionerMotion = "STATIC"
    ds.PositionerPrimaryAngle = f"{primary_angle:.1f}"
    ds.PositionerSecondaryAngle = f"{secondary_angle:.1f}"
    if modality == "RF":
        ds.FluoroscopyFlag = "YES"
        ds.ColumnAngulation = "0"
    # Cine and multi-frame
    ds.FrameTime = f"{frame_time_ms:.4g}"
    ds.CineRate = frame_rate
    ds.RecommendedDisplayFrameRate = frame_rate
    ds.PreferredPlaybackSequencing = 0
    ds.StartTrim = 1
    ds.StopTrim = frames
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = Tag("FrameTime")
    # Image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LIN"
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    _private_block(ds, device, dap_dgy_cm2, frame_rate)

    frame = memoryview(_base_frame(rows, cols, seed))
    frame_bytes = rows * cols * 2
    row_bytes = cols * 2
    path = Path(path)
    with path.open("wb") as f:
        ds.save_as(f, enforce_file_format=True)
        # (7FE0,0010) OW, explicit VR LE: tag, VR, 2 reserved bytes, 32-bit length, then frames.
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for i in range(frames):
            # The table pans: each frame is the base scrolled by a few rows, and frame-stamped
            # in its first two pixels so that no two frames are identical.
            k = ((i * 3) % rows) * row_bytes
            f.write(struct.pack("<HH", i & 0x0FFF, (i >> 12) & 0x0FFF))
            f.write(frame[k + 4 :] if k + 4 <= frame_bytes else b"")
            f.write(frame[:k])
    return path


def xa_cine(
    path: Path | str,
    frames: int = 120,
    rows: int = 512,
    cols: int = 512,
    *,
    patient_id: str = "MRN-0042",
    patient_name: str = "Doe^Jane",
    issuer: str | None = "St-Elsewhere",
    accession: str | None = "ACC-1001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    vendor: Vendor = "siemens",
    acquired_at: datetime | None = None,
    tz_offset: bool = True,
    frame_rate: int = 15,
    dap_dgy_cm2: float = 1.84,
    primary_angle: float = 0.0,
    secondary_angle: float = 0.0,
    seed: int = 1,
) -> Path:
    """A multi-frame X-Ray Angiographic Image (frames x rows x cols x 16 bits, MONOCHROME2).

    The defaults make a 62.9 MB object (120 x 512 x 512 x 2 bytes); acquired_at must be
    timezone-aware (default: now, local zone); tz_offset=False leaves TimezoneOffsetFromUTC
    out, as many devices do.
    """
    return _cine(
        Path(path),
        sop_class=XRayAngiographicImageStorage,
        modality="XA",
        frames=frames,
        rows=rows,
        cols=cols,
        patient_id=patient_id,
        patient_name=patient_name,
        issuer=issuer,
        accession=accession,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        instance_number=instance_number,
        vendor=vendor,
        acquired_at=acquired_at,
        tz_offset=tz_offset,
        frame_rate=frame_rate,
        dap_dgy_cm2=dap_dgy_cm2,
        primary_angle=primary_angle,
        secondary_angle=secondary_angle,
        seed=seed,
    )


def rf_cine(
    path: Path | str,
    frames: int = 120,
    rows: int = 512,
    cols: int = 512,
    *,
    patient_id: str = "MRN-0042",
    patient_name: str = "Doe^Jane",
    issuer: str | None = "St-Elsewhere",
    accession: str | None = "ACC-1001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    vendor: Vendor = "philips",
    acquired_at: datetime | None = None,
    tz_offset: bool = True,
    frame_rate: int = 8,
    dap_dgy_cm2: float = 0.92,
    primary_angle: float = 90.0,
    secondary_angle: float = 0.0,
    seed: int = 2,
) -> Path:
    """A multi-frame X-Ray Radiofluoroscopic Image (a mobile C-arm's fluoro loop), as xa_cine."""
    return _cine(
        Path(path),
        sop_class=XRayRadiofluoroscopicImageStorage,
        modality="RF",
        frames=frames,
        rows=rows,
        cols=cols,
        patient_id=patient_id,
        patient_name=patient_name,
        issuer=issuer,
        accession=accession,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        instance_number=instance_number,
        vendor=vendor,
        acquired_at=acquired_at,
        tz_offset=tz_offset,
        frame_rate=frame_rate,
        dap_dgy_cm2=dap_dgy_cm2,
        primary_angle=primary_angle,
        secondary_angle=secondary_angle,
        seed=seed,
    )


# --- structured reports ----------------------------------------------------------------------


def code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _item(value_type: str, relationship: str | None, concept: Dataset) -> Dataset:
    item = Dataset()
    if relationship is not None:
        item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = DicomSequence([concept])
    return item


def container(
    concept: Dataset, children: Sequence[Dataset], relationship: str | None = "CONTAINS"
) -> Dataset:
    item = _item("CONTAINER", relationship, concept)
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(list(children))
    return item


def code_item(concept: Dataset, value: Dataset, relationship: str = "CONTAINS") -> Dataset:
    item = _item("CODE", relationship, concept)
    item.ConceptCodeSequence = DicomSequence([value])
    return item


def uidref(concept: Dataset, uid: str, relationship: str = "HAS OBS CONTEXT") -> Dataset:
    item = _item("UIDREF", relationship, concept)
    item.UID = uid
    return item


def text(concept: Dataset, value: str, relationship: str = "HAS OBS CONTEXT") -> Dataset:
    item = _item("TEXT", relationship, concept)
    item.TextValue = value
    return item


def datetime_item(concept: Dataset, moment: datetime, relationship: str = "CONTAINS") -> Dataset:
    item = _item("DATETIME", relationship, concept)
    # No UTC offset suffix: devices rely on TimezoneOffsetFromUTC (and DCMTK 3.6 rejects +0000).
    item.DateTime = moment.strftime("%Y%m%d%H%M%S.%f")
    return item


def _ds_text(value: float) -> str:
    """A DS string (at most 16 characters) for value."""
    for digits in range(10, 0, -1):
        shown = f"{value:.{digits}g}"
        if len(shown) <= 16:
            return shown
    raise ValueError(f"{value} does not fit a DS")


def num(
    concept: Dataset,
    value: float,
    unit: str,
    *,
    unit_meaning: str | None = None,
    relationship: str = "CONTAINS",
    numeric: Numeric = "ds",
    unit_style: UnitStyle = "ucum",
) -> Dataset:
    """A NUM content item with its MeasuredValueSequence.

    numeric: "ds" NumericValue only; "padded" NumericValue sent with a leading space (as
    some devices pad); "float" a rounded NumericValue plus the exact FloatingPointValue;
    "float_only" FloatingPointValue alone; "comma" a decimal comma ("2,5"), as a few
    European-configured devices send. unit_style "meaning_only" sends the unit as a
    CodeMeaning alone (no CodeValue, no scheme).
    """
    item = _item("NUM", relationship, concept)
    measured = Dataset()
    units = Dataset()
    if unit_style == "ucum":
        units.CodeValue = unit
        units.CodingSchemeDesignator = "UCUM"
        units.CodingSchemeVersion = "1.4"
    units.CodeMeaning = unit_meaning or unit
    measured.MeasurementUnitsCodeSequence = DicomSequence([units])
    shown = _ds_text(value)
    tag = Tag("NumericValue")
    if numeric == "ds":
        measured.NumericValue = shown
    elif numeric == "padded":
        padded = (" " + shown) if len(shown) % 2 else (" " + shown + " ")
        measured[tag] = RawDataElement(tag, "DS", len(padded), padded.encode(), 0, False, True)
    elif numeric == "comma":
        raw = shown.replace(".", ",")
        raw = raw if len(raw) % 2 == 0 else raw + " "
        measured[tag] = RawDataElement(tag, "DS", len(raw), raw.encode(), 0, False, True)
    elif numeric == "float":
        measured.NumericValue = f"{value:.3g}"
        measured.FloatingPointValue = float(value)
    elif numeric == "float_only":
        measured.FloatingPointValue = float(value)
    else:
        raise ValueError(f"unknown numeric style {numeric!r}")
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def _observer(device: _Device) -> list[Dataset]:
    """TID 1002/1004: the device as observer."""
    return [
        code_item(code("121005", "Observer Type"), code("121007", "Device"), "HAS OBS CONTEXT"),
        uidref(code("121012", "Device Observer UID"), generate_uid()),
        text(code("121013", "Device Observer Name"), device.station),
        text(code("121014", "Device Observer Manufacturer"), device.manufacturer),
        text(code("121015", "Device Observer Model Name"), device.model),
        text(code("121016", "Device Observer Serial Number"), device.serial),
    ]


_SCOPE_CODES = {
    "study": (code("113014", "Study"), code("110180", "Study Instance UID")),
    "pps": (
        code("113016", "Performed Procedure Step"),
        code("121126", "Performed Procedure Step SOP Instance UID"),
    ),
    "series": (code("113015", "Series"), code("112002", "Series Instance UID")),
}


def _scope(scope: str | None, uid: str) -> list[Dataset]:
    if scope is None:
        return []
    concept, uid_concept = _SCOPE_CODES[scope]
    item = code_item(code("113705", "Scope of Accumulation"), concept, "HAS OBS CONTEXT")
    item.ContentSequence = DicomSequence([uidref(uid_concept, uid, "HAS PROPERTIES")])
    return [item]


def _sr_document(
    *,
    sop_class: str,
    device: _Device,
    patient_id: str,
    accession: str | None,
    study_uid: str,
    moment: datetime,
    children: list[Dataset],
    with_template: str | None,
    study_description: str,
    title: Dataset,
) -> Dataset:
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    _patient_and_study(
        ds,
        patient_id=patient_id,
        patient_name="Doe^Jane",
        issuer="St-Elsewhere",
        accession=accession,
        study_uid=study_uid,
        series_uid=generate_uid(),
        moment=moment,
        tz_offset=True,
        study_description=study_description,
    )
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "SR"
    ds.Manufacturer = device.manufacturer
    ds.InstitutionName = device.institution
    ds.StationName = device.station
    ds.ManufacturerModelName = device.model
    ds.DeviceSerialNumber = device.serial
    ds.SoftwareVersions = device.software
    ds.SeriesNumber = 999
    ds.SeriesDescription = "Radiation Dose Information"
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([title])
    ds.ContinuityOfContent = "SEPARATE"
    if with_template is not None:
        template = Dataset()
        template.MappingResource = "DCMR"
        template.TemplateIdentifier = with_template
        ds.ContentTemplateSequence = DicomSequence([template])
    ds.ContentSequence = DicomSequence(children)
    return ds


def _save(ds: Dataset, path: Path | str) -> Path:
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


_PLANES = {
    "single": code("113622", "Single Plane"),
    "a": code("113620", "Plane A"),
    "b": code("113621", "Plane B"),
}


def _accumulated_xray(
    plane: str,
    figures: dict[str, tuple[float, str]],
    omit: Collection[str],
    numeric: Numeric,
    unit_style: UnitStyle,
) -> Dataset:
    """TID 10002 with 10004/10007: one plane's totals."""
    concepts = {
        "dap_total": code("113722", "Dose Area Product Total"),
        "dose_rp_total": code("113725", "Dose (RP) Total"),
        "fluoro_dap_total": code("113726", "Fluoro Dose Area Product Total"),
        "fluoro_dose_rp_total": code("113728", "Fluoro Dose (RP) Total"),
        "fluoro_time_total": code("113730", "Total Fluoro Time"),
        "acquisition_dap_total": code("113727", "Acquisition Dose Area Product Total"),
        "acquisition_dose_rp_total": code("113729", "Acquisition Dose (RP) Total"),
        "acquisition_time_total": code("113855", "Total Acquisition Time"),
        "frames_total": code("113731", "Total Number of Radiographic Frames"),
    }
    children = [
        code_item(code("113764", "Acquisition Plane"), _PLANES[plane], "HAS CONCEPT MOD"),
    ]
    for key, concept in concepts.items():
        if key in omit or key not in figures:
            continue
        value, unit = figures[key]
        unit_meaning = "no units" if unit == "1" else None
        children.append(
            num(concept, value, unit, unit_meaning=unit_meaning, numeric=numeric,
                unit_style=unit_style)
        )  # fmt: skip
    children.append(
        code_item(
            code("113780", "Reference Point Definition"),
            code("113860", "15cm from Isocenter toward Source"),
        )
    )
    return container(code("113702", "Accumulated X-Ray Dose Data"), children)


def _xray_event(n: int, plane: str, moment: datetime, fluoro: bool) -> Dataset:
    """TID 10003: one irradiation event (its DAP/dose codes differ from the totals')."""
    kind = (
        code("44491008", "Fluoroscopy", "SCT")
        if fluoro
        else code("113611", "Stationary Acquisition")
    )
    return container(
        code("113706", "Irradiation Event X-Ray Data"),
        [
            code_item(code("113764", "Acquisition Plane"), _PLANES[plane], "HAS CONCEPT MOD"),
            code_item(code("113721", "Irradiation Event Type"), kind),
            uidref(code("113769", "Irradiation Event UID"), generate_uid(), "CONTAINS"),
            datetime_item(code("111526", "DateTime Started"), moment + timedelta(minutes=n)),
            num(code("122130", "Dose Area Product"), 0.000021 * n, "Gy.m2"),
            num(code("113738", "Dose (RP)"), 0.0009 * n, "Gy"),
            num(code("113733", "KVP"), 76 + n, "kV"),
            num(code("113734", "X-Ray Tube Current"), 5.8, "mA"),
            num(code("113742", "Irradiation Duration"), 11.5 * n, "s"),
            num(code("112011", "Positioner Primary Angle"), 0.0 if n % 2 else 90.0, "deg"),
            num(code("112012", "Positioner Secondary Angle"), 0.0, "deg"),
        ],
    )


def xray_dose_sr(
    path: Path | str,
    *,
    dap: float = 2.5,
    dap_unit: str = "dGy.cm2",
    dose_rp: float = 1200.0,
    dose_unit: str = "mGy",
    fluoro_time: float = 4.2,
    time_unit: str = "min",
    frames: int = 30,
    parts: bool = True,
    omit: Collection[str] = (),
    plane_b: dict[str, Any] | None = None,
    events: int = 2,
    scope: Literal["study", "pps", "series"] | None = "study",
    scope_uid: str | None = None,
    with_template: bool = False,
    numeric: Numeric = "ds",
    unit_style: UnitStyle = "ucum",
    sop_class: str = XRayRadiationDoseSRStorage,
    vendor: Vendor = "siemens",
    patient_id: str = "MRN-0042",
    accession: str | None = "ACC-1001",
    study_uid: str | None = None,
    acquired_at: datetime | None = None,
) -> Path:
    """An X-Ray Radiation Dose SR (TID 10001) of a C-arm procedure.

    The accumulated totals of plane A (or the single plane) are dap/dose_rp/fluoro_time/frames
    in the units given; with parts, fluoro and acquisition DAP/dose/time are written as a
    3:1 split of the totals (same units). omit drops figures by key (dap_total,
    dose_rp_total, fluoro_dap_total, fluoro_dose_rp_total, fluoro_time_total,
    acquisition_dap_total, acquisition_dose_rp_total, acquisition_time_total, frames_total).
    plane_b (keys dap, dose_rp, fluoro_time, frames) makes it a biplane report. Each plane
    also gets `events` irradiation events, whose per-event DAP/dose must not be counted as
    totals. Without with_template the ContentTemplateSequence is left out, as most devices do.
    """
    device = DEVICES[vendor]
    moment = _moment(acquired_at)
    study_uid = study_uid or generate_uid()

    def figures(dap: float, dose_rp: float, fluoro_time: float, frames: int) -> dict[str, Any]:
        found: dict[str, tuple[float, str]] = {
            "dap_total": (dap, dap_unit),
            "dose_rp_total": (dose_rp, dose_unit),
            "fluoro_time_total": (fluoro_time, time_unit),
            "frames_total": (frames, "1"),
        }
        if parts:
            found |= {
                "fluoro_dap_total": (dap * 0.75, dap_unit),
                "acquisition_dap_total": (dap * 0.25, dap_unit),
                "fluoro_dose_rp_total": (dose_rp * 0.75, dose_unit),
                "acquisition_dose_rp_total": (dose_rp * 0.25, dose_unit),
                "acquisition_time_total": (fluoro_time * 0.1, time_unit),
            }
        return found

    planes = [("single" if plane_b is None else "a", figures(dap, dose_rp, fluoro_time, frames))]
    if plane_b is not None:
        planes.append(("b", figures(**plane_b)))
    children = [
        code_item(
            code("121058", "Procedure reported"),
            code("113704", "Projection X-Ray"),
            "HAS CONCEPT MOD",
        ),
        *_observer(device),
        *_scope(scope, scope_uid or study_uid),
    ]
    for plane, found in planes:
        children.append(_accumulated_xray(plane, found, omit, numeric, unit_style))
    for plane, _found in planes:
        children.extend(_xray_event(n, plane, moment, n % 2 == 1) for n in range(1, events + 1))
    ds = _sr_document(
        sop_class=sop_class,
        device=device,
        patient_id=patient_id,
        accession=accession,
        study_uid=study_uid,
        moment=moment,
        children=children,
        with_template="10001" if with_template else None,
        study_description="Lumbar disc injection L4-L5",
        title=code("113701", "X-Ray Radiation Dose Report"),
    )
    return _save(ds, path)


_PHANTOMS = {
    "body": code("113691", "IEC Body Dosimetry Phantom"),
    "head": code("113690", "IEC Head Dosimetry Phantom"),
}


def _ct_event(
    n: int,
    ctdivol: float | None,
    dlp: float | None,
    phantom: str,
    ctdivol_unit: str,
    dlp_unit: str,
    numeric: Numeric,
    unit_style: UnitStyle,
) -> Dataset:
    """TID 10013: one CT acquisition; no CTDIvol means a localizer (constant angle)."""
    localizer = ctdivol is None
    kind = (
        code("113805", "Constant Angle Acquisition")
        if localizer
        else code("116152004", "Spiral Acquisition", "SCT")
    )
    source = container(
        code("113831", "CT X-Ray Source Parameters"),
        [
            text(code("113832", "Identification of the X-Ray Source"), "A", "CONTAINS"),
            num(code("113733", "KVP"), 120, "kV"),
            num(code("113833", "Maximum X-Ray Tube Current"), 280, "mA"),
            num(code("113734", "X-Ray Tube Current"), 35 if localizer else 212, "mA"),
            num(code("113834", "Exposure Time per Rotation"), 0.5, "s"),
        ],
    )
    parameters = container(
        code("113822", "CT Acquisition Parameters"),
        [
            num(code("113824", "Exposure Time"), 3.1 if localizer else 8.4, "s"),
            num(code("113825", "Scanning Length"), 420 if localizer else 180.5, "mm"),
            num(code("113826", "Nominal Single Collimation Width"), 0.6, "mm"),
            num(code("113827", "Nominal Total Collimation Width"), 38.4, "mm"),
            num(code("113828", "Pitch Factor"), 0.9, "{ratio}"),
            num(code("113823", "Number of X-Ray Sources"), 1, "{X-Ray sources}"),
            source,
        ],
    )
    children = [
        text(code("125203", "Acquisition Protocol"),
             "Topogram" if localizer else "Spine L-Spine", "CONTAINS"),
        code_item(code("123014", "Target Region"), code("421060004", "Spine", "SCT")),
        code_item(code("113820", "CT Acquisition Type"), kind),
        uidref(code("113769", "Irradiation Event UID"), generate_uid(), "CONTAINS"),
        parameters,
    ]  # fmt: skip
    if ctdivol is not None:
        dose = [
            num(code("113830", "Mean CTDIvol"), ctdivol, ctdivol_unit, numeric=numeric,
                unit_style=unit_style),
            code_item(code("113835", "CTDIw Phantom Type"), _PHANTOMS[phantom]),
        ]  # fmt: skip
        if dlp is not None:
            dose.append(
                num(code("113838", "DLP"), dlp, dlp_unit, numeric=numeric, unit_style=unit_style)
            )
        children.append(container(code("113829", "CT Dose"), dose))
    return container(code("113819", "CT Acquisition"), children)


def ct_dose_sr(
    path: Path | str,
    *,
    events: Sequence[tuple[float | None, float | None] | tuple[float | None, float | None, str]] = (
        (None, None),
        (12.4, 223.7),
        (9.8, 176.2),
    ),
    total_dlp: float | Literal["sum"] | None = "sum",
    ctdivol_unit: str = "mGy",
    dlp_unit: str = "mGy.cm",
    numeric: Numeric = "ds",
    unit_style: UnitStyle = "ucum",
    scope: Literal["study", "pps", "series"] | None = "study",
    with_template: bool = False,
    sop_class: str = XRayRadiationDoseSRStorage,
    manufacturer: str = "SIEMENS",
    model: str = "SOMATOM go.Top",
    patient_id: str = "MRN-0042",
    accession: str | None = "ACC-1001",
    study_uid: str | None = None,
    acquired_at: datetime | None = None,
) -> Path:
    """A CT Radiation Dose SR (TID 10011) of a CT-guided spine procedure.

    events: (mean CTDIvol, DLP[, "body"|"head"]) per acquisition in ctdivol_unit/dlp_unit;
    (None, None) is a localizer without dose figures. total_dlp: the CT Dose Length Product
    Total (113813) in dlp_unit; "sum" writes the sum of the events' DLP, None leaves it out.
    """
    device = _Device(manufacturer, model, "syngo CT VA40", "CTGUIDE1", "108877",
                     "St Elsewhere Spine Centre", 0x0019, "SIEMENS CT VA0  COAD")  # fmt: skip
    moment = _moment(acquired_at)
    study_uid = study_uid or generate_uid()
    acquisitions = []
    for n, event in enumerate(events, start=1):
        ctdivol, dlp = event[0], event[1]
        phantom = event[2] if len(event) == 3 else "body"
        acquisitions.append(
            _ct_event(n, ctdivol, dlp, phantom, ctdivol_unit, dlp_unit, numeric, unit_style)
        )
    accumulated: list[Dataset] = [
        num(code("113812", "Total Number of Irradiation Events"), len(events), "{events}"),
    ]
    if total_dlp == "sum":
        total_dlp = sum(e[1] for e in events if e[1] is not None)
    if total_dlp is not None:
        accumulated.append(
            num(code("113813", "CT Dose Length Product Total"), total_dlp, dlp_unit,
                numeric=numeric, unit_style=unit_style)
        )  # fmt: skip
    children = [
        code_item(
            code("121058", "Procedure reported"),
            code("77477000", "Computed Tomography X-Ray", "SCT"),
            "HAS CONCEPT MOD",
        ),
        *_observer(device),
        *_scope(scope, study_uid),
        container(code("113811", "CT Accumulated Dose Data"), accumulated),
        *acquisitions,
    ]
    ds = _sr_document(
        sop_class=sop_class,
        device=device,
        patient_id=patient_id,
        accession=accession,
        study_uid=study_uid,
        moment=moment,
        children=children,
        with_template="10011" if with_template else None,
        study_description="CT guided lumbar injection",
        title=code("113701", "X-Ray Radiation Dose Report"),
    )
    return _save(ds, path)


def plain_sr(path: Path | str, *, sop_class: str = ComprehensiveSRStorage) -> Path:
    """A Comprehensive SR that is not a dose report (a procedure note with a measurement)."""
    children = [
        text(code("121106", "Comment"), "Needle tip at L4-L5 disc centre", "CONTAINS"),
        num(code("121206", "Distance"), 42.5, "mm"),
    ]
    ds = _sr_document(
        sop_class=sop_class,
        device=DEVICES["siemens"],
        patient_id="MRN-0042",
        accession="ACC-1001",
        study_uid=generate_uid(),
        moment=_moment(None),
        children=children,
        with_template=None,
        study_description="Lumbar disc injection L4-L5",
        title=code("18748-4", "Diagnostic Imaging Report", "LN"),
    )
    return _save(ds, path)


def ct_series(
    directory: Path | str,
    n: int,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> list[Path]:
    """n copies of pydicom's CT_small.dcm (39 kB each) with fresh SOP Instance UIDs.

    The copies form one new series (fresh Series Instance UID unless given, instance numbers
    1..n), in CT_small's own study unless study_uid is given; explicit VR little endian.
    """
    source = get_testdata_file("CT_small.dcm")
    if source is None:
        raise FileNotFoundError("pydicom's test file CT_small.dcm is missing")
    ds = dcmread(source)
    ds.SeriesInstanceUID = series_uid or generate_uid()
    if study_uid is not None:
        ds.StudyInstanceUID = study_uid
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = i + 1
        out = directory / f"ct{i:06d}.dcm"
        ds.save_as(out, enforce_file_format=True)
        paths.append(out)
    return paths


def _macro(**elements: Any) -> DicomSequence:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return DicomSequence([item])


def _enhanced(
    path: Path | str,
    *,
    sop_class: str,
    modality: str,
    frames: int,
    shared: Dataset,
    per_frame: list[Dataset],
    patient_id: str,
    acquired_at: datetime | None,
) -> Path:
    """A multi-frame object whose acquisition lives in functional groups, not at top level."""
    moment = _moment(acquired_at)
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    _patient_and_study(
        ds, patient_id=patient_id, patient_name="Doe^Jane", issuer=None, accession=None,
        study_uid=generate_uid(), series_uid=generate_uid(), moment=moment, tz_offset=True,
        study_description="Spine intervention",
    )  # fmt: skip
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, sop_uid, modality
    ds.AcquisitionDateTime = moment.strftime("%Y%m%d%H%M%S.%f")
    ds.Manufacturer, ds.ManufacturerModelName = "Siemens Healthineers", "Enhanced Test"
    ds.InstanceNumber, ds.BurnedInAnnotation = 1, "NO"
    ds.NumberOfFrames = frames
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(frames * 16 * 16 * 2)
    return _save(ds, path)


def enhanced_ct(
    path: Path | str,
    frames: int = 4,
    *,
    patient_id: str = "PT-ENH-1",
    acquired_at: datetime | None = None,
) -> Path:
    """Enhanced CT: kVp, pitch and exposure in the shared groups, CTDIvol per frame."""
    shared = Dataset()
    shared.CTXRayDetailsSequence = _macro(KVP="120")
    shared.CTTableDynamicsSequence = _macro(SpiralPitchFactor=0.8)
    per_frame = []
    for _ in range(frames):
        frame = Dataset()
        frame.CTExposureSequence = _macro(
            CTDIvol=7.5, ExposureModulationType="XY", XRayTubeCurrentInmA=180.0
        )
        per_frame.append(frame)
    return _enhanced(
        path, sop_class="1.2.840.10008.5.1.4.1.1.2.1", modality="CT", frames=frames,
        shared=shared, per_frame=per_frame, patient_id=patient_id, acquired_at=acquired_at,
    )  # fmt: skip


def enhanced_xa(
    path: Path | str,
    frames: int = 4,
    *,
    patient_id: str = "PT-ENH-1",
    acquired_at: datetime | None = None,
) -> Path:
    """Enhanced XA: geometry shared, tube and positioner per frame (first frame's values)."""
    shared = Dataset()
    shared.XRayGeometrySequence = _macro(DistanceSourceToDetector="1195.5")
    per_frame = []
    for n in range(frames):
        frame = Dataset()
        frame.FrameAcquisitionSequence = _macro(KVP="78", XRayTubeCurrentInmA=6.2)
        frame.PositionerPositionSequence = _macro(
            PositionerPrimaryAngle=f"{-30 + n}", PositionerSecondaryAngle="12"
        )
        per_frame.append(frame)
    return _enhanced(
        path, sop_class="1.2.840.10008.5.1.4.1.1.12.1.1", modality="XA", frames=frames,
        shared=shared, per_frame=per_frame, patient_id=patient_id, acquired_at=acquired_at,
    )  # fmt: skip


DAMAGES = ("truncated", "wrong_length", "garbage_after_preamble", "stray_bytes", "empty",
           "no_sop_instance_uid")  # fmt: skip


def damaged_ct(directory: Path | str, damage: str) -> Path:
    """CT_small.dcm broken in one of the ways DAMAGES names; the bytes a sender would send."""
    source = get_testdata_file("CT_small.dcm")
    if source is None:
        raise FileNotFoundError("pydicom's test file CT_small.dcm is missing")
    good = Path(source)
    raw = good.read_bytes()
    head = raw.index(b"\x08\x00\x05\x00")  # the first dataset element, after the file meta
    body = raw[head:]
    if damage == "truncated":
        data = raw[:-5000]
    elif damage == "wrong_length":
        at = body.find(b"\x10\x00\x10\x00PN")  # (0010,0010) PatientName: its length, wrong
        data = raw[: head + at + 6] + b"\xff\x7f" + raw[head + at + 8 :]
    elif damage == "garbage_after_preamble":
        data = raw[:head] + random.Random(7).randbytes(len(body))
    elif damage == "stray_bytes":
        data = raw + b"\x00\x01\x02"
    elif damage == "empty":
        data = raw[:head]
    elif damage == "no_sop_instance_uid":
        ds = dcmread(good)
        del ds.SOPInstanceUID
        out = Path(directory) / "no-uid.tmp"
        ds.save_as(out, enforce_file_format=True)
        data = out.read_bytes()
        out.unlink()
    else:
        raise ValueError(f"unknown damage {damage!r}: one of {', '.join(DAMAGES)}")
    path = Path(directory) / f"{damage}.dcm"
    path.write_bytes(data)
    return path
