"""The implant room's rules: lots and QC, chain of identity and cell counts (identity.py), and
needle confirmation by the procedure's images (needle.py), over the rules every phase shares
(shared/clinical/common.py). The released lots they check are kept in lots.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.implant import identity, needle
from services.implant.needle import Capture, Needle, needle_confirmed
from shared.clinical.chain import ClockRule, Rules
from shared.clinical.common import COMMON
from shared.clinical.state import ProcedureState


@dataclass
class ImplantState(ProcedureState):
    verified: dict[str, bool] = field(default_factory=dict)  # lot_id -> clean verification?
    injected_cells: dict[str, float] = field(default_factory=dict)  # lot_id -> cells so far
    captures: list[Capture] = field(default_factory=list)
    needles: list[Needle] = field(default_factory=list)

    def confirmed(self, placement: Needle, window: timedelta) -> bool:
        return needle_confirmed(placement, self.captures, window)


HANDLERS = [
    ("imaging.capture_received", needle.capture_received),
    ("implant.needle_placed", needle.needle_placed),
    ("implant.product_verified", identity.product_verified),
    ("implant.injected", identity.injected),
]
CLOCK = [ClockRule[ImplantState](needle.unconfirmed, needle.pending)]
RULES: Rules[ImplantState] = COMMON.then(ImplantState, HANDLERS, CLOCK)
fold = RULES.fold
due = RULES.due
