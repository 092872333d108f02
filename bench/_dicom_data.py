"""Benchmark objects, made by the same factory the tests use (tests/dicom_factory.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests import dicom_factory

ROWS = COLUMNS = 512
FRAME_BYTES = ROWS * COLUMNS * 2  # 16 bits allocated


def ct_copies(dirs: list[Path], n: int) -> int:
    """n copies of CT_small.dcm with fresh SOP Instance UIDs, dealt round robin into dirs."""
    staging = dirs[0].parent / "ct-staging"
    copies = dicom_factory.ct_series(staging, n)
    total = 0
    for i, path in enumerate(copies):
        target = dirs[i % len(dirs)]
        target.mkdir(parents=True, exist_ok=True)
        total += path.stat().st_size
        shutil.move(path, target / f"ct{i:06d}.dcm")
    shutil.rmtree(staging, ignore_errors=True)
    return total


def frames_for(megabytes: float) -> int:
    """Smallest number of 512x512x16-bit frames making at least `megabytes` (10^6 bytes)."""
    return -(-int(megabytes * 1_000_000) // FRAME_BYTES)


def write_xa_cine(path: Path, frames: int, number: int = 1, study_uid: str | None = None) -> int:
    """A multi-frame XA cine of `frames` 512x512 16-bit frames; returns its size in bytes."""
    dicom_factory.xa_cine(
        path, frames=frames, rows=ROWS, cols=COLUMNS, study_uid=study_uid,
        instance_number=number,
    )  # fmt: skip
    return path.stat().st_size
