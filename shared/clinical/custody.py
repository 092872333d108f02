"""Custody hand-offs: who has each item now, and at what temperature it changed hands.

Both phases use it: a harvest sample travels from the room to the lab, and a released lot from
the lab to the implant room. A hand-off by someone who did not have the item is a gap; one
with no temperature, or outside the policy's range, is alerted on.
"""

from __future__ import annotations

from shared.clinical.chain import Context, Handler
from shared.clinical.facts import Fact
from shared.clinical.state import ProcedureState


def handoff(state: ProcedureState, fact: Fact, context: Context) -> None:
    p = fact.payload
    item, giver, taker = str(p.get("item_id")), str(p.get("from_party")), str(p.get("to_party"))
    holder = state.holder.get(item)
    if holder is not None and holder != giver:
        state.raise_alert(
            f"custody_gap:{fact.event_id}", "custody_gap", "warning",
            f"{item} handed over by {giver}, but {holder} had it", fact.event_id,
        )  # fmt: skip
    state.holder[item] = taker
    low, high = context.policy.custody_c
    temperature = p.get("temperature_c")
    if not isinstance(temperature, (int, float)):
        state.raise_alert(
            f"custody_temperature:{fact.event_id}", "custody_temperature", "warning",
            f"{item} handed to {taker} with no temperature recorded", fact.event_id,
        )  # fmt: skip
    elif not low <= temperature <= high:
        state.raise_alert(
            f"custody_temperature:{fact.event_id}", "custody_temperature", "critical",
            f"{item} handed to {taker} at {temperature:g} °C (allowed {low:g} to {high:g})",
            fact.event_id,
        )  # fmt: skip


HANDLERS: list[tuple[str, Handler[ProcedureState]]] = [("custody.handoff", handoff)]
