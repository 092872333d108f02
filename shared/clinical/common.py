"""The rules every phase shares, as one chain: stages and time-out, sedation and recovery,
adverse events and their clocks, custody. bedside folds with these alone (the tablet's running
totals); harvest and implant each extend them with their own room's rules."""

from __future__ import annotations

from shared.clinical import adverse, custody, sedation, stages
from shared.clinical.chain import Rules
from shared.clinical.state import ProcedureState

COMMON: Rules[ProcedureState] = Rules(ProcedureState).then(
    ProcedureState,
    [*stages.HANDLERS, *sedation.HANDLERS, *adverse.HANDLERS, *custody.HANDLERS],
    [sedation.VITALS, adverse.REPORTING],
)
