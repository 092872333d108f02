"""Radiation dose structured reports, read the way devices actually write them.

X-ray (TID 10001 with 10002/10004/10007 accumulated data, 10003 irradiation events) and CT
(TID 10011, 10013 irradiation events) dose reports become one `DoseReport`, whose `payload()`
is the contract's `imaging.dose_reported`.

What real devices do, and what is done about it here:

- The template identifier (ContentTemplateSequence, TID 10001/10011) is often missing, and dose
  content also arrives as Enhanced/Comprehensive/Comprehensive 3D/Extensible SR. So the tree is
  walked recursively and NUM items are found by concept name code (scheme DCM) wherever they
  sit; the template is never consulted.
- Units are spelt many ways ("Gy.m2", "Gy*m2", "Gym2", "dGy.cm2", "dGycm2", "µGy·m²",
  "mGy*cm", "min", ...), sometimes only in CodeMeaning ("gray square meter", "seconds"). They
  are parsed into a dose prefix and an area/length, or a time, and normalised to Gy·m² (DAP),
  Gy (dose at the reference point), s (time), mGy (CTDIvol), mGy·cm (DLP). The value and unit
  as sent are kept in `original` for every figure. A unit that cannot be read, or one of the
  wrong kind (a DAP in mGy), keeps its original, gets no normalised value and a warning.
- Values come as DS strings with padding (" 2.5 "), sometimes with a decimal comma, or as
  FloatingPointValue (preferred when present: it is the exact one). Arithmetic is decimal, so
  2.5 dGy·cm² is exactly 2.5e-05 Gy·m².
- Biplane systems send one accumulated container per plane (Acquisition Plane 113764): planes
  are summed (DAP, dose at the reference point, fluoro time, frames), and the per-plane
  originals are listed. A figure repeated within one plane counts once.
- A missing DAP/dose total is derived from its fluoro + acquisition parts (with a warning).
- CT: `ctdivol_mgy` is the largest per-acquisition Mean CTDIvol (113830) of the report. It is
  the figure that matters for a threshold and for comparison with the scanner's dose check;
  note that head (16 cm) and body (32 cm) phantom values are not on the same scale: each
  event's phantom (113835) is kept in `original["ct_events"]`. `dlp_total_mgy_cm` is the
  report's CT Dose Length Product Total (113813), or the sum of the per-acquisition DLPs
  (113838) when the total is missing.

Nothing in a dose report makes `dose_report` raise: a damaged item is skipped with a warning,
because the listener refuses objects whose reading raises, and a dose SR must never be lost over
a quirk in it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from shared.events.catalogue import ImagingDoseReported

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
EXTENSIBLE_SR = "1.2.840.10008.5.1.4.1.1.88.35"

_DOSE_CLASSES = frozenset({XRAY_RADIATION_DOSE_SR, ENHANCED_XRAY_RADIATION_DOSE_SR})
# General SR classes that older devices use for dose reports: dose content only if found.
_GENERAL_SR_CLASSES = frozenset({ENHANCED_SR, COMPREHENSIVE_SR, COMPREHENSIVE_3D_SR, EXTENSIBLE_SR})

DOSE_REPORT = "113701"  # X-Ray Radiation Dose Report (the document title)
_SCOPE = "113705"  # Scope of Accumulation
_SCOPES = {
    "113014": "study",
    "113016": "performed_procedure_step",
    "113015": "series",
}
_SCOPE_UIDS = frozenset({"110180", "121126", "112002"})  # Study, PPS SOP Instance, Series UID
_PLANE = "113764"  # Acquisition Plane
_XRAY_EVENT = "113706"  # Irradiation Event X-Ray Data
_CT_EVENT = "113819"  # CT Acquisition
_CTDIVOL = "113830"  # Mean CTDIvol
_EVENT_DLP = "113838"  # DLP
_PHANTOM = "113835"  # CTDIw Phantom Type
_EVENT_UID = "113769"  # Irradiation Event UID

# Dimensions and the unit every figure of that dimension is normalised to.
DOSE, DOSE_AREA, DOSE_LENGTH, TIME, COUNT = "dose", "dose_area", "dose_length", "time", "count"
# Figure key -> (concept code, dimension, multiplier from the dimension's base unit to the
# unit reported). Base units: Gy, Gy·m², mGy·cm, s, 1.
_TOTALS: dict[str, tuple[str, str, Decimal]] = {
    "dap_total": ("113722", DOSE_AREA, Decimal(1)),
    "dose_rp_total": ("113725", DOSE, Decimal(1)),
    "fluoro_dap_total": ("113726", DOSE_AREA, Decimal(1)),
    "fluoro_dose_rp_total": ("113728", DOSE, Decimal(1)),
    "fluoro_time_total": ("113730", TIME, Decimal(1)),
    "acquisition_dap_total": ("113727", DOSE_AREA, Decimal(1)),
    "acquisition_dose_rp_total": ("113729", DOSE, Decimal(1)),
    "acquisition_time_total": ("113855", TIME, Decimal(1)),
    "frames_total": ("113731", COUNT, Decimal(1)),
    "dlp_total": ("113813", DOSE_LENGTH, Decimal(1)),
}
_TOTAL_BY_CODE = {code: key for key, (code, _dim, _scale) in _TOTALS.items()}
_MGY_PER_GY = Decimal(1000)

_DOSE_PREFIX = {"": Decimal(1), "d": Decimal("0.1"), "c": Decimal("0.01"),
                "m": Decimal("0.001"), "u": Decimal("0.000001")}  # fmt: skip
_AREA_IN_M2 = {"m2": Decimal(1), "dm2": Decimal("0.01"), "cm2": Decimal("0.0001"),
               "mm2": Decimal("0.000001")}  # fmt: skip
_LENGTH_IN_CM = {"m": Decimal(100), "dm": Decimal(10), "cm": Decimal(1), "mm": Decimal("0.1")}
_TIME_IN_S = {"s": Decimal(1), "ms": Decimal("0.001"), "us": Decimal("0.000001"),
              "min": Decimal(60), "h": Decimal(3600)}  # fmt: skip
# Spelt-out words (CodeMeaning-only units) to UCUM-ish atoms; longest first.
_WORDS = (
    ("milli", "m"), ("micro", "u"), ("centi", "c"), ("deci", "d"),
    ("gray", "gy"), ("grey", "gy"),
    ("metres", "m"), ("meters", "m"), ("metre", "m"), ("meter", "m"),
    ("seconds", "s"), ("second", "s"), ("secs", "s"), ("sec", "s"),
    ("minutes", "min"), ("minute", "min"), ("mins", "min"),
    ("hours", "h"), ("hour", "h"), ("hrs", "h"), ("hr", "h"),
)  # fmt: skip
_DOSE_UNIT = re.compile(r"^(?P<prefix>[udcm]?)gy(?P<rest>(?:[dcm]?m2?)?)$")
_SQUARE = re.compile(r"square((?:milli|centi|deci)?met(?:er|re)s?|[dcm]?m)")
_COUNT_UNIT = re.compile(r"^(?:1|\{.*\}|nounits?|frames?|images?|counts?|)$")


def parse_unit(text: str) -> tuple[str, Decimal] | None:
    """(dimension, factor to the dimension's base unit) of a unit as devices spell it, or None.

    "dGy.cm2" -> (dose_area, 1e-5): 1 dGy·cm² is 1e-5 Gy·m². Case is ignored (nobody sends
    megagray), so "MGy" reads as mGy.
    """
    s = text.strip().casefold().replace(" x ", " ")  # "dGy x cm2"
    s = s.replace("µ", "u").replace("μ", "u").replace("²", "2")
    s = re.sub(r"[\s.*·⋅^_×-]", "", s)  # noqa: RUF001 (the multiplication sign)
    s = s.replace("squared", "2")  # "centimeter squared"
    s = _SQUARE.sub(r"\g<1>2", s)  # "square meter"
    for word, atom in _WORDS:
        s = s.replace(word, atom)
    if (m := _DOSE_UNIT.match(s)) is not None:
        dose = _DOSE_PREFIX[m["prefix"]]
        rest = m["rest"]
        if not rest:
            return DOSE, dose
        if rest in _AREA_IN_M2:
            return DOSE_AREA, dose * _AREA_IN_M2[rest]
        if rest in _LENGTH_IN_CM:
            return DOSE_LENGTH, dose * _MGY_PER_GY * _LENGTH_IN_CM[rest]
        return None
    if s in _TIME_IN_S:
        return TIME, _TIME_IN_S[s]
    if _COUNT_UNIT.match(s):
        return COUNT, Decimal(1)
    return None


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


@dataclass
class CtEvent:
    """One CT acquisition (TID 10013): its mean CTDIvol, DLP and phantom."""

    ctdivol: Measurement | None = None
    dlp: Measurement | None = None
    phantom: str | None = None
    acquisition_type: str | None = None
    irradiation_event_uid: str | None = None

    def original(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.ctdivol is not None:
            shown["ctdivol"] = self.ctdivol.original()
        if self.dlp is not None:
            shown["dlp"] = self.dlp.original()
        for key in ("phantom", "acquisition_type", "irradiation_event_uid"):
            if (value := getattr(self, key)) is not None:
                shown[key] = value
        return shown


@dataclass
class DoseReport:
    """What a dose SR says, normalised; `original` keeps every figure as it was sent.

    `scope` is "study", "performed_procedure_step", "series", the scope's own meaning when it
    is another code, or "unspecified" when the report names none; `scope_uid` is the UID the
    scope points at (the study or PPS the report accumulates over), also in `original["scope"]`.
    """

    scope: str = "unspecified"
    scope_uid: str | None = None
    dap_total_gy_m2: float | None = None
    dose_rp_total_gy: float | None = None
    fluoro_time_s: float | None = None
    frames: int | None = None
    ctdivol_mgy: float | None = None
    dlp_total_mgy_cm: float | None = None
    fluoro_dap_gy_m2: float | None = None
    fluoro_dose_rp_gy: float | None = None
    acquisition_dap_gy_m2: float | None = None
    acquisition_dose_rp_gy: float | None = None
    acquisition_time_s: float | None = None
    irradiation_events: int = 0
    ct_events: list[CtEvent] = field(default_factory=list)
    original: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # The names the imaging announcer keeps per-patient totals by.
    @property
    def dap_gy_m2(self) -> float | None:
        return self.dap_total_gy_m2

    @property
    def dose_rp_gy(self) -> float | None:
        return self.dose_rp_total_gy

    @property
    def dlp_mgy_cm(self) -> float | None:
        return self.dlp_total_mgy_cm

    @property
    def has_figures(self) -> bool:
        return any(
            v is not None
            for v in (
                self.dap_total_gy_m2,
                self.dose_rp_total_gy,
                self.fluoro_time_s,
                self.frames,
                self.ctdivol_mgy,
                self.dlp_total_mgy_cm,
            )
        )

    def payload(self, sop_instance_uid: str) -> dict[str, Any]:
        """The `imaging.dose_reported` payload: only the figures found, plus `original`.

        Warnings (unknown units, derived totals) travel in `original["warnings"]` so the
        ledger shows why a figure is missing or where it came from.
        """
        payload: dict[str, Any] = {"sop_instance_uid": sop_instance_uid, "scope": self.scope}
        for key in (
            "dap_total_gy_m2",
            "dose_rp_total_gy",
            "fluoro_time_s",
            "frames",
            "ctdivol_mgy",
            "dlp_total_mgy_cm",
        ):
            if (value := getattr(self, key)) is not None:
                payload[key] = value
        original = dict(self.original)
        if self.warnings:
            original["warnings"] = list(self.warnings)
        payload["original"] = original
        ImagingDoseReported.model_validate(payload)
        return payload


# --- reading content items -------------------------------------------------------------------


def _text(item: Dataset, keyword: str) -> str | None:
    value = item.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _code(item: Dataset, keyword: str) -> tuple[str | None, str | None, str | None]:
    """(code value, scheme, meaning) of the first item of a code sequence."""
    seq = item.get(keyword)
    if not seq:
        return None, None, None
    first = seq[0]
    return (
        _text(first, "CodeValue"),
        _text(first, "CodingSchemeDesignator"),
        _text(first, "CodeMeaning"),
    )


def _concept(item: Dataset) -> str | None:
    """The DCM concept name code of a content item (None for any other scheme)."""
    value, scheme, _meaning = _code(item, "ConceptNameCodeSequence")
    if scheme is not None and scheme.upper() != "DCM":
        return None
    return value


def _value_type(item: Dataset) -> str:
    return (_text(item, "ValueType") or "").upper()


def _children(item: Dataset) -> list[Dataset]:
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


def _measurement(
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
    unit, _scheme, meaning = _code(holder, "MeasurementUnitsCodeSequence")
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


# --- walking the tree ------------------------------------------------------------------------


@dataclass
class _Found:
    totals: dict[str, dict[str | None, Measurement]] = field(default_factory=dict)
    ct_events: list[CtEvent] = field(default_factory=list)
    xray_events: int = 0
    scope_code: tuple[str | None, str | None] | None = None
    scope_uid: str | None = None
    warnings: list[str] = field(default_factory=list)


def _plane_of(items: list[Dataset]) -> str | None:
    for item in items:
        if _concept(item) == _PLANE and _value_type(item) == "CODE":
            value, _scheme, meaning = _code(item, "ConceptCodeSequence")
            return meaning or value
    return None


def _scope_uid(scope_item: Dataset, siblings: list[Dataset]) -> str | None:
    # TID 10001: a HAS PROPERTIES child of the scope; some devices make it a sibling instead.
    for candidates in (_children(scope_item), siblings):
        for item in candidates:
            if _value_type(item) == "UIDREF" and _concept(item) in _SCOPE_UIDS:
                return _text(item, "UID")
    return None


def _ct_event(container: Dataset, found: _Found) -> CtEvent:
    event = CtEvent()
    number = len(found.ct_events) + 1
    stack = _children(container)
    while stack:
        item = stack.pop(0)
        code, vt = _concept(item), _value_type(item)
        try:
            if vt == "NUM" and code == _CTDIVOL and event.ctdivol is None:
                event.ctdivol = _measurement(
                    item, f"CT acquisition {number} mean CTDIvol", DOSE, _MGY_PER_GY, None,
                    found.warnings,
                )  # fmt: skip
            elif vt == "NUM" and code == _EVENT_DLP and event.dlp is None:
                event.dlp = _measurement(
                    item, f"CT acquisition {number} DLP", DOSE_LENGTH, Decimal(1), None,
                    found.warnings,
                )  # fmt: skip
            elif vt == "CODE" and code == _PHANTOM:
                value, _scheme, meaning = _code(item, "ConceptCodeSequence")
                event.phantom = meaning or value
            elif vt == "CODE" and code == "113820":  # CT Acquisition Type
                value, _scheme, meaning = _code(item, "ConceptCodeSequence")
                event.acquisition_type = meaning or value
            elif vt == "UIDREF" and code == _EVENT_UID:
                event.irradiation_event_uid = _text(item, "UID")
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            found.warnings.append(f"CT acquisition {number}: unreadable item skipped ({exc})")
        stack.extend(_children(item))
    return event


def _walk(items: list[Dataset], plane: str | None, found: _Found, depth: int = 0) -> None:
    if depth > 50:
        found.warnings.append("content tree deeper than 50 levels; the rest is skipped")
        return
    plane = _plane_of(items) or plane
    for item in items:
        try:
            code, vt = _concept(item), _value_type(item)
            if vt == "CONTAINER" and code == _CT_EVENT:
                found.ct_events.append(_ct_event(item, found))
                continue
            if vt == "CONTAINER" and code == _XRAY_EVENT:
                found.xray_events += 1  # per-event DAP/dose use other codes than the totals
                continue
            if vt == "NUM" and code in _TOTAL_BY_CODE:
                _total(item, _TOTAL_BY_CODE[code], plane, found)
            elif vt == "CODE" and code == _SCOPE and found.scope_code is None:
                value, _scheme, meaning = _code(item, "ConceptCodeSequence")
                found.scope_code = (value, meaning)
                found.scope_uid = _scope_uid(item, items)
            children = _children(item)
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            found.warnings.append(f"unreadable content item skipped ({exc})")
            continue
        if children:
            _walk(children, plane, found, depth + 1)


def _total(item: Dataset, key: str, plane: str | None, found: _Found) -> None:
    _code_value, dimension, scale = _TOTALS[key]
    what = key if plane is None else f"{key} ({plane})"
    measured = _measurement(item, what, dimension, scale, plane, found.warnings)
    if measured is None:
        return
    per_plane = found.totals.setdefault(key, {})
    if plane in per_plane:
        first = per_plane[plane]
        if (first.value, first.unit) != (measured.value, measured.unit):
            found.warnings.append(
                f"{what}: sent twice ({first.value} {first.unit}, {measured.value}"
                f" {measured.unit}); the first is used"
            )
        return
    per_plane[plane] = measured


def _sum(found: _Found, key: str) -> Decimal | None:
    """The figure summed over planes; None if absent or any plane's unit is unreadable."""
    per_plane = found.totals.get(key)
    if not per_plane:
        return None
    if any(m.normalised is None for m in per_plane.values()):
        return None
    return sum((m.normalised for m in per_plane.values() if m.normalised is not None), Decimal(0))


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _is_dose_document(ds: Dataset) -> bool:
    value, scheme, _meaning = _code(ds, "ConceptNameCodeSequence")
    return value == DOSE_REPORT and (scheme is None or scheme.upper() == "DCM")


def dose_report(ds: Dataset) -> DoseReport | None:
    """The dose report an object carries, or None when it is not a radiation dose SR.

    X-Ray Radiation Dose SR (and its Enhanced form) always gives a report, with a warning when
    no figure could be found; Enhanced/Comprehensive/Comprehensive 3D/Extensible SR give one
    only when titled "X-Ray Radiation Dose Report" or carrying dose figures. Images, other SR
    and everything else give None.
    """
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if sop_class not in _DOSE_CLASSES and sop_class not in _GENERAL_SR_CLASSES:
        return None
    found = _Found()
    try:
        _walk(_children(ds), None, found)
    except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
        found.warnings.append(f"content tree unreadable past a point ({exc})")
    report = _assemble(found)
    if sop_class not in _DOSE_CLASSES and not _is_dose_document(ds) and not report.has_figures:
        return None
    if not report.has_figures:
        report.warnings.append("no dose figure with a readable unit found in the report")
    return report


def _assemble(found: _Found) -> DoseReport:
    report = DoseReport(warnings=found.warnings, ct_events=found.ct_events)
    original: dict[str, Any] = {}
    if found.scope_code is not None:
        scope_value, scope_meaning = found.scope_code
        named = _SCOPES.get(scope_value or "") or scope_meaning or scope_value or "unspecified"
        report.scope = named[:500]
        report.scope_uid = found.scope_uid
        scope: dict[str, Any] = {"code": scope_value, "meaning": scope_meaning}
        if found.scope_uid is not None:
            scope["uid"] = found.scope_uid
        original["scope"] = scope
    for key in _TOTALS:
        per_plane = found.totals.get(key)
        if per_plane:
            shown = [m.original() for m in per_plane.values()]
            original[key] = shown[0] if len(shown) == 1 else shown

    for total, fluoro, acquisition, attr in (
        ("dap_total", "fluoro_dap_total", "acquisition_dap_total", "dap_total_gy_m2"),
        ("dose_rp_total", "fluoro_dose_rp_total", "acquisition_dose_rp_total", "dose_rp_total_gy"),
    ):
        value = _sum(found, total)
        if value is None and total not in found.totals:
            parts = [_sum(found, fluoro), _sum(found, acquisition)]
            if any(p is not None for p in parts):
                value = sum((p for p in parts if p is not None), Decimal(0))
                found.warnings.append(f"{total} not sent; derived from its fluoro + acquisition")
        setattr(report, attr, _float(value))
    report.fluoro_dap_gy_m2 = _float(_sum(found, "fluoro_dap_total"))
    report.fluoro_dose_rp_gy = _float(_sum(found, "fluoro_dose_rp_total"))
    report.acquisition_dap_gy_m2 = _float(_sum(found, "acquisition_dap_total"))
    report.acquisition_dose_rp_gy = _float(_sum(found, "acquisition_dose_rp_total"))
    report.fluoro_time_s = _float(_sum(found, "fluoro_time_total"))
    report.acquisition_time_s = _float(_sum(found, "acquisition_time_total"))
    frames = _sum(found, "frames_total")
    if frames is not None:
        if frames == frames.to_integral_value():
            report.frames = int(frames)
        else:
            found.warnings.append(f"frames_total: {frames} is not a whole number; left out")

    report.irradiation_events = found.xray_events + len(found.ct_events)
    if found.ct_events:
        original["ct_events"] = [e.original() for e in found.ct_events]
        ctdivols = [e.ctdivol.normalised for e in found.ct_events if e.ctdivol is not None]
        known = [v for v in ctdivols if v is not None]
        if known:
            report.ctdivol_mgy = float(max(known))
    dlp = _sum(found, "dlp_total")
    if dlp is None and "dlp_total" not in found.totals and found.ct_events:
        dlps = [e.dlp for e in found.ct_events if e.dlp is not None]
        if dlps and all(m.normalised is not None for m in dlps):
            dlp = sum((m.normalised for m in dlps if m.normalised is not None), Decimal(0))
            found.warnings.append("dlp_total not sent; summed from the acquisitions' DLP")
        elif dlps:
            found.warnings.append("dlp_total not sent and an acquisition's DLP unit is unknown")
    report.dlp_total_mgy_cm = _float(dlp)
    report.original = original
    return report
