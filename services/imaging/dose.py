"""Radiation dose structured reports, read the way devices actually write them.

X-ray (TID 10001 with 10002/10004/10007 accumulated data, 10003 irradiation events) and CT
(TID 10011, 10013 irradiation events) dose reports become one `DoseReport`, whose `payload()`
is the contract's `imaging.dose_reported`.

What real devices do, and what is done about it here:

- The template identifier (ContentTemplateSequence, TID 10001/10011) is often missing, and dose
  content also arrives as Enhanced/Comprehensive/Comprehensive 3D/Extensible SR. So the tree is
  walked recursively and NUM items are found by concept name code (scheme DCM) wherever they
  sit; the template is never consulted.
- Units are spelt many ways ("Gy.m2", "Gym2", "dGy.cm2", "µGy·m²", "mGy*cm", "min", ...),
  sometimes only in CodeMeaning ("gray square meter"); units.py reads them. Figures are
  normalised to Gy·m² (DAP), Gy (dose at the reference point), s (time), mGy (CTDIvol), mGy·cm
  (DLP). The value and unit as sent are kept in `original` for every figure. A unit that cannot
  be read, or one of the wrong kind (a DAP in mGy), keeps its original, gets no normalised
  value and a warning.
- Values come as padded DS strings, at times with a decimal comma, or as FloatingPointValue
  (content.py reads the items). Arithmetic is decimal: 2.5 dGy·cm² is exactly 2.5e-05 Gy·m².
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

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydicom.dataset import Dataset

from services.imaging import content
from services.imaging.content import Measurement
from services.imaging.units import COUNT, DOSE, DOSE_AREA, DOSE_LENGTH, MGY_PER_GY, TIME
from services.imaging.units import parse_unit as parse_unit  # dose.py's API: how units read
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


# The figures of a report that `imaging.dose_reported` carries (when found).
_FIGURES = ("dap_total_gy_m2", "dose_rp_total_gy", "fluoro_time_s", "frames", "ctdivol_mgy",
            "dlp_total_mgy_cm")  # fmt: skip


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
        return any(getattr(self, key) is not None for key in _FIGURES)

    def payload(self, sop_instance_uid: str) -> dict[str, Any]:
        """The `imaging.dose_reported` payload: only the figures found, plus `original`.

        Warnings (unknown units, derived totals) travel in `original["warnings"]` so the
        ledger shows why a figure is missing or where it came from.
        """
        payload: dict[str, Any] = {"sop_instance_uid": sop_instance_uid, "scope": self.scope}
        for key in _FIGURES:
            if (value := getattr(self, key)) is not None:
                payload[key] = value
        original = dict(self.original)
        if self.warnings:
            original["warnings"] = list(self.warnings)
        payload["original"] = original
        ImagingDoseReported.model_validate(payload)
        return payload


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
        if content.concept(item) == _PLANE and content.value_type(item) == "CODE":
            value, _scheme, meaning = content.code(item, "ConceptCodeSequence")
            return meaning or value
    return None


def _scope_uid(scope_item: Dataset, siblings: list[Dataset]) -> str | None:
    # TID 10001: a HAS PROPERTIES child of the scope; some devices make it a sibling instead.
    for candidates in (content.children(scope_item), siblings):
        for item in candidates:
            if content.value_type(item) == "UIDREF" and content.concept(item) in _SCOPE_UIDS:
                return content.text(item, "UID")
    return None


def _ct_event(container: Dataset, found: _Found) -> CtEvent:
    event = CtEvent()
    number = len(found.ct_events) + 1
    stack = content.children(container)
    while stack:
        item = stack.pop(0)
        code, vt = content.concept(item), content.value_type(item)
        try:
            if vt == "NUM" and code == _CTDIVOL and event.ctdivol is None:
                event.ctdivol = content.measurement(
                    item, f"CT acquisition {number} mean CTDIvol", DOSE, MGY_PER_GY, None,
                    found.warnings,
                )  # fmt: skip
            elif vt == "NUM" and code == _EVENT_DLP and event.dlp is None:
                event.dlp = content.measurement(
                    item, f"CT acquisition {number} DLP", DOSE_LENGTH, Decimal(1), None,
                    found.warnings,
                )  # fmt: skip
            elif vt == "CODE" and code == _PHANTOM:
                value, _scheme, meaning = content.code(item, "ConceptCodeSequence")
                event.phantom = meaning or value
            elif vt == "CODE" and code == "113820":  # CT Acquisition Type
                value, _scheme, meaning = content.code(item, "ConceptCodeSequence")
                event.acquisition_type = meaning or value
            elif vt == "UIDREF" and code == _EVENT_UID:
                event.irradiation_event_uid = content.text(item, "UID")
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            found.warnings.append(f"CT acquisition {number}: unreadable item skipped ({exc})")
        stack.extend(content.children(item))
    return event


def _walk(items: list[Dataset], plane: str | None, found: _Found, depth: int = 0) -> None:
    if depth > 50:
        found.warnings.append("content tree deeper than 50 levels; the rest is skipped")
        return
    plane = _plane_of(items) or plane
    for item in items:
        try:
            code, vt = content.concept(item), content.value_type(item)
            if vt == "CONTAINER" and code == _CT_EVENT:
                found.ct_events.append(_ct_event(item, found))
                continue
            if vt == "CONTAINER" and code == _XRAY_EVENT:
                found.xray_events += 1  # per-event DAP/dose use other codes than the totals
                continue
            if vt == "NUM" and code in _TOTAL_BY_CODE:
                _total(item, _TOTAL_BY_CODE[code], plane, found)
            elif vt == "CODE" and code == _SCOPE and found.scope_code is None:
                value, _scheme, meaning = content.code(item, "ConceptCodeSequence")
                found.scope_code = (value, meaning)
                found.scope_uid = _scope_uid(item, items)
            children = content.children(item)
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            found.warnings.append(f"unreadable content item skipped ({exc})")
            continue
        if children:
            _walk(children, plane, found, depth + 1)


def _total(item: Dataset, key: str, plane: str | None, found: _Found) -> None:
    _code_value, dimension, scale = _TOTALS[key]
    what = key if plane is None else f"{key} ({plane})"
    measured = content.measurement(item, what, dimension, scale, plane, found.warnings)
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
    value, scheme, _meaning = content.code(ds, "ConceptNameCodeSequence")
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
        _walk(content.children(ds), None, found)
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
