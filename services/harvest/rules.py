"""The harvest room's rules: every labelled sample is kept, and a sample id that contains the
patient's record number is alerted on (a label must not identify the patient).

They extend the rules every phase shares (shared/clinical/common.py); custody hand-offs of the
sample, from the room to the lab, are among those, because a released lot travels the same way
to the implant room.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.clinical.chain import Context, Rules
from shared.clinical.common import COMMON
from shared.clinical.facts import Fact
from shared.clinical.state import ProcedureState


@dataclass
class HarvestState(ProcedureState):
    samples: list[str] = field(default_factory=list)  # sample ids, in clinical order


def sample_labelled(state: HarvestState, fact: Fact, _: Context) -> None:
    sample_id = str(fact.payload.get("sample_id", ""))
    state.samples.append(sample_id)
    patient = state.patient_id or ""
    if len(patient) >= 3 and patient.lower() in sample_id.lower():
        state.raise_alert(
            f"sample_id:{fact.event_id}", "sample_id_identifies_patient", "critical",
            f"sample id {sample_id} contains the patient's record number", fact.event_id,
        )  # fmt: skip


HANDLERS = [("harvest.sample_labelled", sample_labelled)]
RULES: Rules[HarvestState] = COMMON.then(HarvestState, HANDLERS)
fold = RULES.fold
due = RULES.due
