"""The listener's two readers: the header walker must see what pydicom sees, and refuse what
it refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import data_store  # type: ignore[import-untyped]
import pydicom
import pytest

from services.imaging import validate
from services.imaging.extract import CAPTURE_TAGS, capture_fields, header_values
from tests import dicom_factory

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PYDICOM_DATA = Path(data_store.__file__).parent / "data"


def part10_files() -> list[Path]:
    """pydicom's and pydicom-data's test files that are whole Part 10 objects with a SOP
    Instance UID."""
    out = []
    every = [p for folder in (TEST_FILES, PYDICOM_DATA) for p in folder.rglob("*") if p.is_file()]
    for path in sorted(every):
        try:
            ds = pydicom.dcmread(path, defer_size=4096)
            ok = "TransferSyntaxUID" in ds.file_meta and "SOPInstanceUID" in ds
        except Exception:
            continue
        if ok and "truncated" not in path.name:
            out.append(path)
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about odd test files
def test_the_walker_reads_the_same_capture_fields_as_pydicom_from_every_real_file() -> None:
    files = part10_files()
    assert len(files) > 100
    fast = 0
    for path in files:
        try:
            slow = validate._with_pydicom(path, path.stat().st_size)
        except validate.Malformed:
            continue  # pydicom's own test set holds a few broken objects on purpose
        got = validate.read_whole(path, CAPTURE_TAGS)
        fast += got.fast
        assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), path.name
        assert got.size_bytes == path.stat().st_size
        assert capture_fields(header_values(got.dataset)) == capture_fields(header_values(slow)), (
            path.name
        )
    assert fast > 100  # the common syntaxes really take the fast path


def test_generated_cines_and_dose_reports_read_the_same_either_way(tmp_path: Path) -> None:
    xa = tmp_path / "xa.dcm"
    dicom_factory.xa_cine(xa, frames=4, rows=64, cols=64)
    sr = tmp_path / "sr.dcm"
    dicom_factory.xray_dose_sr(sr)
    got_xa = validate.read_whole(xa, CAPTURE_TAGS)
    assert got_xa.fast
    slow = validate._with_pydicom(xa, xa.stat().st_size)
    assert capture_fields(header_values(got_xa.dataset)) == capture_fields(header_values(slow))
    got_sr = validate.read_whole(sr, CAPTURE_TAGS)
    assert not got_sr.fast  # the dose parser needs the whole content tree
    assert "ContentSequence" in got_sr.dataset


@pytest.mark.parametrize("damage", dicom_factory.DAMAGES)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_damaged_object_is_refused_by_the_walker_and_by_pydicom(
    tmp_path: Path, damage: str
) -> None:
    path = dicom_factory.damaged_ct(tmp_path, damage)
    if damage == "garbage_after_preamble":  # no VR where the first one should be: the
        with pytest.raises(validate._NotForTheFastPath):  # walker leaves it to pydicom
            validate._fast(path, CAPTURE_TAGS)
    else:
        with pytest.raises(validate.Malformed):
            validate._fast(path, CAPTURE_TAGS)
    with pytest.raises(validate.Malformed):
        validate.read_whole(path, CAPTURE_TAGS)


def test_a_large_object_is_walked_without_being_read_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.dcm"
    dicom_factory.xa_cine(path, frames=70, rows=256, cols=256)  # ~9 MB: the mapped path
    assert path.stat().st_size > 8 << 20
    got = validate.read_whole(path, CAPTURE_TAGS)
    assert got.fast
    assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "PixelData" not in got.dataset  # only the wanted header tags were kept


def test_enhanced_objects_give_their_acquisition_fields_from_the_functional_groups(
    tmp_path: Path,
) -> None:
    ct = validate.read_whole(dicom_factory.enhanced_ct(tmp_path / "ct.dcm"), CAPTURE_TAGS)
    xa = validate.read_whole(dicom_factory.enhanced_xa(tmp_path / "xa.dcm"), CAPTURE_TAGS)
    assert not ct.fast  # the walker leaves functional groups to pydicom
    ct_fields = capture_fields(header_values(ct.dataset))
    assert (ct_fields["kvp"], ct_fields["spiral_pitch_factor"]) == (120.0, 0.8)  # shared
    assert (ct_fields["ctdivol_mgy"], ct_fields["exposure_modulation_type"]) == (7.5, "XY")
    xa_fields = capture_fields(header_values(xa.dataset))
    assert xa_fields["source_detector_distance_mm"] == 1195.5  # shared
    assert xa_fields["positioner_primary_angle_deg"] == -30.0  # the first frame's
    assert (xa_fields["kvp"], xa_fields["tube_current_ma"]) == (78.0, 6.2)


def test_a_top_level_value_wins_over_the_functional_groups(tmp_path: Path) -> None:
    path = dicom_factory.enhanced_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(path)
    ds.KVP = "100"
    ds.save_as(path)
    got = validate.read_whole(path, CAPTURE_TAGS)
    assert capture_fields(header_values(got.dataset))["kvp"] == 100.0
