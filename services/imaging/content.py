"""Reading SR content items: concept codes, value types, children, and NUM values with their
units, as devices write them (see dose.py for what they do).

Values come as DS strings with padding (" 2.5 "), sometimes with a decimal comma, or as
FloatingPointValue (preferred when present: it is the exact one); arithmetic is decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from services.imaging.units import COUNT, parse_unit


@dataclass(frozen=True)
class Measurement:
    """One NUM item: the value and unit as sent, and the value in the figure's own unit."""

    value: Decimal
    unit: str | None
    unit_meaning: str | None
    normalised: Decimal | None
    plane: str | None = None

    def original(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"value": float(self.value), "unit": self.unit}
        if self.unit_meaning is not None and self.unit_meaning != self.unit:
            shown["unit_meaning"] = self.unit_meaning
        if self.plane is not None:
            shown["plane"] = self.plane
        return shown


def text(item: Dataset, keyword: str) -> str | None:
    value = item.get(keyword)
    if value is None:
        return None
    return str(value).strip() or None


def code(item: Dataset, keyword: str) -> tuple[str | None, str | None, str | None]:
    """(code value, scheme, meaning) of the first item of a code sequence."""
    seq = item.get(keyword)
    if not seq:
        return None, None, None
    first = seq[0]
    return (
        text(first, "CodeValue"),
        text(first, "CodingSchemeDesignator"),
        text(first, "CodeMeaning"),
    )


def concept(item: Dataset) -> str | None:
    """The DCM concept name code of a content item (None for any other scheme)."""
    value, scheme, _meaning = code(item, "ConceptNameCodeSequence")
    if scheme is not None and scheme.upper() != "DCM":
        return None
    return value


def value_type(item: Dataset) -> str:
    return (text(item, "ValueType") or "").upper()


def children(item: Dataset) -> list[Dataset]:
    seq = item.get("ContentSequence")
    return list(seq) if seq else []


def _raw_text(holder: Dataset, keyword: str) -> str | None:
    """An element's value as the text that was sent, without pydicom's DS conversion."""
    if keyword not in holder:
        return None
    elem = holder.get_item(keyword)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None:
            return None
        return bytes(raw).decode("ascii", "replace").strip("\x00 ") or None
    value = elem.value
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value) or None
    return str(value).strip() or None


def _decimal(text: str, what: str, warnings: list[str]) -> Decimal | None:
    parts = [p.strip() for p in text.split("\\") if p.strip()]
    if not parts:
        return None
    if len(parts) > 1:
        warnings.append(f"{what}: {len(parts)} values sent ({text!r}); the first is used")
    raw = parts[0]
    if "," in raw and "." not in raw and raw.count(",") == 1:
        warnings.append(f"{what}: decimal comma in {raw!r}")
        raw = raw.replace(",", ".")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        warnings.append(f"{what}: {raw!r} is not a number; left out")
        return None
    if not number.is_finite():
        warnings.append(f"{what}: {raw!r} is not a finite number; left out")
        return None
    return number


def _number(holder: Dataset, what: str, warnings: list[str]) -> Decimal | None:
    """FloatingPointValue when present (it is the exact one), else the DS NumericValue."""
    fp = holder.get("FloatingPointValue")
    if fp is not None:
        values = list(fp) if not isinstance(fp, float | int) else [fp]
        if values and isinstance(values[0], float | int) and math.isfinite(values[0]):
            return Decimal(repr(float(values[0])))
    text = _raw_text(holder, "NumericValue")
    if text is None:
        return None
    return _decimal(text, what, warnings)


def measurement(
    item: Dataset, what: str, dimension: str, scale: Decimal, plane: str | None,
    warnings: list[str],
) -> Measurement | None:  # fmt: skip
    """The NUM item's value and unit; `normalised` only when the unit is known and fits."""
    mvs = item.get("MeasuredValueSequence")
    if mvs:
        holder = mvs[0]
    elif "NumericValue" in item or "FloatingPointValue" in item:
        holder = item  # some devices put the value on the content item itself
    else:
        return None  # an empty measured value: "no value" (NumericValueQualifier)
    value = _number(holder, what, warnings)
    if value is None:
        return None
    unit, _scheme, meaning = code(holder, "MeasurementUnitsCodeSequence")
    normalised: Decimal | None = None
    by_value = parse_unit(unit) if unit is not None else None
    by_meaning = parse_unit(meaning) if meaning is not None else None
    parsed = by_value or by_meaning
    if parsed is None and dimension == COUNT:
        parsed = (COUNT, Decimal(1))  # a count is a count, whatever unit it is labelled with
    if by_value is not None and by_meaning is not None and by_value != by_meaning:
        warnings.append(
            f"{what}: unit code {unit!r} and meaning {meaning!r} disagree; the code is used"
        )
    if parsed is None or parsed[0] != dimension:
        sent = unit if unit is not None else meaning
        if parsed is None:
            warnings.append(f"{what}: unknown unit {sent!r}; kept as sent, not normalised")
        else:
            warnings.append(
                f"{what}: unit {sent!r} is a {parsed[0]}, not a {dimension}; kept as sent,"
                " not normalised"
            )
    else:
        normalised = value * parsed[1] * scale
        if normalised < 0:
            warnings.append(f"{what}: negative value {value} {unit}; not normalised")
            normalised = None
    return Measurement(value, unit if unit is not None else meaning, meaning, normalised, plane)
