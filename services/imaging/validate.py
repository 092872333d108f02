"""Is a received object whole? Its elements must tile the file exactly and say who it is.

The object is parsed once, with large values deferred (a 500 MB cine's pixels are skipped by
length, never read); the element lengths then have to account for every byte of the file. So
a truncated object, a wrong length, trailing garbage or an empty dataset is refused before
anything is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError

UNDEFINED = 0xFFFFFFFF
DEFER_BYTES = 4096


class Malformed(ValueError):
    """The received bytes are not one whole DICOM object."""


def read_whole(path: Path) -> FileDataset:
    """The dataset, parsed once (large values deferred), after checking it is whole."""
    size = os.path.getsize(path)
    try:
        ds = dcmread(path, defer_size=DEFER_BYTES)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise Malformed(f"unreadable: {exc}") from None
    if not ds._dict:
        raise Malformed("the dataset is empty")
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        if not str(ds.get(keyword, "")).strip():
            raise Malformed(f"missing {keyword}")
    if ds.file_meta.TransferSyntaxUID.is_deflated:
        return ds  # element offsets count in the inflated stream: parsing it was the check
    raws = [e for e in ds._dict.values() if isinstance(e, RawDataElement)]
    defined = [e for e in raws if e.length != UNDEFINED]
    end = max((e.value_tell + e.length for e in defined), default=0)
    if end > size:
        raise Malformed(f"an element runs {end - size} bytes past the end of the object")
    last = ds._dict[max(ds._dict)]  # elements are in tag order in the file
    if isinstance(last, RawDataElement) and last.length != UNDEFINED and end < size:
        raise Malformed(f"{size - end} stray bytes after the last element")
    return ds
