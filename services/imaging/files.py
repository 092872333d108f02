"""The object files: each received object is kept under its SOP Instance UID, fsynced, and
linked into place, never over other bytes (a second version of a UID is kept beside the first).
What is known about them (the index, the events) lives in the store's database (store.py)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    path: Path
    sha256: str
    size_bytes: int
    already_had: bool  # the same UID with the same bytes arrived before
    conflicts_with: str | None  # sha256 of earlier, different bytes under the same UID


def fsync(path: Path) -> None:
    """fsync a file's data, or a directory's entries (a new name in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return digest.hexdigest(), size


def file_stem(uid: str) -> str:
    """The object's file name: its SOP Instance UID, or, for a UID that breaks the DICOM rules
    (letters, too long: devices send such things), a fixed-length digest of it. The index keeps
    the UID as sent either way."""
    if uid and len(uid) <= 64 and all(c in "0123456789." for c in uid) and "/" not in uid:
        return uid
    return "uid-" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def place(
    received: Path, objects: Path, incoming: Path, name: str, sha: str, size: int,
    other: str | None,
) -> StoredObject:  # fmt: skip
    """Link a received (fsynced) file into `objects` as `name`, or beside a file of that name
    holding other bytes; `other` is the sha256 of a version the index already knows."""
    folder = objects / hashlib.sha256(name.encode()).hexdigest()[:2]
    folder.mkdir(exist_ok=True)
    if received.parent != incoming:  # another filesystem: copy next to it first
        staged = incoming / f"{sha}.part"
        with received.open("rb") as src, staged.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        received.unlink(missing_ok=True)
        received = staged
    for final in (folder / f"{name}.dcm", folder / f"{name}.{sha[:16]}.dcm"):
        try:
            os.link(received, final)  # unlike a rename, never replaces what lies there
        except FileExistsError:
            there = _sha256_file(final)[0]
            if there == sha:  # the same bytes: a concurrent sender, or an earlier crash
                received.unlink(missing_ok=True)
                return StoredObject(final, sha, size, True, other)
            other = other or there
            continue
        received.unlink()
        fsync(folder)
        return StoredObject(final, sha, size, False, other)
    raise OSError(f"{name}: both file names hold other bytes")
