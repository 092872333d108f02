"""Stages and the time-out: scheduled, opened, timed out, closed; interventions only after a
time-out; nothing of the procedure itself after discharge.

A fact that comes after a later stage is kept and alerted on (out_of_sequence), never refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.clinical.chain import Context, Handler
from shared.clinical.facts import Fact
from shared.clinical.state import RANK, ProcedureState

INTERVENTIONS = frozenset(
    {"harvest.aspiration_performed", "implant.needle_placed", "implant.injected"}
)
# Facts of the procedure itself (not lab, safety or paperwork) that make no sense after discharge.
IN_PROCEDURE = INTERVENTIONS | {
    "procedure.opened", "procedure.time_out", "sedation.drug_administered",
    "sedation.vitals_recorded", "sedation.depth_scored", "anaesthesia.local_administered",
}  # fmt: skip
_CONFIRMATIONS = ("patient_confirmed", "procedure_confirmed", "site_confirmed",
                  "consent_confirmed")  # fmt: skip


def advance(state: ProcedureState, fact: Fact, stage: str) -> None:
    """Move to `stage`; a fact that comes after a later stage is kept and alerted on."""
    if RANK[state.stage] > RANK[stage]:
        state.raise_alert(
            f"out_of_sequence:{fact.event_id}", "out_of_sequence", "warning",
            f"{fact.type} after the procedure reached {state.stage}", fact.event_id,
        )  # fmt: skip
        return
    state.stage = stage


def after_discharge(state: ProcedureState, fact: Fact, _: Context) -> None:
    if state.discharged_at is not None:
        state.raise_alert(
            f"after_discharge:{fact.event_id}", "out_of_sequence", "warning",
            f"{fact.type} after the patient was discharged", fact.event_id,
        )  # fmt: skip


def scheduled(state: ProcedureState, fact: Fact, _: Context) -> None:
    p = fact.payload
    state.phase = p.get("phase")
    patient = p.get("patient")
    state.patient_id = patient.get("id") if isinstance(patient, Mapping) else None
    state.follows = p.get("follows_procedure_id")
    advance(state, fact, "scheduled")


def opened(state: ProcedureState, fact: Fact, _: Context) -> None:
    if RANK[state.stage] >= RANK["opened"]:
        state.raise_alert(
            f"reopened:{fact.event_id}", "out_of_sequence", "warning",
            f"procedure opened again (it was {state.stage})", fact.event_id,
        )  # fmt: skip
    else:
        state.stage = "opened"
    state.operator_id = fact.payload.get("operator_id")
    state.monitoring_nurse_id = fact.payload.get("monitoring_nurse_id")
    if state.operator_id and state.operator_id == state.monitoring_nurse_id:
        state.raise_alert(
            "monitor_is_operator", "monitor_is_operator", "warning",
            "the person monitoring sedation is the operator", fact.event_id,
        )  # fmt: skip


def time_out(state: ProcedureState, fact: Fact, _: Context) -> None:
    if state.stage in ("none", "scheduled"):
        state.raise_alert(
            f"time_out_before_opening:{fact.event_id}", "out_of_sequence", "warning",
            "time-out recorded before the procedure was opened", fact.event_id,
        )  # fmt: skip
    advance(state, fact, "timed_out")
    state.timed_out = True
    unconfirmed = [
        name.removesuffix("_confirmed")
        for name in _CONFIRMATIONS
        if fact.payload.get(name) is not True
    ]
    if unconfirmed:
        state.raise_alert(
            f"time_out_incomplete:{fact.event_id}", "time_out_incomplete", "critical",
            f"time-out without confirming: {', '.join(unconfirmed)}", fact.event_id,
        )  # fmt: skip


def intervention(state: ProcedureState, fact: Fact, _: Context) -> None:
    """An aspiration, needle placement or injection: only after a time-out, before closing."""
    if not state.timed_out:
        state.raise_alert(
            f"before_time_out:{fact.event_id}", "intervention_before_time_out", "critical",
            f"{fact.type} before any time-out", fact.event_id,
        )  # fmt: skip
    if RANK[state.stage] > RANK["timed_out"]:
        state.raise_alert(
            f"out_of_sequence:{fact.event_id}", "out_of_sequence", "warning",
            f"{fact.type} after the procedure reached {state.stage}", fact.event_id,
        )  # fmt: skip


def closed(state: ProcedureState, fact: Fact, _: Context) -> None:
    advance(state, fact, "closed")


HANDLERS: list[tuple[str, Handler[ProcedureState]]] = [
    *((kind, after_discharge) for kind in sorted(IN_PROCEDURE)),  # before anything else
    ("procedure.scheduled", scheduled),
    ("procedure.opened", opened),
    ("procedure.time_out", time_out),
    *((kind, intervention) for kind in sorted(INTERVENTIONS)),
    ("procedure.closed", closed),
]
