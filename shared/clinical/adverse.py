"""Adverse events and their reporting clocks: a serious unexpected reaction must be reported
within 7 days when fatal or life-threatening, else 15. The deadline shows at once; the clock
warns as it nears and again once it has passed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from shared.clinical.chain import ClockRule, Context, Handler
from shared.clinical.facts import Alert, Fact
from shared.clinical.policy import Policy
from shared.clinical.state import AdverseEvent, ProcedureState


def report_deadline(aware_at: datetime, serious: bool, expected: bool,
                    criteria: Iterable[str]) -> datetime | None:  # fmt: skip
    """7 days for a fatal or life-threatening serious unexpected reaction, 15 for any other
    serious unexpected one; none otherwise."""
    if not serious or expected:
        return None
    urgent = {"death", "life_threatening"} & set(criteria)
    return aware_at + timedelta(days=7 if urgent else 15)


def reported(state: ProcedureState, fact: Fact, _: Context) -> None:
    p = fact.payload
    serious, expected = bool(p.get("serious")), bool(p.get("expected"))
    deadline = report_deadline(
        fact.occurred_at, serious, expected, [str(c) for c in p.get("serious_criteria", [])]
    )
    state.adverse_events.append(AdverseEvent(
        fact.event_id, str(p.get("term")), int(p.get("grade", 0)), serious, expected,
        fact.occurred_at, deadline,
    ))  # fmt: skip
    if deadline is not None:  # shown at once, in the ledger and on every timeline
        state.raise_alert(
            f"sae_clock:{fact.event_id}", "sae_report_clock", "info",
            f"serious unexpected adverse event '{p.get('term')}': report due by "
            f"{deadline.isoformat()}", fact.event_id,
        )  # fmt: skip


def report_due(state: ProcedureState, now: datetime, policy: Policy) -> list[Alert]:
    """A reporting deadline nearer than the policy's warning, or passed."""
    out = []
    for ae in state.adverse_events:
        if ae.deadline is not None and now >= ae.deadline - policy.sae_warning:
            late = now > ae.deadline
            out.append(Alert(
                f"sae_report_{'overdue' if late else 'due'}:{ae.event_id}", "sae_report_due",
                "critical" if late else "warning",
                f"serious unexpected adverse event '{ae.term}' (grade {ae.grade}): report "
                f"{'was due' if late else 'due'} {ae.deadline.isoformat()}", (ae.event_id,),
            ))  # fmt: skip
    return out


def _reportable(state: ProcedureState, _: Policy) -> bool:
    return any(ae.deadline is not None for ae in state.adverse_events)


HANDLERS: list[tuple[str, Handler[ProcedureState]]] = [("adverse_event.reported", reported)]
REPORTING = ClockRule[ProcedureState](report_due, _reportable)
