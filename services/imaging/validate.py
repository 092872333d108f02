"""Is a received object whole? Its elements must tile the file exactly and say who it is.

Two readers, one verdict:

- The fast path walks the element headers with `struct` (a value is never read unless its tag
  is one the listener uses, so a 500 MB cine costs a few page reads) and hashes the bytes in
  the same pass. It covers the transfer syntaxes devices send (implicit and explicit VR little
  endian, every encapsulated syntax) for everything but structured reports, whose content tree
  the dose parser needs whole, and multi-frame objects with functional groups (Enhanced XA,
  XRF, CT, ...), whose acquisition fields live in sequences.
- Everything else is read by pydicom (`dcmread`, large values deferred) and checked the same
  way. What the fast path finds wrong in the bytes themselves is refused there and then,
  because pydicom, lenient by design, would read past some of it (see `read_whole`); only
  what the fast path does not read (other syntaxes, SR trees, functional groups, deep
  nesting) goes to pydicom.

Refused: a truncated object, a length that runs past the end, stray bytes after the last
element, garbage where the dataset should be, an empty dataset, a missing SOP Class or
Instance UID.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

UNDEFINED = 0xFFFFFFFF
DEFER_BYTES = 4096
_CHUNK = 1 << 20
_READ_WHOLE_BELOW = 8 << 20  # smaller objects are read once, hashed and walked in memory

_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
_VRS = _LONG_VRS | _SHORT_VRS
_IMPLICIT_LE = "1.2.840.10008.1.2"
_SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_U16, _U32 = struct.Struct("<H"), struct.Struct("<L")
_EXPLICIT, _IMPLICIT = struct.Struct("<HH2sH"), struct.Struct("<HHL")


class Malformed(ValueError):
    """The received bytes are not one whole DICOM object."""


@dataclass(frozen=True)
class Received:
    dataset: Dataset  # the fast path: only the elements in `wanted`; pydicom: everything
    sha256: str
    size_bytes: int
    fast: bool


def read_whole(path: Path, wanted: frozenset[int]) -> Received:
    """Check the object at `path` is whole; its dataset (at least the `wanted` tags) and hash.
    `wanted` must hold the SOP Class and Instance UID tags.

    The walker's refusals are final: each is about the bytes themselves (an element or item
    that runs past the end, a VR that is no VR, stray bytes, a missing identity), which no
    reading repairs; pydicom, lenient by design, would read past some of them (a truncated
    value, an unknown VR) and store a broken object as whole. What the walker leaves to
    pydicom is what it does not read: other syntaxes, SR content trees, functional groups,
    and nesting too deep for it."""
    try:
        return _fast(path, wanted)
    except (_NotForTheFastPath, RecursionError):
        pass
    sha, size = sha256_file(path)
    return Received(_with_pydicom(path, size), sha, size, fast=False)


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def keywords_to_tags(*keywords: str) -> frozenset[int]:
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(f"not a DICOM keyword: {keyword}")
        tags.add(int(tag))
    return frozenset(tags)


# --- the fast path -------------------------------------------------------------------------


class _NotForTheFastPath(Exception):
    """Leave this object to pydicom (an SR, functional groups, a deflated or big-endian
    syntax, no file meta)."""


def _fast(path: Path, wanted: frozenset[int]) -> Received:
    size = os.path.getsize(path)
    with path.open("rb") as f:
        if size < _READ_WHOLE_BELOW:
            buf: bytes | mmap.mmap = f.read()
            sha = hashlib.sha256(buf).hexdigest()
            return Received(_walk_file(buf, size, wanted), sha, size, fast=True)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            dataset = _walk_file(mapped, size, wanted)  # touches header pages only
    sha, _ = sha256_file(path)  # read, not mapped: the page cache, not our RSS, holds it
    return Received(dataset, sha, size, fast=True)


def _walk_file(buf: bytes | mmap.mmap, size: int, wanted: frozenset[int]) -> Dataset:
    if size < 132 or buf[128:132] != b"DICM":
        raise _NotForTheFastPath
    meta: dict[int, RawDataElement] = {}
    pos = 132
    while pos + 4 <= size and _U16.unpack_from(buf, pos)[0] == 0x0002:
        pos = _walk(buf, pos, pos + 1, False, meta, None, nested=False)[0]  # one element
    syntax, sop_class = _text(meta.get(0x00020010)), _text(meta.get(0x00020002))
    if not syntax or syntax.startswith("1.2.840.10008.1.2.1.99") or syntax == "1.2.840.10008.1.2.2":
        raise _NotForTheFastPath  # deflated or big endian: pydicom's job
    if sop_class.startswith(_SR_CLASS_PREFIX):
        raise _NotForTheFastPath  # the dose parser walks the whole content tree
    implicit = syntax == _IMPLICIT_LE
    if not implicit and pos + 6 <= size and buf[pos + 4 : pos + 6] not in _VRS:
        # Implicit VR bytes under an explicit syntax, from the first element on: a known
        # sender quirk that pydicom reads (it decides by the first element, as here).
        raise _NotForTheFastPath
    found: dict[int, RawDataElement] = {}
    end, count = _walk(buf, pos, size, implicit, found, wanted, nested=False)
    if end < size:
        raise Malformed(f"{size - end} stray bytes after the last element")
    if count == 0:
        raise Malformed("the dataset is empty")
    for tag, keyword in ((0x00080016, "SOPClassUID"), (0x00080018, "SOPInstanceUID")):
        if not _text(found.get(tag)):  # only wanted tags are kept: the walker needs both
            raise Malformed(f"missing {keyword}")
    dataset = Dataset({BaseTag(tag): raw for tag, raw in found.items()})
    dataset.set_original_encoding(implicit, True)
    return dataset


def _walk(
    buf: bytes | mmap.mmap,
    pos: int,
    stop: int,
    implicit: bool,
    keep: dict[int, RawDataElement] | None,
    wanted: frozenset[int] | None,
    *,
    nested: bool,
) -> tuple[int, int]:
    """Walk elements from `pos` until `stop` (or, `nested`, an item delimiter); keep the wanted
    ones (None: all) in `keep`. Returns where the walk ended and how many elements it passed.

    The file's end bounds every length; `stop` only says when to stop starting elements.
    """
    size = len(buf)
    explicit_header, implicit_header, u32 = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from, _U32
    count = 0
    while pos < stop:
        if pos + 8 > size:
            raise Malformed(f"{size - pos} stray bytes after the last element")
        vr: bytes | None
        if implicit:
            group, number, length = implicit_header(buf, pos)
            vr, start = None, pos + 8
        else:
            group, number, vr, length = explicit_header(buf, pos)
            start = pos + 8
        if group == 0xFFFE:
            if nested and number == 0xE00D:  # the end of this item
                return pos + 8, count
            raise Malformed(f"a stray item or delimiter (FFFE,{number:04X}) among the elements")
        if vr is not None:
            if vr in _LONG_VRS:
                if pos + 12 > size:
                    raise Malformed("an element header runs past the end of the object")
                length, start = u32.unpack_from(buf, pos + 8)[0], pos + 12
            elif vr not in _SHORT_VRS:
                raise Malformed(f"no value representation at byte {pos + 4}")
        if length == UNDEFINED:
            end = _skip_items(buf, start, size, implicit or vr == b"UN")
        else:
            end = start + length
            if end > size:
                raise Malformed(f"an element runs {end - size} bytes past the end of the object")
        count += 1
        if keep is not None:
            if group == 0x5200 and number in (0x9229, 0x9230) and wanted is not None:
                raise _NotForTheFastPath  # functional groups: extract reads their sequences
            tag = group << 16 | number
            if (wanted is None or tag in wanted) and length <= DEFER_BYTES and vr != b"SQ":
                keep[tag] = RawDataElement(
                    BaseTag(tag), vr.decode() if vr else None, length, bytes(buf[start:end]),
                    start, implicit, True, True, False,
                )  # fmt: skip
        pos = end
    if nested:
        raise Malformed("an item runs past the end of the object")
    return pos, count


def _skip_items(buf: bytes | mmap.mmap, pos: int, size: int, implicit: bool) -> int:
    """Past an undefined-length value: items (or fragments) up to the sequence delimiter."""
    while True:
        if pos + 8 > size:
            raise Malformed("a sequence runs past the end of the object")
        group, number, length = _IMPLICIT.unpack_from(buf, pos)
        pos += 8
        if group == 0xFFFE and number == 0xE0DD:
            return pos
        if group != 0xFFFE or number != 0xE000:
            raise Malformed(f"expected an item, found ({group:04X},{number:04X}) in a sequence")
        if length == UNDEFINED:
            pos = _walk(buf, pos, size, implicit, None, None, nested=True)[0]
            continue
        pos += length
        if pos > size:
            raise Malformed("an item runs past the end of the object")


def _text(raw: RawDataElement | None) -> str:
    if raw is None or raw.value is None:
        return ""
    value = raw.value
    return (
        (value if isinstance(value, bytes) else bytes(value))
        .decode("ascii", "replace")
        .strip("\0 ")
    )


# --- pydicom, for everything else ----------------------------------------------------------


def _with_pydicom(path: Path, size: int) -> Dataset:
    try:
        ds = dcmread(path, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RecursionError) as exc:  # fmt: skip
        raise Malformed(f"unreadable: {type(exc).__name__}: {exc}") from None
    if not ds._dict:
        raise Malformed("the dataset is empty")
    raws = [e for e in ds._dict.values() if isinstance(e, RawDataElement)]  # before any reads
    _require_identity(ds)
    if ds.file_meta.TransferSyntaxUID.is_deflated:
        return ds  # element offsets count in the inflated stream: parsing it was the check
    defined = [e for e in raws if e.length != UNDEFINED]
    end = max((e.value_tell + e.length for e in defined), default=0)
    if end > size:
        raise Malformed(f"an element runs {end - size} bytes past the end of the object")
    last = ds._dict[max(ds._dict)]  # elements are in tag order in the file
    if isinstance(last, RawDataElement) and last.length != UNDEFINED and end < size:
        raise Malformed(f"{size - end} stray bytes after the last element")
    return ds


def _require_identity(ds: Dataset) -> None:
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "")).strip():
            raise Malformed(f"missing {keyword}")
