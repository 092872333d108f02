"""Test objects for the DICOM benches: CT_small copies and multi-frame XA cines built with pydicom.

The cines are written header first, then the pixel data streamed frame by frame, so a 500 MB
object never sits in this process's memory.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

XA_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.12.1")
ROWS = COLUMNS = 512
FRAME_BYTES = ROWS * COLUMNS * 2  # 16 bits allocated


def ct_copies(dirs: list[Path], n: int) -> int:
    """n copies of CT_small.dcm with fresh SOP Instance UIDs, dealt round robin into dirs."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None, "pydicom's test files are missing"
    ds = dcmread(path)
    total = 0
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        out = dirs[i % len(dirs)] / f"ct{i:06d}.dcm"
        ds.save_as(out)  # keeps the file's transfer syntax (explicit VR little endian)
        total += out.stat().st_size
    return total


def frames_for(megabytes: float) -> int:
    """Smallest number of 512x512x16-bit frames making at least `megabytes` (10^6 bytes)."""
    return -(-int(megabytes * 1_000_000) // FRAME_BYTES)


def _xa_dataset(frames: int, study_uid: str, series_uid: str, number: int) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "PROCTRAIL_BENCH"

    now = datetime.now()
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.SOPClassUID = XA_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S.000000")
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.AccessionNumber = "BENCH0001"
    ds.Modality = "XA"
    ds.Manufacturer = "Bench Angio"
    ds.InstitutionName = "Bench Hospital"
    ds.StationName = "CATHLAB1"
    ds.ManufacturerModelName = "Cine 512"
    ds.DeviceSerialNumber = "SN-0001"
    ds.PatientName = "Bench^Cine"
    ds.PatientID = "BENCH-XA-1"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "HEART"
    ds.KVP = "78"
    ds.XRayTubeCurrent = 512
    ds.ExposureTime = 7
    ds.DistanceSourceToDetector = "1195"
    ds.DistanceSourceToPatient = "785"
    ds.PositionerMotion = "STATIC"
    ds.PositionerPrimaryAngle = "-30.1"
    ds.PositionerSecondaryAngle = "20.4"
    ds.FrameTime = "66.7"
    ds.CineRate = 15
    ds.RadiationSetting = "GR"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LIN"
    ds.BurnedInAnnotation = "NO"
    # Vendor-style private block, as real angio systems send.
    block = ds.private_block(0x0019, "BENCH ANGIO 1.0", create=True)
    block.add_new(0x01, "DS", "12.5")  # e.g. a dose-area product in an odd unit
    block.add_new(0x02, "LO", "uGym2")
    return ds


def write_xa_cine(path: Path, frames: int, number: int = 1, study_uid: str | None = None) -> int:
    """A multi-frame XA Image Storage object of `frames` 512x512 16-bit frames; returns bytes."""
    ds = _xa_dataset(frames, study_uid or generate_uid(), generate_uid(), number)
    length = frames * FRAME_BYTES
    assert length < 0xFFFFFFFE, "Pixel Data length must fit in 32 bits"
    # One pseudo-random frame (12-bit values), varied per frame so no two frames match.
    base = bytearray(os.urandom(FRAME_BYTES))
    for i in range(1, FRAME_BYTES, 2):
        base[i] &= 0x0F
    with path.open("wb") as f:
        ds.save_as(f, enforce_file_format=True)
        # (7FE0,0010) OW, explicit VR little endian: tag, VR, 2 reserved bytes, 32-bit length.
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for i in range(frames):
            base[0:4] = struct.pack("<HH", i & 0x0FFF, (i >> 12) & 0x0FFF)
            f.write(base)
    return path.stat().st_size
