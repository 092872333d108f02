"""A DICOM fuzz corpus: valid objects mutated so that each mutant is broken by construction
(its bytes cannot be read as a whole dataset, or say something the request does not), from a
seed, so a failure reproduces.

Each base object is explicit VR little endian. The mutations work on its dataset's top-level
elements (the file meta stays whole, so a sender can still say what it sends):

- truncate_inside: the dataset ends inside an element's value;
- length_beyond_end: an element claims more bytes than follow it;
- bad_vr: an element's VR is two bytes no VR is (explicit VR cannot then be read);
- stray_bytes: bytes after the last element that are no element;
- sequence_unterminated: an undefined-length sequence with no delimiter before the end;
- nesting_bomb: undefined-length sequences nested thousands deep, none ever closed;
- uid_mismatch: the dataset's SOP Instance UID is not the one the file meta (the request) has.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
         b"UV"}  # fmt: skip
_VALID = _LONG | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
                  b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}  # fmt: skip
KINDS = ("truncate_inside", "length_beyond_end", "bad_vr", "stray_bytes",
         "sequence_unterminated", "nesting_bomb", "uid_mismatch")  # fmt: skip


@dataclass(frozen=True)
class Element:
    start: int  # offset of its tag, in the dataset
    vr: bytes
    length_at: int
    length_size: int
    value_at: int
    length: int


@dataclass(frozen=True)
class Mutant:
    name: str
    data: bytes  # the whole file: preamble, file meta, the mutated dataset


def dataset_offset(raw: bytes) -> int:
    """Where the dataset starts: after the preamble, "DICM" and the group 2 elements."""
    pos = 132
    while raw[pos : pos + 2] == b"\x02\x00":
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG:
            pos += 12 + struct.unpack_from("<I", raw, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", raw, pos + 6)[0]
    return pos


def elements(body: bytes) -> list[Element]:
    """The top-level elements of an explicit VR little endian dataset of defined lengths."""
    out, pos = [], 0
    while pos + 8 <= len(body):
        vr = body[pos + 4 : pos + 6]
        if vr in _LONG:
            size, at = 4, pos + 8
        else:
            size, at = 2, pos + 6
        length = int.from_bytes(body[at : at + size], "little")
        value = at + size
        if length == 0xFFFFFFFF:
            break  # undefined length: the walk stops here (the elements before it suffice)
        out.append(Element(pos, vr, at, size, value, length))
        pos = value + length
    return out


def _item(content: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<I", len(content)) + content


def _sequence(tag: tuple[int, int], content: bytes, *, undefined: bool = False) -> bytes:
    head = struct.pack("<HH", *tag) + b"SQ\x00\x00"
    if undefined:
        return head + b"\xff\xff\xff\xff" + content
    return head + struct.pack("<I", len(content)) + content


def mutate(raw: bytes, kind: str, rng: random.Random) -> bytes:
    head = dataset_offset(raw)
    meta, body = raw[:head], raw[head:]
    found = elements(body)
    if kind == "truncate_inside":
        e = rng.choice([e for e in found if e.length >= 2])
        return meta + body[: e.value_at + rng.randrange(1, e.length)]
    if kind == "length_beyond_end":
        e = rng.choice([e for e in found if e.length_size == 4 or len(body) - e.value_at < 0xFFF0])
        beyond = len(body) - e.value_at + 2 * rng.randrange(1, 64)
        if e.length_size == 4 and rng.random() < 0.5:
            beyond = 0xFFFFFFF0  # "4 GB follow"
        new = beyond.to_bytes(e.length_size, "little")
        return meta + body[: e.length_at] + new + body[e.length_at + e.length_size :]
    if kind == "bad_vr":
        e = rng.choice(found)
        vr = e.vr
        while vr in _VALID:
            vr = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(2))
        return meta + body[: e.start + 4] + vr + body[e.start + 6 :]
    if kind == "stray_bytes":
        return raw + bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 8)))
    if kind == "sequence_unterminated":
        item = _item(b"\x08\x00\x50\x00SH\x04\x00ACC1")  # (0008,0050) AccessionNumber
        sq = _sequence((0x0040, 0xA730), item * rng.randrange(1, 4), undefined=True)
        return raw + sq  # (0040,A730) sorts after everything CT_small has
    if kind == "nesting_bomb":
        level = _sequence((0x0040, 0xA730), b"\xfe\xff\x00\xe0\xff\xff\xff\xff", undefined=True)
        return raw + level * rng.randrange(2_000, 5_000)  # never closed at any depth
    if kind == "uid_mismatch":
        ds_uid = dcmread(io.BytesIO(raw), stop_before_pixels=True).SOPInstanceUID
        other = generate_uid().encode()
        old = str(ds_uid).encode()
        old_padded, new_padded = _padded(old), _padded(other[: len(old)])
        return meta + body.replace(old_padded, new_padded, 1)
    raise ValueError(f"unknown mutation {kind!r}")


def _padded(uid: bytes) -> bytes:
    return uid + b"\x00" if len(uid) % 2 else uid


def corpus(bases: list[Path], per_kind: int, seed: int = 20261121) -> Iterator[Mutant]:
    rng = random.Random(seed)
    for base in bases:
        raw = base.read_bytes()
        for kind in KINDS:
            for n in range(per_kind):
                yield Mutant(f"{base.stem}-{kind}-{n}", mutate(raw, kind, rng))
