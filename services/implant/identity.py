"""Chain of identity: before an implant two people verify patient, order and product against a
released lot that passed QC, is in date and was made for this patient; an injection needs a
clean verification of its lot, and never more cells than the lot released."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.clinical.chain import Context
from shared.clinical.facts import Fact, Lot

if TYPE_CHECKING:
    from services.implant.rules import ImplantState

VIABILITY_MIN_PCT = 70.0
_QC_FAILED = re.compile(
    r"\b(positive|fail(ed|s|ure)?|contaminat\w*|out of spec\w*|oos|exceed\w*)\b"
    r"|(?<!not )\bdetected\b",
    re.IGNORECASE,
)


def qc_failures(lot: Mapping[str, Any]) -> list[str]:
    """Why a lot's QC did not pass; empty when it did."""
    out = []
    for test in ("sterility", "endotoxin", "mycoplasma"):
        result = str(lot.get(test, "")).strip()
        if not result or _QC_FAILED.search(result):
            out.append(f"{test} {result or 'not reported'}")
    viability = lot.get("viability_pct")
    if not isinstance(viability, (int, float)) or viability < VIABILITY_MIN_PCT:
        out.append(f"viability {viability} % (< {VIABILITY_MIN_PCT:g} %)")
    return out


def _released(fact: Fact, lots: Mapping[str, Lot]) -> Lot | None:
    """The fact's lot, if it had been released by the fact's clinical time."""
    lot = lots.get(str(fact.payload.get("lot_id")))
    if lot is not None and lot.released_at > fact.occurred_at:
        return None  # released only after this fact: at the time it was not
    return lot


def _lot_problems(state: ImplantState, fact: Fact, lot: Lot | None, lot_id: str) -> list[str]:
    if lot is None:
        return [f"lot {lot_id} is not released"]
    out = []
    expires = lot.payload.get("expires_at")
    if not isinstance(expires, str) or datetime.fromisoformat(expires) <= fact.occurred_at:
        out.append(f"lot {lot_id} expired ({expires})")
    out += [f"QC not passed: {why}" for why in qc_failures(lot.payload)]
    patient = lot.payload.get("patient")
    owner = patient.get("id") if isinstance(patient, Mapping) else None
    if state.patient_id is not None and owner != state.patient_id:
        out.append(f"lot {lot_id} was made for another patient")
    return out


def product_verified(state: ImplantState, fact: Fact, context: Context) -> None:
    p = fact.payload
    lot_id = str(p.get("lot_id"))
    reasons = []
    verifiers = [str(v).strip().lower() for v in p.get("verifier_ids", [])]
    if len(verifiers) < 2:
        reasons.append("only one verifier")
    elif len(set(verifiers)) < 2:
        reasons.append("the same person verified twice")
    reasons += _lot_problems(state, fact, _released(fact, context.lots), lot_id)
    scanned = p.get("patient_id_scanned")
    if state.patient_id is not None and scanned != state.patient_id:
        reasons.append(f"the wristband scanned ({scanned}) is not this procedure's patient")
    state.verified[lot_id] = not reasons
    if reasons:
        state.raise_alert(
            f"coi:{fact.event_id}", "chain_of_identity_mismatch", "critical",
            "implant unverified: " + "; ".join(reasons), fact.event_id,
        )  # fmt: skip


def injected(state: ImplantState, fact: Fact, context: Context) -> None:
    """An injection of an unverified lot is a mismatch; the cells are counted against the lot."""
    lot_id = str(fact.payload.get("lot_id"))
    lot = _released(fact, context.lots)
    if not state.verified.get(lot_id):
        state.raise_alert(
            f"coi_injected:{fact.event_id}", "chain_of_identity_mismatch", "critical",
            f"lot {lot_id} injected without a clean product verification", fact.event_id,
        )  # fmt: skip
    cells = state.injected_cells.get(lot_id, 0.0) + float(fact.payload.get("cell_count") or 0)
    state.injected_cells[lot_id] = cells
    released = float(lot.payload.get("cell_count") or 0) if lot is not None else None
    if released is not None and cells > released:
        state.raise_alert(
            f"cells:{fact.event_id}", "cell_count_exceeds_lot", "warning",
            f"{cells:.3g} cells injected from lot {lot_id}, which released {released:.3g}",
            fact.event_id,
        )  # fmt: skip
